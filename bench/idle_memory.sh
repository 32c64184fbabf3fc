#!/usr/bin/env bash
# pgmoat memory per idle client connection, with PgBouncer (session pooling) side by side in
# the same run. Checks the target "at most 64 KiB of pgmoat's RSS per idle client connection
# at 5,000 idle connections". See bench/README.md.
#
#   sudo bash bench/idle_memory.sh                          5000 idle connections
#   sudo IDLE_CONNECTIONS=1000 bash bench/idle_memory.sh    fewer
#
# Environment:
#   PGMOAT_BIN        pgmoat binary (default build/pgmoat, relative to the repository root)
#   IDLE_CONNECTIONS  idle client connections opened through each proxy (default 5000)
#   BENCH_KEEP=1      keep the temp dir (logs, configs, audit file) instead of deleting it
#   BENCH_TMPDIR      where to create the temp dir (default /tmp)
#
# For each proxy in turn (pgmoat, then PgBouncer; never both at once, so the number of
# Postgres backends does not double): read the proxy's VmRSS (/proc/PID/status) and Pss
# (/proc/PID/smaps_rollup) before any client connects, open IDLE_CONNECTIONS connections with
# psycopg, run SELECT 1 once on each, leave them all open and idle, wait 2 s, read again.
# Per connection = (after - before) / IDLE_CONNECTIONS.
#
# Runs as root (Postgres and PgBouncer themselves run as the unprivileged `postgres` user).
# Uses only 127.0.0.1 and free ports below 32768 (outside the kernel's ephemeral range, which
# the 2 x IDLE_CONNECTIONS outgoing connections use); removes everything on exit.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=/usr/bin/python3

N="${IDLE_CONNECTIONS:-5000}"
TARGET_KIB=64
SETTLE_SECONDS=2
BENCH_SCRIPT=bench/idle_memory.sh
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"  # PG_BIN, PSQL, die, log, PGMOAT_BIN, bench_setup, ...
bench_require pgbouncer
"$PYTHON" -c 'import psycopg' 2>/dev/null || die "$PYTHON has no psycopg (apt-get install python3-psycopg)"
require_positive_int IDLE_CONNECTIONS "$N"

# ---- can this machine hold N idle connections through a proxy? ---------------------------
# Every idle client costs: one fd in the client, two in the proxy (client + server socket),
# one Postgres backend process, and two local ports (client -> proxy, proxy -> Postgres).
# Check each limit up front and say which one is too small.
NEED_FDS=$((2 * N + 1024))
if (($(ulimit -Sn) < NEED_FDS)); then
  if (($(ulimit -Hn) < NEED_FDS)); then
    ulimit -Hn "$NEED_FDS" 2>/dev/null ||
      die "fd limit: $N idle connections need $NEED_FDS open files in the proxy, but the hard" \
        "limit is $(ulimit -Hn) and cannot be raised (fs.nr_open = $(</proc/sys/fs/nr_open))"
  fi
  ulimit -Sn "$NEED_FDS"
