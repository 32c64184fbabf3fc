#!/usr/bin/env bash
# User-space instructions per transaction of pgmoat and of PgBouncer, counted by callgrind.
# Unlike TPS and CPU seconds, instruction counts do not move with the load of a shared machine,
# so this is the benchmark for small changes to the per-message path: run it before and after.
#
#   sudo bash bench/instructions.sh
#
# Environment:
#   PGMOAT_BIN         pgmoat binary (default build/pgmoat, relative to the repository root)
#   INSTR_TRANSACTIONS transactions counted per mode (default 3000)
#   INSTR_ROWS         rows of the one large SELECT (default 100000)
#   INSTR_TPCB         TPC-B-like transactions counted (default INSTR_TRANSACTIONS / 3)
#   INSTR_MODES        which modes to count (default "prepared simple rows tpcb")
#   BENCH_KEEP=1       keep the temp dir (logs, configs, callgrind files)
#   BENCH_TMPDIR       where to create the temp dir (default /tmp)
#
# For each of pgmoat (default policy, audit on), PgBouncer (session pool) and the Asio floor
# (bench/floor/asio_floor.cpp, one thread: what moving the bytes on Boost.Asio costs), and each of
# pgbench -S -M prepared and -M simple with one client: the proxy runs under
# `valgrind --tool=callgrind` twice, once for 200 transactions and once for 200 + N, and the
# difference of the two totals divided by N is what one transaction costs (start-up, login and
# shutdown cancel out). Likewise a SELECT of INSTR_ROWS rows against one of 1 row gives the cost
# per row of a large result (psql), and pgbench's TPC-B-like transaction (-M simple: three
# UPDATEs under the row guard, an INSERT, a SELECT, every write audited). Kernel time (the
# socket system calls themselves) is not counted: the CPU columns of bench/run.sh include it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${INSTR_TRANSACTIONS:-3000}"
ROWS="${INSTR_ROWS:-100000}"
TPCB="${INSTR_TPCB:-$((N / 3 > 0 ? N / 3 : 1))}"
MODES="${INSTR_MODES:-prepared simple rows tpcb}"
BASE=200
BENCH_SCRIPT=bench/instructions.sh
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
bench_require pgbouncer
require_positive_int INSTR_TRANSACTIONS "$N"
require_positive_int INSTR_ROWS "$ROWS"
require_positive_int INSTR_TPCB "$TPCB"
for mode in $MODES; do
  [[ "$mode" =~ ^(prepared|simple|rows|tpcb)$ ]] || die "unknown mode '$mode' in INSTR_MODES"
done
((ROWS > 1)) || die "INSTR_ROWS must be at least 2"
command -v valgrind >/dev/null || die "valgrind not installed (apt-get install valgrind)"
command -v callgrind_annotate >/dev/null || die "callgrind_annotate not found (package valgrind)"

bench_setup pm-instr
read -r PG_PORT PROXY_PORT < <(free_ports 2)
WAIT_PORT_TENTHS=600  # a proxy under valgrind starts slowly

log "PostgreSQL 15 on 127.0.0.1:$PG_PORT (temp dir $TMP)"
start_postgres <<CONF
max_connections = 50
CONF
"$PGBENCH" -i -q -s 1 -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >"$TMP/pgbench-init.log" 2>&1 ||
  { cat "$TMP/pgbench-init.log" >&2; die "pgbench -i failed"; }

# The proxy that just exited is no longer one to stop at exit.
forget_started() {
  local i kept_pids=() kept_names=()
  for i in "${!PIDS[@]}"; do
    [[ "${PIDS[$i]}" == "$STARTED_PID" ]] && continue
    kept_pids+=("${PIDS[$i]}")
    kept_names+=("${NAMES[$i]}")
  done
  PIDS=("${kept_pids[@]}")
  NAMES=("${kept_names[@]}")
}

