#!/usr/bin/env bash
# What the row guard costs per guarded statement as the database holds more tables. The guard
# counts the rows a DELETE / UPDATE / MERGE touched by reading the per-table counters of every
# user table before and after it (proxy/row_guard.h), so its cost grows with the catalog.
#
#   sudo bash bench/guard_tables.sh
#
# Environment:
#   PGMOAT_BIN     pgmoat binary (default build/pgmoat, relative to the repository root)
#   GUARD_TABLES   table counts to measure at, ascending (default "0 100 1000 3000"): empty
#                  tables created next to the one being updated
#   BENCH_SECONDS  duration of each pgbench run (default 5)
#   BENCH_KEEP=1   keep the temp dir (logs, configs, audit file) instead of deleting it
#   BENCH_TMPDIR   where to create the temp dir (default /tmp)
#
# At each table count, one client (pgbench -M prepared, so the guard runs in its
# extended-protocol mode) runs two scripts against Postgres directly, through pgmoat without
# its row-limit rule, and through pgmoat with the default policy, one after another:
#   autocommit  a single-row UPDATE by primary key
#   block       BEGIN, three such UPDATEs, COMMIT
# "guard µs" is the average latency with the guard minus without, per guarded UPDATE.
#
# Runs as root (Postgres itself runs as the unprivileged `postgres` user). Uses only
# 127.0.0.1 and ports picked free at start; removes everything on exit.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TABLES="${GUARD_TABLES:-0 100 1000 3000}"
SECONDS_PER_RUN="${BENCH_SECONDS:-5}"
BENCH_SCRIPT=bench/guard_tables.sh
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"  # PG_BIN, PSQL, PGBENCH, die, log, bench_setup, start_pgmoat, ...
bench_require
require_positive_int BENCH_SECONDS "$SECONDS_PER_RUN"
prev=-1
for n in $TABLES; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "GUARD_TABLES must be non-negative integers, got '$n'"
  ((n > prev)) || die "GUARD_TABLES must be ascending, got $prev before $n"
  prev=$n
done

bench_setup pm-guardtab
read -r PG_PORT MOAT_PORT MOAT_NOGUARD_PORT < <(free_ports 3)

log "PostgreSQL 15 on 127.0.0.1:$PG_PORT (temp dir $TMP)"
start_postgres <<CONF
max_connections = 50
shared_buffers = 128MB
CONF

sql() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres "$@"; }
sql -c 'CREATE TABLE acct (id int PRIMARY KEY, v int NOT NULL)' \
  -c 'INSERT INTO acct SELECT g, 0 FROM generate_series(1, 1000) g' >/dev/null

log "pgmoat (default policy, audit on) on 127.0.0.1:$MOAT_PORT"
start_pgmoat pgmoat "$MOAT_PORT" on
log "pgmoat (audit on, no row-limit rule) on 127.0.0.1:$MOAT_NOGUARD_PORT"
start_pgmoat pgmoat-noguard "$MOAT_NOGUARD_PORT" on noguard

cat >"$TMP/autocommit.sql" <<'SQL'
\set id random(1, 1000)
UPDATE acct SET v = v + 1 WHERE id = :id;
SQL
cat >"$TMP/block.sql" <<'SQL'
\set id random(1, 998)
BEGIN;
UPDATE acct SET v = v + 1 WHERE id = :id;
UPDATE acct SET v = v + 1 WHERE id = :id + 1;
UPDATE acct SET v = v + 1 WHERE id = :id + 2;
COMMIT;
SQL

run() {  # script port -> average latency in ms
  local out
  out=$("$PGBENCH" -n -M prepared -c 1 -T "$SECONDS_PER_RUN" -f "$TMP/$1.sql" \
    -h 127.0.0.1 -p "$2" -U postgres postgres 2>&1) || { echo "$out" >&2; die "pgbench $1 on port $2 failed"; }
  echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'
}

echo
echo "== row guard cost by number of tables: single-row UPDATEs by primary key, 1 client, -M prepared (${SECONDS_PER_RUN}s each) =="
printf '%-8s %-11s %12s %16s %14s %10s\n' tables script "direct ms" "pgmoat noguard" "pgmoat guard" "guard µs"
have=0
for n in $TABLES; do
  if ((n > have)); then
    log "creating tables $((have + 1))..$n"
  fi
  while ((n > have)); do  # 500 per transaction: each holds a lock until it commits
    upto=$((n - have > 500 ? have + 500 : n))
    sql -c "DO \$\$ BEGIN FOR i IN $((have + 1))..$upto LOOP
              EXECUTE format('CREATE TABLE filler_%s (id int PRIMARY KEY, v int)', i);
            END LOOP; END \$\$" >/dev/null
    have=$upto
  done
  for script in autocommit block; do
    d=$(run "$script" "$PG_PORT")
    ng=$(run "$script" "$MOAT_NOGUARD_PORT")
    g=$(run "$script" "$MOAT_PORT")
    [[ -n "$d" && -n "$ng" && -n "$g" ]] || die "pgbench printed no average latency (logs in $TMP)"
    per=1
    [[ $script == block ]] && per=3
    printf '%-8s %-11s %12.3f %16.3f %14.3f %10.0f\n' "$((n + 1))" "$script" "$d" "$ng" "$g" \
      "$(awk -v a="$g" -v b="$ng" -v k="$per" 'BEGIN { print (a - b) * 1000 / k }')"
  done
done
echo "tables: user tables in the database (the updated one included)"
echo "guard µs: (pgmoat guard - pgmoat noguard) per guarded UPDATE (block: 3 per transaction)"