fi
NEED_PROCS=$((N + 100))  # backends plus postmaster, auxiliary processes and slack
read -r _ _ _ RUNNABLE_TOTAL _ </proc/loadavg
TASKS_NOW=${RUNNABLE_TOTAL#*/}
PID_MAX=$(</proc/sys/kernel/pid_max)
THREADS_MAX=$(</proc/sys/kernel/threads-max)
((TASKS_NOW + NEED_PROCS < PID_MAX)) ||
  die "process limit: $N Postgres backends need $NEED_PROCS more processes, but $TASKS_NOW" \
    "tasks already run and kernel.pid_max is $PID_MAX"
((TASKS_NOW + NEED_PROCS < THREADS_MAX)) ||
  die "process limit: $N Postgres backends need $NEED_PROCS more processes, but $TASKS_NOW" \
    "tasks already run and kernel.threads-max is $THREADS_MAX"
# RLIMIT_NPROC counts every process of the postgres user (other clusters on this machine too).
# ps exits 1 when the user has no processes, which pipefail would turn into a silent exit
PG_USER_TASKS=$( (ps -L -u postgres --no-headers 2>/dev/null || true) | wc -l)
if [[ $(ulimit -u) != unlimited ]] && (($(ulimit -u) < PG_USER_TASKS + NEED_PROCS)); then
  ulimit -u $((PG_USER_TASKS + NEED_PROCS)) 2>/dev/null ||
    die "fork limit: $N Postgres backends need $NEED_PROCS processes of user postgres" \
      "($PG_USER_TASKS already run), but ulimit -u is $(ulimit -u) and cannot be raised"
fi
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
((PORT_HI - PORT_LO + 1 > 2 * N + 1000)) ||
  die "port limit: $N idle connections need $((2 * N)) local ports, but" \
    "net.ipv4.ip_local_port_range is $PORT_LO-$PORT_HI"
# An idle PostgreSQL 15 backend after one SELECT 1, plus the psycopg client's share, took
# about 1.25 MiB per connection on the reference machine: ask for 2 MiB to be safe.
MEM_AVAIL_KIB=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
NEED_MEM_KIB=$((N * 2 * 1024 + 512 * 1024))
((MEM_AVAIL_KIB > NEED_MEM_KIB)) ||
  die "memory: $N idle Postgres backends need about $((NEED_MEM_KIB / 1024)) MiB, but only" \
    "$((MEM_AVAIL_KIB / 1024)) MiB are available (lower IDLE_CONNECTIONS)"

bench_setup pm-idle

# Free 127.0.0.1 ports below 32768 (the ephemeral range starts there, and this run makes
# 2 x N outgoing connections), all held open together while picking so they are distinct.
read -r PG_PORT MOAT_PORT BOUNCER_PORT < <("$PYTHON" - <<'PY'
import random, socket
socks = []
for port in random.sample(range(20000, 32768), 500):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    socks.append(s)
    if len(socks) == 3:
        break
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)
[[ -n "$BOUNCER_PORT" ]] || die "found no 3 free ports in 127.0.0.1:20000-32767"

# ---- PostgreSQL --------------------------------------------------------------------------
log "PostgreSQL 15 on 127.0.0.1:$PG_PORT, max_connections $((N + 50)) (temp dir $TMP)"
start_postgres <<CONF
max_connections = $((N + 50))
shared_buffers = 32MB
CONF

client_backends() {  # client backends in Postgres, not counting the one asking
  "$PSQL" -X -q -At -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres -c \
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
}

# ---- pgmoat: default policy, audit on, max_client_connections raised if needed ------------
MOAT_CONF="$TMP/proxy.toml"
MOAT_MAX=$((N + 100 > 10000 ? N + 100 : 10000))
sed -e "s/^port = 6432/port = $MOAT_PORT/" -e "s/^port = 5432/port = $PG_PORT/" \
  -e "s/^max_client_connections = .*/max_client_connections = $MOAT_MAX/" \
  "$REPO/config/pgmoat.toml" >"$MOAT_CONF"
{ grep -q "^port = $MOAT_PORT\$" "$MOAT_CONF" && grep -q "^port = $PG_PORT\$" "$MOAT_CONF" &&
  grep -q "^max_client_connections = $MOAT_MAX\$" "$MOAT_CONF"; } ||
  die "could not set the ports and max_client_connections in a copy of config/pgmoat.toml"
cat >>"$MOAT_CONF" <<CONF

# bench/idle_memory.sh
[audit]
path = "$TMP/audit.jsonl"
CONF
log "pgmoat (default policy, audit on, max_client_connections $MOAT_MAX) on 127.0.0.1:$MOAT_PORT"
"$PROXY_BIN" serve --config "$MOAT_CONF" >"$TMP/pgmoat.log" 2>&1 &
MOAT_PID=$!
PIDS+=("$MOAT_PID")
NAMES+=(pgmoat)
wait_port "$MOAT_PORT" "$MOAT_PID" pgmoat

# ---- PgBouncer: session pooling, trust with an auth_file ----------------------------------
log "pgbouncer (session pool, max_client_conn $((N + 100))) on 127.0.0.1:$BOUNCER_PORT"
start_pgbouncer "$BOUNCER_PORT" $((N + 10)) $((N + 100))

# ---- the idle clients ---------------------------------------------------------------------
# Opens N connections one after another (a progress line every 500), runs SELECT 1 once on
# each, writes the ready file and keeps them all open and idle until the stop file appears.
cat >"$TMP/idle_clients.py" <<'PY'
import os, sys, time
# psycopg 3.1 without its C extension waits with select(), which fails on fds >= 1024.
os.environ["PSYCOPG_WAIT_FUNC"] = "wait_epoll"
import psycopg

port, n, ready, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
name = sys.argv[5]
conns = []
t0 = time.monotonic()
try:
    while len(conns) < n:
        for _ in range(min(500, n - len(conns))):
            c = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                sslmode="disable", gssencmode="disable", connect_timeout=30,
                                application_name="idle_memory", autocommit=True)
            c.execute("SELECT 1").fetchone()
            conns.append(c)
        print("    %-9s %5d / %d connections open and idle (%.1f s)"
              % (name, len(conns), n, time.monotonic() - t0), file=sys.stderr, flush=True)
