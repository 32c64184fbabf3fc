#!/usr/bin/env bash
# Installs what pgmoat needs, builds it, and leaves it running on 127.0.0.1 in front of a
# throwaway local PostgreSQL 15 with the default policy (config/pgmoat.toml).
#   bash scripts/demo.sh          start (prints the DATABASE_URL to use)
#   bash scripts/demo.sh stop     stop pgmoat and the throwaway Postgres, delete the demo dir
# Run as root on Debian bookworm; Postgres itself runs as the unprivileged `postgres` user.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="${PGMOAT_DEMO_DIR:-/tmp/pgmoat-demo}"
PG_BIN=/usr/lib/postgresql/15/bin

stop() {
  if [[ -f "$DEMO/pgmoat.pid" ]]; then
    kill -TERM "$(cat "$DEMO/pgmoat.pid")" 2>/dev/null || true
  fi
  if [[ -d "$DEMO/pgdata" ]]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DEMO/pgdata" -m fast stop >/dev/null 2>&1 || true
  fi
  rm -rf "$DEMO"
  echo "demo stopped and $DEMO removed"
}

if [[ "${1:-}" == "stop" ]]; then
  stop
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root (it installs packages)" >&2
  exit 1
fi

free_port() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
want = int(sys.argv[1])
for port in [want] + list(range(want + 1, want + 200)):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print(port)
        break
    except OSError:
        continue
    finally:
        s.close()
PY
}

echo "==> installing packages"
bash "$REPO/scripts/install-deps.sh" >/tmp/pgmoat-install.log 2>&1 || {
  tail -20 /tmp/pgmoat-install.log
  exit 1
}
echo "==> building (build/pgmoat)"
cmake -S "$REPO" -B "$REPO/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGMOAT_BENCH=OFF >/dev/null
ninja -C "$REPO/build" pgmoat

[[ -d "$DEMO" ]] && stop >/dev/null
mkdir -p "$DEMO"
chown postgres "$DEMO"
PG_PORT=$(free_port 5433)
MOAT_PORT=$(free_port 6432)

echo "==> starting a throwaway PostgreSQL 15 on 127.0.0.1:$PG_PORT"
runuser -u postgres -- "$PG_BIN/initdb" -D "$DEMO/pgdata" -U postgres -A trust >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DEMO/pgdata" -l "$DEMO/postgres.log" -w \
  -o "-p $PG_PORT -k $DEMO -c listen_addresses=127.0.0.1" start >/dev/null

echo "==> an approver key for trying approval tokens ($DEMO/keys/demo-approver.key)"
mkdir -p "$DEMO/keys"
"$REPO/build/pgmoat" token keygen --name demo-approver --out "$DEMO/keys" >/dev/null

sed -e "s/^port = 6432/port = $MOAT_PORT/" -e "s/^port = 5432/port = $PG_PORT/" \
  "$REPO/config/pgmoat.toml" >"$DEMO/pgmoat.toml"
cat >>"$DEMO/pgmoat.toml" <<TOML

# Added by scripts/demo.sh
[audit]
path = "$DEMO/audit.jsonl"

[[approvers]]
name = "demo-approver"
public_key = "$DEMO/keys/demo-approver.pub"

[approvals]
state_dir = "$DEMO/approvals"
TOML

echo "==> starting pgmoat on 127.0.0.1:$MOAT_PORT"
nohup "$REPO/build/pgmoat" serve --config "$DEMO/pgmoat.toml" >"$DEMO/pgmoat.log" 2>&1 &
echo $! >"$DEMO/pgmoat.pid"
for _ in $(seq 1 50); do
  if /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $MOAT_PORT), 0.2)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if ! kill -0 "$(cat "$DEMO/pgmoat.pid")" 2>/dev/null; then
  echo "pgmoat did not start:" >&2
  cat "$DEMO/pgmoat.log" >&2
  exit 1
fi

URL="postgresql://postgres@127.0.0.1:$MOAT_PORT/postgres"
cat <<MSG

pgmoat is running with the default policy (log: $DEMO/pgmoat.log).

  export DATABASE_URL=$URL

Try:
  psql "\$DATABASE_URL" -c 'CREATE TABLE t (id int); INSERT INTO t VALUES (1)'
  psql "\$DATABASE_URL" -c 'DROP TABLE t'                     # refused: needs approval
  TOKEN=\$($REPO/build/pgmoat token issue --key $DEMO/keys/demo-approver.key \\
           --database postgres --user postgres --classes drop --ttl 15m --reason demo)
  psql "\$DATABASE_URL" -c "SET pgmoat.approval = '\$TOKEN'" -c 'DROP TABLE t'
  $REPO/build/pgmoat audit search $DEMO/audit.jsonl
  $REPO/build/pgmoat audit verify $DEMO/audit.jsonl

Stop it with:  bash $REPO/scripts/demo.sh stop
MSG
