#!/usr/bin/env bash
# `pgmoat check` end to end: exit codes (0 runs, 1 refused, 2 usage/config error), one line per
# statement, and config errors as file:line:column.
# usage: check_cli_test.sh PGMOAT_BINARY SHIPPED_CONFIG
set -u
PGMOAT=$1
SHIPPED=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unset PGMOAT_CONFIG
failures=0

# expect_exit CODE DESCRIPTION -- COMMAND...; keeps stdout in $TMP/out, stderr in $TMP/err.
expect_exit() {
  local want=$1 what=$2
  shift 3
  "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  if [[ $got -ne $want ]]; then
    echo "FAIL: $what: exit $got, want $want"
    sed 's/^/  stdout: /' "$TMP/out"
    sed 's/^/  stderr: /' "$TMP/err"
    failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}

# expect_match FILE REGEX DESCRIPTION
expect_match() {
  if ! grep -Eq -- "$2" "$1"; then
    echo "FAIL: $3: no line matching /$2/ in:"
    sed 's/^/  /' "$1"
    failures=$((failures + 1))
  fi
}

check() { "$PGMOAT" check "$@"; }

# ---- shipped config ----
expect_exit 0 "plain select runs" -- check --config "$SHIPPED" -c "SELECT 1"
expect_match "$TMP/out" "^1 +ALLOW " "select line"

expect_exit 1 "DROP TABLE needs approval" -- check --config "$SHIPPED" -c "DROP TABLE users"
expect_match "$TMP/out" "NEEDS-APPROVAL" "drop decision"
expect_match "$TMP/out" 'pgmoat: DROP TABLE refused by rule "drop-needs-approval"' "drop message"
expect_match "$TMP/out" "SET pgmoat.approval" "drop hint"

expect_exit 1 "TRUNCATE needs approval" -- check --config "$SHIPPED" -c "TRUNCATE orders"
expect_exit 1 "DELETE without WHERE needs approval" -- check --config "$SHIPPED" -c "DELETE FROM orders"
expect_exit 0 "DELETE with WHERE runs" -- check --config "$SHIPPED" -c "DELETE FROM orders WHERE id = 7"
expect_exit 1 "pg_terminate_backend needs approval" -- \
  check --config "$SHIPPED" -c "SELECT pg_terminate_backend(42)"
expect_exit 1 "one bad statement refuses the query" -- \
  check --config "$SHIPPED" -c "SELECT 1; DROP TABLE t; SELECT 2"
[[ $(grep -Ec '^[0-9]+  (ALLOW|DENY|NEEDS|LIMIT)' "$TMP/out") -eq 3 ]] || { echo "FAIL: want 3 statement lines"; cat "$TMP/out"; failures=$((failures + 1)); }

cat >"$TMP/safe.sql" <<'SQL'
-- 0042: add invoices
CREATE TABLE invoices (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, total numeric);
CREATE INDEX invoices_customer ON invoices (customer_id);
INSERT INTO invoices (customer_id, total) VALUES (1, 10.5), (2, 3);
UPDATE invoices SET total = 0 WHERE total IS NULL;
SQL
expect_exit 0 "safe migration file runs" -- check --config "$SHIPPED" -f "$TMP/safe.sql"
[[ $(grep -Ec '^[0-9]+  (ALLOW|DENY|NEEDS|LIMIT)' "$TMP/out") -eq 4 ]] || { echo "FAIL: want 4 statement lines"; cat "$TMP/out"; failures=$((failures + 1)); }

cat >"$TMP/risky.sql" <<'SQL'
CREATE TABLE tmp_x (id int);
ALTER TABLE customers DROP COLUMN legacy_code;
INSERT INTO tmp_x VALUES (1);
SQL
expect_exit 1 "migration with DROP COLUMN needs approval" -- check --config "$SHIPPED" -f "$TMP/risky.sql"
expect_match "$TMP/out" "^2 +NEEDS-APPROVAL .*alter_drop_column" "drop column on line 2"

expect_exit 1 "SQL from stdin" -- bash -c "echo 'DROP SCHEMA public CASCADE' | '$PGMOAT' check --config '$SHIPPED'"
expect_exit 1 "unparseable SQL is refused" -- check --config "$SHIPPED" -c "DELEET FROM users"
expect_match "$TMP/out" "could not be parsed" "parse error message"
expect_exit 0 "PGMOAT_CONFIG is the default config" -- env PGMOAT_CONFIG="$SHIPPED" "$PGMOAT" check -c "SELECT 1"

# ---- row limits (max_rows rules) ----
cat >"$TMP/limits.toml" <<'EOF2'
[[rules]]
name = "mass-delete"
action = "require_approval"
classes = ["delete_without_where"]

[[rules]]
name = "log-big-merges"
action = "log"
classes = ["merge"]
max_rows = 5

[[rules]]
name = "row-limit"
action = "require_approval"
classes = ["delete", "update", "merge"]
max_rows = 1000
EOF2
expect_exit 0 "DELETE under a row limit runs" -- \
  check --config "$TMP/limits.toml" -c "DELETE FROM orders WHERE id < 100; SELECT 1"
