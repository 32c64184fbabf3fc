# Shared by the scripts in bench/ (sourced, not run). The sourcing script sets BENCH_SCRIPT (its
# name, for messages) and REPO.

PG_BIN=/usr/lib/postgresql/15/bin
PGBENCH="$PG_BIN/pgbench"
PSQL="$PG_BIN/psql"

die() { echo "$BENCH_SCRIPT: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

require_positive_int() {  # variable-name value
  [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer"
}

PGMOAT_BIN="${PGMOAT_BIN:-build/pgmoat}"
[[ "$PGMOAT_BIN" == /* ]] || PGMOAT_BIN="$REPO/$PGMOAT_BIN"

# What every benchmark needs (and PgBouncer when called with `pgbouncer`); says which part is
# missing.
bench_require() {  # [pgbouncer]
  [[ $(id -u) -eq 0 ]] || die "run as root (Postgres and PgBouncer are started as user postgres)"
  [[ -x "$PGMOAT_BIN" ]] || die "no pgmoat binary at $PGMOAT_BIN (set PGMOAT_BIN)"
  [[ -x "$PG_BIN/postgres" ]] || die "PostgreSQL 15 not found in $PG_BIN"
  if [[ "${1:-}" == pgbouncer ]]; then
    command -v pgbouncer >/dev/null || die "pgbouncer not installed (apt-get install pgbouncer)"
  fi
  id postgres >/dev/null 2>&1 || die "no 'postgres' user"
}

# A private temp dir (owned by postgres, which runs the cluster) holding a private copy of the
# binary. Neither carries "pgmoat" in its name: a rebuild of build/ mid-run cannot change the
# binary, and other people's test scripts that stop their proxies by name (pkill pgmoat) leave
# this run alone. Sets TMP and PROXY_BIN; registers cleanup on exit.
bench_setup() {  # temp-dir prefix
  TMP=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/$1.XXXXXX")
  chmod 755 "$TMP"
  chown postgres: "$TMP"
  cp "$PGMOAT_BIN" "$TMP/proxy-under-test"
  PROXY_BIN="$TMP/proxy-under-test"
  PIDS=()  # pgmoat / pgbouncer / client pids we started
  NAMES=() # their names, for messages
  LOGS=()  # their log files
  PG_STARTED=0
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Stops everything we started (SIGTERM, SIGKILL after 10 s), then Postgres, then removes TMP
# unless BENCH_KEEP=1. Keeps the script's exit status.
bench_cleanup() {
  local rc=$? i pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 100); do  # up to 10 s for all of them
    local alive=0
    for pid in "${PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for i in "${!PIDS[@]}"; do
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "$BENCH_SCRIPT: ${NAMES[$i]} (pid ${PIDS[$i]}) still running 10 s after SIGTERM; sending SIGKILL" >&2
      kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    fi
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  if [[ "$PG_STARTED" == 1 ]]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$TMP/pgdata" -m fast -w -t 120 stop >/dev/null 2>&1 ||
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$TMP/pgdata" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    echo "$BENCH_SCRIPT: kept $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}

wait_port() {  # port pid name; WAIT_PORT_TENTHS: how long, in 0.1 s (default 100)
  for _ in $(seq 1 "${WAIT_PORT_TENTHS:-100}"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if [[ -n "$2" ]] && ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.1
  done
  die "$3 did not start listening on 127.0.0.1:$1 (logs in $TMP)"
}

# PgBouncer in session pooling mode, trust auth with an auth_file, run as postgres in front of
# the cluster on PG_PORT. Sets BOUNCER_PID (pgbouncer's own pid: setpriv execs it in place).
start_pgbouncer() {  # port default_pool_size max_client_conn
  echo '"postgres" ""' >"$TMP/userlist.txt"
  cat >"$TMP/pgbouncer.ini" <<INI
[databases]
postgres = host=127.0.0.1 port=$PG_PORT dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $1
unix_socket_dir =
auth_type = trust
auth_file = $TMP/userlist.txt
pool_mode = session
default_pool_size = $2
max_client_conn = $3
logfile = $TMP/pgbouncer.log
pidfile = $TMP/pgbouncer.pid
INI
  chown postgres: "$TMP/userlist.txt" "$TMP/pgbouncer.ini"
  setpriv --reuid=postgres --regid=postgres --init-groups ${RUN_UNDER:-} pgbouncer "$TMP/pgbouncer.ini" \
    >"$TMP/pgbouncer.stderr" 2>&1 &
  BOUNCER_PID=$!
  PIDS+=("$BOUNCER_PID")
  NAMES+=(pgbouncer)
  wait_port "$1" "$BOUNCER_PID" pgbouncer
}

# A throwaway PostgreSQL 15 cluster in $TMP/pgdata on 127.0.0.1:PG_PORT, run as postgres with
# trust auth; further postgresql.conf lines come on stdin.
start_postgres() {
  runuser -u postgres -- "$PG_BIN/initdb" -D "$TMP/pgdata" -U postgres -A trust -E UTF8 \
    >"$TMP/initdb.log" 2>&1 || { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
  {
    echo
    echo "# $BENCH_SCRIPT"
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $PG_PORT"
    echo "unix_socket_directories = '$TMP'"
    cat
  } >>"$TMP/pgdata/postgresql.conf"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$TMP/pgdata" -l "$TMP/postgres.log" -w start >/dev/null ||
    { cat "$TMP/postgres.log" >&2; die "postgres did not start"; }
  PG_STARTED=1
}

# CPU time of a whole process (every thread): "utime stime", in clock ticks (getconf CLK_TCK).
proc_cpu_ticks() {  # pid
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }  # fields after "(comm) "; field 3 (state) is the first here
  # shellcheck disable=SC2086
  set -- $rest
  echo "${12} ${13}"  # utime = field 14, stime = field 15
}

# The floor proxy (bench/floor/floor_proxy.cpp: one thread that only moves bytes), built here
# with the project's warnings and run as postgres. Sets FLOOR_PID.
start_floor() {  # port
  g++ -std=c++20 -O2 -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Werror \
    "$REPO/bench/floor/floor_proxy.cpp" -o "$TMP/floor-proxy" || die "could not build bench/floor/floor_proxy.cpp"
  setpriv --reuid=postgres --regid=postgres --init-groups "$TMP/floor-proxy" "$1" "$PG_PORT" \
    >"$TMP/floor.log" 2>&1 &
  FLOOR_PID=$!
  PIDS+=("$FLOOR_PID")
  NAMES+=(floor)
  LOGS+=("$TMP/floor.log")
  wait_port "$1" "$FLOOR_PID" floor
}

# The Asio floor (bench/floor/asio_floor.cpp: bytes only, moved the way pgmoat moves them, on
# Boost.Asio coroutines), built once per run as pgmoat's Release build is (-O3, the project's
# warnings) and run as postgres with THREADS io_contexts (0: one per core, pgmoat's default).
# Sets ASIO_FLOOR_PID.
start_asio_floor() {  # port threads
  local threads=$2
  ((threads > 0)) || threads=$(nproc)
  if [[ ! -x "$TMP/asio-floor" ]]; then
    g++ -std=c++20 -O3 -DNDEBUG -DBOOST_ASIO_NO_DEPRECATED -Wall -Wextra -Wpedantic -Wconversion \
      -Wshadow -Werror -pthread \
      "$REPO/bench/floor/asio_floor.cpp" -o "$TMP/asio-floor" || die "could not build bench/floor/asio_floor.cpp"
  fi
  setpriv --reuid=postgres --regid=postgres --init-groups ${RUN_UNDER:-} "$TMP/asio-floor" "$1" "$PG_PORT" "$threads" \
    >"$TMP/asio-floor-$1.log" 2>&1 &
  ASIO_FLOOR_PID=$!
  PIDS+=("$ASIO_FLOOR_PID")
  NAMES+=(asio-floor)
  LOGS+=("$TMP/asio-floor-$1.log")
  wait_port "$1" "$ASIO_FLOOR_PID" asio-floor
}

# N free 127.0.0.1 ports, all held open together while picking so they are distinct.
free_ports() {  # n
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# pgmoat with config/pgmoat.toml (the default policy) in front of the cluster on PG_PORT,
# audit on (fsync) or off; `noguard` drops the row-limit rule. Sets STARTED_PID; appends to
# PIDS, NAMES and LOGS.
start_pgmoat() {  # name port audit(on|off) [noguard]
  local name=$1 port=$2 audit=$3 conf="$TMP/${1/pgmoat/proxy}.toml"
  sed -e "s/^port = 6432/port = $port/" -e "s/^port = 5432/port = $PG_PORT/" \
    "$REPO/config/pgmoat.toml" >"$conf"
  if [[ "${4:-}" == noguard ]]; then
    # The same policy without its row-limit rule: what the blast-radius guard costs.
    awk '/^\[\[rules\]\]$/ { held = $0; next }
         held != "" { if ($0 ~ /^name = "row-limit"$/) skip = 1; else print held; held = "" }
         skip && /^\[/ && !/^\[\[rules\]\]$/ { skip = 0 }
         !skip { print }' "$conf" >"$conf.tmp" && mv "$conf.tmp" "$conf"
    ! grep -q '^max_rows' "$conf" || die "could not remove the row-limit rule from $conf"
  fi
  { grep -q "^port = $port\$" "$conf" && grep -q "^port = $PG_PORT\$" "$conf"; } ||
    die "could not set the ports in a copy of config/pgmoat.toml"
  if [[ -n "${BENCH_PGMOAT_THREADS:-}" ]]; then
    sed -i "s/^\[listen\]\$/[listen]\nthreads = $BENCH_PGMOAT_THREADS/" "$conf"
  fi
  {
    echo
    echo "# $BENCH_SCRIPT"
    echo "[audit]"
    if [[ "$audit" == on ]]; then
      echo "path = \"$TMP/audit-$name.jsonl\""
    else
      echo "enabled = false"
    fi
  } >>"$conf"
  # RUN_UNDER: an optional command prefix (bench/instructions.sh runs pgmoat under callgrind).
  ${RUN_UNDER:-} "$PROXY_BIN" serve --config "$conf" >"$TMP/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  NAMES+=("$name")
  LOGS+=("$TMP/$name.log")
  wait_port "$port" "$STARTED_PID" "$name"
}