# Total instructions of one proxy process that served `count` transactions (mode prepared,
# simple or tpcb), or one SELECT of `count` rows (mode rows), then exited.
instructions() {  # target mode count
  local target=$1 mode=$2 count=$3 out="$TMP/callgrind.$1.$2.$3"
  RUN_UNDER="valgrind --tool=callgrind --callgrind-out-file=$out"
  if [[ "$target" == pgmoat ]]; then
    start_pgmoat pgmoat "$PROXY_PORT" on
  elif [[ "$target" == asio-floor ]]; then
    start_asio_floor "$PROXY_PORT" 1
    STARTED_PID=$ASIO_FLOOR_PID
  else
    start_pgbouncer "$PROXY_PORT" 5 20
    STARTED_PID=$BOUNCER_PID
  fi
  RUN_UNDER=
  if [[ "$mode" == rows ]]; then
    "$PSQL" -X -q -o /dev/null -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres \
      -c "SELECT g, 'row' FROM generate_series(1, $count) g" >"$TMP/psql.$target.$count.log" 2>&1 ||
      die "psql through $target failed (see $TMP/psql.$target.$count.log)"
  elif [[ "$mode" == tpcb ]]; then
    "$PGBENCH" -n -M simple -c 1 -t "$count" -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres \
      >"$TMP/pgbench.$target.$mode.$count.log" 2>&1 ||
      die "pgbench through $target failed (see $TMP/pgbench.$target.$mode.$count.log)"
  else
    "$PGBENCH" -n -S -M "$mode" -c 1 -t "$count" -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres \
      >"$TMP/pgbench.$target.$mode.$count.log" 2>&1 ||
      die "pgbench through $target failed (see $TMP/pgbench.$target.$mode.$count.log)"
  fi
  kill -INT "$STARTED_PID"
  wait "$STARTED_PID" 2>/dev/null || true
  forget_started
  [[ -s "$out" ]] || die "no callgrind output from $target ($out)"
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}

declare -A PER_TX
for mode in $MODES; do
  for target in pgmoat pgbouncer asio-floor; do
    if [[ "$mode" == tpcb ]]; then
      log "$target, TPC-B-like -M simple: $BASE and $((BASE + TPCB)) transactions under callgrind"
      small=$(instructions "$target" tpcb "$BASE")
      large=$(instructions "$target" tpcb $((BASE + TPCB)))
      per=$TPCB
    elif [[ "$mode" == rows ]]; then
      log "$target: SELECTs of 1 and $ROWS rows under callgrind"
      small=$(instructions "$target" rows 1)
      large=$(instructions "$target" rows "$ROWS")
      per=$((ROWS - 1))
    else
      log "$target, -M $mode: $BASE and $((BASE + N)) transactions under callgrind"
      small=$(instructions "$target" "$mode" "$BASE")
      large=$(instructions "$target" "$mode" $((BASE + N)))
      per=$N
    fi
    [[ -n "$small" && -n "$large" ]] || die "could not read callgrind totals for $target"
    PER_TX[$target.$mode]=$(((large - small) / per))
  done
done

echo
echo "pgmoat $PGMOAT_BIN (sha256 $(sha256sum "$PGMOAT_BIN" | cut -c1-12);" \
  "checkout $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')), default policy, audit on;" \
  "$(pgbouncer --version | head -1) (session pool)"
echo "user-space instructions per transaction, pgbench -S, 1 client, $N transactions (callgrind)"
echo "(rows: per row of one SELECT of $ROWS rows, psql; tpcb: per TPC-B-like transaction, -M simple," \
  "$TPCB transactions)"
echo "(asio-floor: bench/floor/asio_floor.cpp, one thread, bytes only; pgmoat - asio-floor is pgmoat's own work)"
printf '%-10s %10s %10s %18s %11s %19s\n' mode pgmoat pgbouncer pgmoat/pgbouncer asio-floor "pgmoat - asio-floor"
for mode in $MODES; do
  m=${PER_TX[pgmoat.$mode]} b=${PER_TX[pgbouncer.$mode]} a=${PER_TX[asio-floor.$mode]}
  printf '%-10s %10d %10d %18s %11d %19d\n' "$mode" "$m" "$b" \
    "$(awk -v m="$m" -v b="$b" 'BEGIN { printf "%.2f", m / b }')" "$a" $((m - a))
done