expect_match "$TMP/out" "^1 +LIMIT 1000 +delete +rule=row-limit " "limited decision column"
expect_match "$TMP/out" "^    row limit: 1000 rows \(rule row-limit, class delete\); touching more when it runs is refused unless" "row limit line"
expect_match "$TMP/out" "^    HINT: .*--classes delete --tables orders " "row limit token hint"
expect_match "$TMP/out" "^2 +ALLOW +select " "unlimited statement unchanged"
expect_match "$TMP/out" "^2 statement\(s\): all would run; 1 under a row limit, checked when they run" "row limit summary"
expect_exit 0 "log rule limit only records" -- \
  check --config "$TMP/limits.toml" -c "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE"
expect_match "$TMP/out" "^1 +LIMIT 5 +merge +rule=log-big-merges " "log limit decision"
expect_match "$TMP/out" "touching more when it runs is only logged \(log rule\)" "log limit line"
expect_exit 1 "mass delete still needs approval, for the limit too" -- \
  check --config "$TMP/limits.toml" -c "DELETE FROM orders"
expect_match "$TMP/out" "^1 +NEEDS-APPROVAL " "mass delete decision"
expect_match "$TMP/out" "HINT: .*--classes delete_without_where,delete --tables orders " "mass delete hint"
expect_exit 0 "no row limit, no row limit summary" -- check --config "$TMP/limits.toml" -c "SELECT 1"
if grep -q "row limit" "$TMP/out"; then echo "FAIL: row limit mentioned for SELECT"; failures=$((failures + 1)); fi
cat >"$TMP/bad3.toml" <<'EOF2'
[[rules]]
name = "unlimited"
action = "allow"
classes = ["delete"]
max_rows = 10
EOF2
expect_exit 2 "max_rows on an allow rule" -- check --config "$TMP/bad3.toml" -c "SELECT 1"
expect_match "$TMP/err" "^$TMP/bad3.toml:5:[0-9]+: 'rules\[0\]\.max_rows' needs action require_approval, deny or log" "allow max_rows position"

# ---- usage errors ----
expect_exit 2 "no config at all" -- check -c "SELECT 1"
expect_exit 2 "unknown option" -- check --config "$SHIPPED" --frobnicate -c "SELECT 1"
expect_exit 2 "both -c and -f" -- check --config "$SHIPPED" -c "SELECT 1" -f "$TMP/safe.sql"
expect_exit 2 "bad client address" -- check --config "$SHIPPED" --client-addr nowhere -c "SELECT 1"
expect_exit 0 "--help" -- check --help

# ---- config errors ----
cat >"$TMP/bad.toml" <<'EOF2'
[[rules]]
name = "no-drop"
action = "deny"
classes = ["drop", "dropp"]
EOF2
expect_exit 2 "unknown class in config" -- check --config "$TMP/bad.toml" -c "SELECT 1"
expect_match "$TMP/err" "^$TMP/bad.toml:4:[0-9]+: .*unknown statement class 'dropp'" "config error position"

cat >"$TMP/bad2.toml" <<'EOF2'
[[rules]]
name = "no-drop"
action = "deny"
classes = ["drop"]
colour = "red"
EOF2
expect_exit 2 "unknown key in config" -- check --config "$TMP/bad2.toml" -c "SELECT 1"
expect_match "$TMP/err" "^$TMP/bad2.toml:5:[0-9]+: unknown key 'rules\[0\]\.colour'" "unknown key position"
expect_exit 2 "missing config file" -- check --config "$TMP/nope.toml" -c "SELECT 1"

# ---- client matching and modes ----
cat >"$TMP/clients.toml" <<'EOF2'
[[rules]]
name = "etl-may-truncate-staging"
action = "allow"
classes = ["truncate"]
tables = ["staging.*"]
match = { user = "etl", client_addr = ["10.0.0.0/8"] }

[[rules]]
name = "truncate-needs-approval"
action = "require_approval"
classes = ["truncate"]
EOF2
expect_exit 0 "allow rule for etl from 10/8" -- \
  check --config "$TMP/clients.toml" --user etl --client-addr 10.2.3.4 -c "TRUNCATE staging.events"
expect_match "$TMP/out" "rule=etl-may-truncate-staging" "allow rule named"
expect_exit 1 "same user, other network" -- \
  check --config "$TMP/clients.toml" --user etl --client-addr 192.168.1.2 -c "TRUNCATE staging.events"
expect_exit 1 "same client, other schema" -- \
  check --config "$TMP/clients.toml" --user etl --client-addr 10.2.3.4 -c "TRUNCATE public.events"

printf '[policy]\nmode = "monitor"\n' >"$TMP/monitor.toml"
sed -n '/^\[\[rules\]\]/,$p' "$SHIPPED" >>"$TMP/monitor.toml"
expect_exit 0 "monitor mode lets DROP run" -- check --config "$TMP/monitor.toml" -c "DROP TABLE users"
expect_match "$TMP/out" "ALLOW\(monitor" "monitor label"
expect_exit 1 "--enforce overrides monitor mode" -- check --config "$TMP/monitor.toml" --enforce -c "DROP TABLE users"

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
