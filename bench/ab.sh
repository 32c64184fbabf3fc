#!/usr/bin/env bash
# CPU per transaction of pgmoat builds side by side with PgBouncer, the floor and the Asio floor
# (bench/floor/asio_floor.cpp: bytes only, on pgmoat's I/O layer, at each AB_THREADS), for
# small changes to the per-message path: many short select-only runs, alternating between the
# targets so that a shared machine's load falls on all of them alike, and medians.
#
#   sudo PGMOAT_BIN=build-bench/pgmoat AB_BASE_BIN=/tmp/pgmoat-before bash bench/ab.sh
#
# Environment:
#   PGMOAT_BIN   the pgmoat binary under test (default build/pgmoat)
#   AB_BASE_BIN  a second pgmoat binary to compare with (optional)
#   AB_THREADS   pgmoat's [listen] threads, one run of each binary per value (default "0":
#                one per core; "0 1" adds each binary with one I/O thread)
#   AB_ROUNDS    alternating rounds (default 7)      AB_SECONDS  seconds per run (default 4)
#   AB_MODES     pgbench -M modes (default "simple prepared")
#   AB_CLIENTS   clients (default 8)                 AB_SCALE    pgbench scale (default 1)
#
# Per mode and target: median CPU µs per transaction (min and max), the medians of user and
# system time, context switches per transaction (voluntary + involuntary, every thread), the
# TPS of the median run, pgbench's average latency (median) and the latency each target adds
# to direct Postgres (the median over rounds of its latency minus direct's in the same round;
# with AB_CLIENTS=1 this is the 1-client latency target). Direct Postgres runs in every round
# too; its CPU is not sampled (its backends are other processes). CPU is /proc/PID/stat's utime + stime, in clock ticks: use runs
# of several seconds. pgmoat runs the shipped policy with the audit on, like bench/run.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${AB_ROUNDS:-7}"
SECONDS_PER_RUN="${AB_SECONDS:-4}"
MODES="${AB_MODES:-simple prepared}"
CLIENTS="${AB_CLIENTS:-8}"
SCALE="${AB_SCALE:-1}"
THREADS="${AB_THREADS:-0}"
BENCH_SCRIPT=bench/ab.sh
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
bench_require pgbouncer
require_positive_int AB_ROUNDS "$ROUNDS"
require_positive_int AB_SECONDS "$SECONDS_PER_RUN"
require_positive_int AB_CLIENTS "$CLIENTS"
require_positive_int AB_SCALE "$SCALE"
for mode in $MODES; do
  [[ "$mode" =~ ^(simple|extended|prepared)$ ]] || die "unknown mode '$mode' in AB_MODES"
done
for t in $THREADS; do
  [[ "$t" =~ ^[0-9]+$ ]] || die "AB_THREADS must be whole numbers, got '$t'"
done
if [[ -n "${AB_BASE_BIN:-}" ]]; then
  [[ -x "$AB_BASE_BIN" ]] || die "no pgmoat binary at AB_BASE_BIN=$AB_BASE_BIN"
fi
CLK_TCK=$(getconf CLK_TCK)

bench_setup pm-ab
read -r PG_PORT BOUNCER_PORT FLOOR_PORT < <(free_ports 3)

log "PostgreSQL 15 on 127.0.0.1:$PG_PORT (temp dir $TMP)"
start_postgres <<CONF
max_connections = 100
shared_buffers = 256MB
CONF
"$PGBENCH" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >"$TMP/init.log" 2>&1 ||
  { cat "$TMP/init.log" >&2; die "pgbench -i failed"; }

TARGETS=() PORTS=() TPIDS=()
add_target() {  # name port pid
  TARGETS+=("$1")
  PORTS+=("$2")
  TPIDS+=("$3")
}

add_target direct "$PG_PORT" ""
start_pgbouncer "$BOUNCER_PORT" 20 100
add_target pgbouncer "$BOUNCER_PORT" "$BOUNCER_PID"
start_floor "$FLOOR_PORT"
add_target floor "$FLOOR_PORT" "$FLOOR_PID"

for t in $THREADS; do
  read -r port < <(free_ports 1)
  start_asio_floor "$port" "$t"
  add_target "asio-floor-t$t" "$port" "$ASIO_FLOOR_PID"
  log "asio-floor-t$t (bench/floor/asio_floor.cpp, threads $t) on 127.0.0.1:$port"
done

BINS=("$PGMOAT_BIN")
LABELS=(pgmoat)
if [[ -n "${AB_BASE_BIN:-}" ]]; then
  cp "$AB_BASE_BIN" "$TMP/base-under-test"
  BINS+=("$TMP/base-under-test")
  LABELS+=(base)
