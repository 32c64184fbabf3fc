# Shared by bench/run.sh and bench/idle_memory.sh (sourced, not run). The sourcing script sets
# BENCH_SCRIPT (its name, for messages), PG_BIN and PGMOAT_BIN, and defines die().

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

wait_port() {  # port pid name
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if [[ -n "$2" ]] && ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.1
  done
  die "$3 did not start listening on 127.0.0.1:$1 (logs in $TMP)"
}
