#!/usr/bin/env bash
# Installs, builds and runs every test pgmoat has:
#   1. unit tests (ctest: codec, classifier, policy, audit, tokens, CLI scripts)
#   2. integration tests through pgmoat against a real PostgreSQL 15 with real clients
#      (psql, pgbench, psycopg, node pg, JDBC)
#   3. the unit tests again, and the integration suite against pgmoat, under ASan+UBSan
#   4. quick runs of the benchmark scripts (run.sh, instructions.sh, ab.sh), so they keep working
# Run as root on Debian bookworm; never reads stdin. Set PGMOAT_SKIP_INSTALL=1 to skip apt,
# PGMOAT_SKIP_ASAN=1 to skip step 3, PGMOAT_SKIP_BENCH=1 to skip step 4.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
JOBS=$(nproc)
LOGS=$(mktemp -d /tmp/pgmoat-test-logs.XXXXXX)
PY=/usr/bin/python3
status=0
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "FAILED: $*"; status=1; }

if [[ "${PGMOAT_SKIP_INSTALL:-0}" != "1" ]]; then
  step "installing packages (scripts/install-deps.sh)"
  bash scripts/install-deps.sh </dev/null >"$LOGS/install.log" 2>&1 || {
    tail -40 "$LOGS/install.log"
    echo "0 passed, 1 failed"
    exit 1
  }
fi

step "building (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$LOGS/cmake.log" 2>&1 || {
  cat "$LOGS/cmake.log"
  echo "0 passed, 1 failed"
  exit 1
}
if ! ninja -C build -j"$JOBS" >"$LOGS/build.log" 2>&1; then
  grep -E "error|FAILED" -A5 "$LOGS/build.log" | head -80
  echo "0 passed, 1 failed"
  exit 1
fi

step "unit tests (ctest)"
ctest --test-dir build --output-on-failure -j"$JOBS" 2>&1 | tee "$LOGS/ctest.log" | tail -15
[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "unit tests"

step "integration tests (pytest, direct and through pgmoat)"
PGMOAT_BIN="$REPO/build/pgmoat" \
  $PY -m pytest tests/integration -q -p no:cacheprovider 2>&1 | tee "$LOGS/it.log" | tail -25
[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "integration tests"

if [[ "${PGMOAT_SKIP_ASAN:-0}" != "1" ]]; then
  step "sanitizer build (build-asan/, ASan+UBSan)"
  if cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPGMOAT_SANITIZE=ON \
       -DPGMOAT_BENCH=OFF >"$LOGS/cmake-asan.log" 2>&1 &&
     ninja -C build-asan -j"$JOBS" >"$LOGS/build-asan.log" 2>&1; then
    step "unit tests under ASan+UBSan"
    # libpg_query keeps a few bytes of per-thread parser state for the life of the process.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions="$REPO/tests/lsan.supp" \
      ctest --test-dir build-asan --output-on-failure -j"$JOBS" 2>&1 | tee "$LOGS/ctest-asan.log" | tail -8
    [[ ${PIPESTATUS[0]} -eq 0 ]] || fail "unit tests under sanitizers"
    step "integration tests through the sanitizer build of pgmoat"
    ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions="$REPO/tests/lsan.supp" \
      PGMOAT_BIN="$REPO/build-asan/pgmoat" PGMOAT_TARGETS=pgmoat \
      $PY -m pytest tests/integration -q -p no:cacheprovider -m "not slow" 2>&1 |
      tee "$LOGS/it-asan.log" | tail -15
    [[ ${PIPESTATUS[0]} -eq 0 ]] || fail "integration tests under sanitizers"
  else
    grep -E "error|FAILED" -A5 "$LOGS/build-asan.log" "$LOGS/cmake-asan.log" | head -60
    fail "sanitizer build"
  fi
fi

if [[ "${PGMOAT_SKIP_BENCH:-0}" != "1" && -x bench/run.sh ]]; then
  step "benchmark smoke run (BENCH_QUICK=1 bench/run.sh)"
  BENCH_QUICK=1 PGMOAT_BIN="$REPO/build/pgmoat" bash bench/run.sh >"$LOGS/bench.log" 2>&1 ||
    { tail -30 "$LOGS/bench.log"; fail "benchmark smoke run"; }
  grep -q "^asio-floor " "$LOGS/bench.log" || { tail -30 "$LOGS/bench.log"; fail "bench/run.sh printed no asio-floor line"; }
  tail -30 "$LOGS/bench.log"
  step "instruction-count smoke run (INSTR_TRANSACTIONS=300 bench/instructions.sh)"
  INSTR_TRANSACTIONS=300 INSTR_ROWS=1000 PGMOAT_BIN="$REPO/build/pgmoat" bash bench/instructions.sh \
    >"$LOGS/instructions.log" 2>&1 ||
    { tail -30 "$LOGS/instructions.log"; fail "instruction-count smoke run"; }
  tail -5 "$LOGS/instructions.log"
  step "CPU A/B smoke run (AB_ROUNDS=1 bench/ab.sh)"
  AB_ROUNDS=1 AB_SECONDS=1 AB_MODES=simple AB_THREADS="0 1" PGMOAT_BIN="$REPO/build/pgmoat" \
    AB_BASE_BIN="$REPO/build/pgmoat" bash bench/ab.sh >"$LOGS/ab.log" 2>&1 ||
    { tail -30 "$LOGS/ab.log"; fail "CPU A/B smoke run"; }
  # Every target gets its line: two proxies, the Asio floor and two binaries at two thread counts.
  for target in pgbouncer floor asio-floor-t0 asio-floor-t1 pgmoat-t0 pgmoat-t1 base-t0 base-t1; do
    grep -q "^$target " "$LOGS/ab.log" || { tail -30 "$LOGS/ab.log"; fail "bench/ab.sh printed no line for $target"; }
  done
  tail -11 "$LOGS/ab.log"
fi

# One closing line for every runner above: ctest "N tests failed out of M" and pytest's
# "N passed, M failed" summaries, added up.
passed=0
failed=0
for f in "$LOGS"/ctest*.log; do
  [[ -f "$f" ]] || continue
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$f" | tail -1)
  if [[ -n "$line" ]]; then
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    bad=$(sed -E 's/.*, ([0-9]+) tests failed.*/\1/' <<<"$line")
    passed=$((passed + total - bad))
    failed=$((failed + bad))
  fi
done
for f in "$LOGS"/it*.log; do
  [[ -f "$f" ]] || continue
  line=$(grep -E "^=*.*[0-9]+ (passed|failed|error)" "$f" | tail -1)
  p=$(grep -oE "[0-9]+ passed" <<<"$line" | grep -oE "[0-9]+" || echo 0)
  q=$(grep -oE "[0-9]+ (failed|errors?)" <<<"$line" | awk '{s += $1} END {print s + 0}')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${q:-0}))
done
[[ $status -ne 0 && $failed -eq 0 ]] && failed=1
echo
echo "logs: $LOGS"
echo "$passed passed, $failed failed"
exit $status