fi
for b in "${!BINS[@]}"; do
  for t in $THREADS; do
    read -r port < <(free_ports 1)
    name="${LABELS[$b]}-t$t"
    PROXY_BIN="${BINS[$b]}"
    if [[ $b -eq 0 ]]; then PROXY_BIN="$TMP/proxy-under-test"; fi
    BENCH_PGMOAT_THREADS=$t start_pgmoat "$name" "$port" on
    add_target "$name" "$port" "$STARTED_PID"
    log "$name: $(basename "${BINS[$b]}") with threads = $t on 127.0.0.1:$port"
  done
done

# utime stime (ticks) and context switches of every thread of a process
sample() {  # pid
  local cs
  cs=$(cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }')
  echo "$(proc_cpu_ticks "$1") $cs"
}

RESULTS="$TMP/results.tsv"  # mode target round tps tx user_ticks sys_ticks cs latency_ms
: >"$RESULTS"
for mode in $MODES; do
  for round in $(seq 1 "$ROUNDS"); do
    log "-M $mode, round $round of $ROUNDS"
    for i in "${!TARGETS[@]}"; do
      pid=${TPIDS[$i]}
      u0=0 s0=0 c0=0 u1=0 s1=0 c1=0
      if [[ -n "$pid" ]]; then
        kill -0 "$pid" 2>/dev/null || die "${TARGETS[$i]} (pid $pid) is gone; logs in $TMP"
        read -r u0 s0 c0 < <(sample "$pid")
      fi
      out="$TMP/run-$mode-${TARGETS[$i]}-$round.log"
      "$PGBENCH" -n -S -M "$mode" -c "$CLIENTS" -j $((CLIENTS < 2 ? CLIENTS : 2)) \
        -T "$SECONDS_PER_RUN" -h 127.0.0.1 -p "${PORTS[$i]}" -U postgres postgres >"$out" 2>&1 ||
        { cat "$out" >&2; die "pgbench through ${TARGETS[$i]} failed"; }
      if [[ -n "$pid" ]]; then read -r u1 s1 c1 < <(sample "$pid"); fi
      lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out")
      tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
      tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out")
      [[ -n "$tx" && "$tx" -gt 0 ]] || die "no transactions through ${TARGETS[$i]} (see $out)"
      [[ -n "$lat" ]] || die "no latency average in pgbench's output (see $out)"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "${TARGETS[$i]}" "$round" "$tps" "$tx" \
        $((u1 - u0)) $((s1 - s0)) $((c1 - c0)) "$lat" >>"$RESULTS"
    done
  done
done

echo "bench/ab.sh: pgbench -S, $CLIENTS clients, scale $SCALE, median of $ROUNDS alternating runs of ${SECONDS_PER_RUN}s"
echo "pgmoat = $PGMOAT_BIN${AB_BASE_BIN:+, base = $AB_BASE_BIN}; -tN: [listen] threads = N (0: one per core)"
for mode in $MODES; do
  echo
  echo "-M $mode"
  printf '%-14s %10s %15s %8s %8s %8s %10s %9s %9s\n' target "cpu µs/tx" "(min-max)" user sys "cs/tx" \
    "tps" "lat µs" "added µs"
  for t in "${TARGETS[@]}"; do
    awk -F'\t' -v m="$mode" -v t="$t" -v hz="$CLK_TCK" '
      $1 == m && $2 == "direct" { direct[$3] = $9 * 1000 }
      $1 == m && $2 == t {
        n++; tx = $5; cpu[n] = ($6 + $7) / hz * 1e6 / tx; usr[n] = $6 / hz * 1e6 / tx
        sys[n] = $7 / hz * 1e6 / tx; cs[n] = $8 / tx; tps[n] = $4; lat[n] = $9 * 1000; round[n] = $3
      }
      function median(a, k,   i, j, x, b) {
        for (i = 1; i <= k; i++) b[i] = a[i]
        for (i = 2; i <= k; i++) { x = b[i]; for (j = i - 1; j > 0 && b[j] > x; j--) b[j + 1] = b[j]; b[j + 1] = x }
        return b[int((k + 1) / 2)]
      }
      END {
        if (n == 0) exit
        for (i = 1; i <= n; i++) added[i] = lat[i] - direct[round[i]]
        if (t == "direct") {
          printf "%-14s %10s %15s %8s %8s %8s %10.0f %9.1f %9s\n", t, "-", "", "-", "-", "-",
            median(tps, n), median(lat, n), "-"
          exit
        }
        lo = cpu[1]; hi = cpu[1]; mid = median(cpu, n)
        for (i = 1; i <= n; i++) { if (cpu[i] < lo) lo = cpu[i]; if (cpu[i] > hi) hi = cpu[i]; if (cpu[i] == mid) at = tps[i] }
        printf "%-14s %10.1f %15s %8.1f %8.1f %8.2f %10.0f %9.1f %+9.1f\n", t, mid, sprintf("(%.1f-%.1f)", lo, hi),
          median(usr, n), median(sys, n), median(cs, n), at, median(lat, n), median(added, n)
      }' "$RESULTS"
  done
done