except Exception as e:
    msg = " ".join(str(e).split())
    print("FAILED at connection %d of %d: %s: %s" % (len(conns) + 1, n, type(e).__name__, msg),
          file=sys.stderr, flush=True)
    sys.exit(3)
with open(ready + ".tmp", "w") as f:
    f.write("%.1f\n" % (time.monotonic() - t0))
os.rename(ready + ".tmp", ready)
while not os.path.exists(stop):
    time.sleep(0.1)
for c in conns:
    c.close()
PY

mem_kib() {  # pid -> "VmRSS Pss" in KiB
  local rss pss
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status")
  pss=$(awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup")
  [[ -n "$rss" && -n "$pss" ]] || die "cannot read the memory of pid $1"
  echo "$rss $pss"
}

# Which limit stopped the clients short of N, from the logs of everything involved.
explain_failure() {  # name proxy-log
  local why=""
  if grep -qs 'could not fork' "$TMP/postgres.log"; then
    why="fork limit: Postgres could not fork a backend ($(grep -m1 'could not fork' "$TMP/postgres.log"))"
  elif grep -qs 'too many clients' "$TMP/postgres.log" "$2" "$TMP/client-$1.err"; then
    why="connection limit: Postgres max_connections or the proxy's client limit was reached"
  elif grep -qis 'too many open files' "$TMP/postgres.log" "$2" "$TMP/client-$1.err"; then
    why="fd limit: a process ran out of file descriptors (ulimit -n is $(ulimit -n))"
  elif grep -qs 'out of range in select' "$TMP/client-$1.err"; then
    why="fd limit: the client waited with select(), which cannot watch fds >= 1024 (PSYCOPG_WAIT_FUNC)"
  elif grep -qis 'cannot assign requested address' "$2" "$TMP/client-$1.err"; then
    why="port limit: no free local port (net.ipv4.ip_local_port_range)"
  elif grep -qis 'out of memory\|cannot allocate memory' "$TMP/postgres.log" "$2" "$TMP/client-$1.err"; then
    why="memory: out of memory"
  fi
  echo "${why:-no known limit named in the logs; see $TMP (rerun with BENCH_KEEP=1)}"
}

# One proxy: memory before any client, N clients connect and go idle, memory again.
RESULTS=()
measure() {  # name port pid proxy-log
  local name=$1 port=$2 pid=$3 plog=$4 before after client backends fds threads secs
  local ready="$TMP/ready-$name" stop="$TMP/stop-$name"
  kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) is not running; last lines of $plog: $(tail -n 5 "$plog")"
  before=$(mem_kib "$pid")
  log "$name: $N idle connections (RSS before: $((${before% *} / 1024)) MiB)"
  : >"$TMP/client-$name.err"  # exists before the loop reads it (the & child opens it later)
  "$PYTHON" "$TMP/idle_clients.py" "$port" "$N" "$ready" "$stop" "$name" 2>>"$TMP/client-$name.err" &
  client=$!
  PIDS+=("$client")
  NAMES+=("client of $name")
  local shown=0 lines
  while [[ ! -e "$ready" ]]; do
    lines=$(wc -l <"$TMP/client-$name.err")  # pass the client's progress lines on
    if ((lines > shown)); then
      sed -n "$((shown + 1)),${lines}p" "$TMP/client-$name.err" | grep '^    ' >&2 || true
      shown=$lines
    fi
    if ! kill -0 "$client" 2>/dev/null; then
      grep -v '^    ' "$TMP/client-$name.err" >&2 || true
      kill -0 "$pid" 2>/dev/null ||
        die "$name died while the clients connected; last lines of $plog: $(tail -n 5 "$plog")"
      die "could not open $N idle connections through $name. $(explain_failure "$name" "$plog")"
    fi
    sleep 0.2
  done
  tail -n +$((shown + 1)) "$TMP/client-$name.err" | grep '^    ' >&2 || true
  secs=$(<"$ready")
  sleep "$SETTLE_SECONDS"
  kill -0 "$pid" 2>/dev/null || die "$name died with $N clients connected; last lines of $plog: $(tail -n 5 "$plog")"
  after=$(mem_kib "$pid")
  fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  threads=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")
  backends=$(client_backends)
  ((backends >= N)) || die "$name: only $backends Postgres backends for $N idle clients"
  log "$name: $N connections opened in ${secs} s; RSS after: $((${after% *} / 1024)) MiB," \
    "$fds fds, $threads threads, $backends Postgres client backends"
  RESULTS+=("$name ${before% *} ${after% *} ${before#* } ${after#* }")
  touch "$stop"
  wait "$client" || die "the clients of $name did not close cleanly: $(tail -n 3 "$TMP/client-$name.err")"
}

