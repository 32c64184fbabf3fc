#!/usr/bin/env bash
# Install everything pgmoat needs to build, test and benchmark on Debian bookworm.
# Idempotent; run as root; never reads stdin.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: must run as root" >&2
  exit 1
fi

PKGS=(
  build-essential g++ cmake ninja-build
  libboost1.81-dev libpg-query-dev libssl-dev libspdlog-dev libtomlplusplus-dev rapidjson-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  postgresql-15 postgresql-client-15 pgbouncer
  python3-psycopg python3-pytest python3-pytest-timeout
  libpostgresql-jdbc-java default-jdk-headless
  openssl procps iproute2
  valgrind  # bench/instructions.sh counts instructions per transaction with callgrind
)
# node and npm: a machine may already carry a Node.js build that bundles npm (for
# example a nodesource package); installing Debian's npm next to it would conflict.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

apt-get update -q </dev/null

WANT=()
for p in "${PKGS[@]}"; do
  cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [[ -z "$cand" || "$cand" == "(none)" ]]; then
    echo "install-deps.sh: package '$p' has no install candidate here; skipping it" >&2
  else
    WANT+=("$p")
  fi
done

# The postgresql package creates and starts a default cluster; the test suite
# runs its own clusters and does not need it, but its presence does no harm.
apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${WANT[@]}" </dev/null

# Node client for the integration suite (package.json + package-lock.json are committed;
# tests/integration/node/.npmrc keeps registry host names out of the lock file).
if command -v npm >/dev/null 2>&1; then
  cd "$REPO/tests/integration/node"
  if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund </dev/null
  else
    npm install --no-audit --no-fund </dev/null
  fi
else
  echo "install-deps.sh: npm not available; node integration tests will skip" >&2
fi

echo "install-deps.sh: done"