wait_backends_gone() {
  for _ in $(seq 1 600); do  # up to 60 s
    (($(client_backends) == 0)) && return 0
    sleep 0.1
  done
  die "Postgres still has $(client_backends) client backends 60 s after the clients closed"
}

log "one proxy at a time: pgmoat, then pgbouncer"
measure pgmoat "$MOAT_PORT" "$MOAT_PID" "$TMP/pgmoat.log"
# pgmoat does not pool: each backend ends with its client. Wait for all of them before
# PgBouncer's turn, so the two runs see the same Postgres.
wait_backends_gone
measure pgbouncer "$BOUNCER_PORT" "$BOUNCER_PID" "$TMP/pgbouncer.log"

# ---- report -------------------------------------------------------------------------------
echo
echo "pgmoat idle-connection memory  $(date -u '+%Y-%m-%d %H:%M UTC')  host $(hostname), $(nproc) cores"
# The checkout need not be what the binary was built from: name both.
echo "pgmoat $PGMOAT_BIN (sha256 $(sha256sum "$PGMOAT_BIN" | cut -c1-12); checkout $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown))," \
  "default policy, audit on; $(pgbouncer --version | head -1) (session pool);" \
  "$("$PG_BIN/postgres" --version)"
echo "$N connections per proxy (psycopg, SELECT 1 once each, then idle ${SETTLE_SECONDS} s);" \
  "per connection = (after - before) / $N"
echo
printf '%-10s %11s %14s %13s %12s %14s %13s %12s\n' target connections rss_before_MiB \
  rss_after_MiB KiB_per_conn pss_before_MiB pss_after_MiB pss_KiB_conn
for row in "${RESULTS[@]}"; do
  read -r name rb ra pb pa <<<"$row"
  awk -v n="$name" -v c="$N" -v rb="$rb" -v ra="$ra" -v pb="$pb" -v pa="$pa" 'BEGIN {
    printf "%-10s %11d %14.1f %13.1f %12.1f %14.1f %13.1f %12.1f\n",
      n, c, rb / 1024, ra / 1024, (ra - rb) / c, pb / 1024, pa / 1024, (pa - pb) / c
  }'
done
read -r _ mrb mra _ _ <<<"${RESULTS[0]}"
read -r _ brb bra _ _ <<<"${RESULTS[1]}"
awk -v c="$N" -v t="$TARGET_KIB" -v m=$((mra - mrb)) -v b=$((bra - brb)) 'BEGIN {
  k = m / c
  printf "verdict: pgmoat %.1f KiB RSS per idle connection at %d connections (target <= %d KiB): %s;",
    k, c, t, (k <= t) ? "ok" : "MISS"
  if (b > 0) printf " %.2f x PgBouncer'"'"'s %.1f KiB\n", m / b, b / c
  else printf " PgBouncer %.1f KiB\n", b / c
}'
