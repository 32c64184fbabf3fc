#!/usr/bin/env bash
# `pgmoat audit verify|search` through the built binary. The trail is written here by hand
# (sha256sum), so this also pins the on-disk format: prev = SHA-256 of the previous line.
# usage: audit_cli_test.sh PGMOAT WORKDIR
set -u
PGMOAT=$1
WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK/trail"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE [grep-pattern] -- command...
expect() {
  local code=$1 pattern=$2
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" != "$code" ]; then fail "exit $rc (wanted $code): $*"; echo "$out"; return; fi
  if [ -n "$pattern" ] && ! grep -q -- "$pattern" <<<"$out"; then
    fail "output of '$*' lacks '$pattern'"; echo "$out"
  fi
}

prev=0000000000000000000000000000000000000000000000000000000000000000
seq=0
# add FILE JSON-FIELDS [rotated_from]
add() {
  seq=$((seq + 1))
  local rf=""
  [ -n "${3:-}" ] && rf=",\"rotated_from\":\"$3\""
  local line="{\"seq\":$seq,\"prev\":\"$prev\"$rf,$2}"
  printf '%s\n' "$line" >>"$1"
  prev=$(printf '%s' "$line" | sha256sum | cut -d' ' -f1)
}
id() {  # id USER DB APP CLIENT
  echo "\"session\":\"s1\",\"client_addr\":\"$4\",\"client_port\":5432,\"user\":\"$1\",\"database\":\"$2\",\"application_name\":\"$3\""
}
OLD="$WORK/trail/audit.jsonl.20240501T000000.1"
CUR="$WORK/trail/audit.jsonl"
add "$OLD" "\"type\":\"statement\",\"ts\":\"2024-05-01T10:00:00.000000Z\",$(id app prod seed-script 10.0.0.5),\"statement\":\"DELETE FROM products WHERE code NOT IN ('a')\",\"classes\":[\"delete\"],\"tables_written\":[\"public.products\"],\"decision\":\"allow\""
add "$OLD" "\"type\":\"outcome\",\"ts\":\"2024-05-01T10:00:01.000000Z\",$(id app prod seed-script 10.0.0.5),\"statement\":\"DELETE FROM products WHERE code NOT IN ('a')\",\"classes\":[\"delete\"],\"tables_written\":[\"public.products\"],\"outcome\":{\"tag\":\"DELETE 9120\",\"rows\":9120}"
add "$OLD" "\"type\":\"refusal\",\"ts\":\"2024-05-02T09:00:00.000000Z\",$(id deploy prod migrate 10.1.0.9),\"statement\":\"DROP SCHEMA public CASCADE\",\"classes\":[\"ddl\",\"drop\"],\"decision\":\"deny\",\"rule\":\"no-drop\""
add "$CUR" "\"type\":\"rotate\",\"ts\":\"2024-05-02T12:00:00.000000Z\",$(id '' '' '' ''),\"detail\":\"rotate requested\"" "audit.jsonl.20240501T000000.1"
add "$CUR" "\"type\":\"approval_use\",\"ts\":\"2024-05-03T08:00:00.000000Z\",$(id alice staging psql 192.168.1.20),\"statement\":\"TRUNCATE invoices\",\"classes\":[\"truncate\"],\"tables_written\":[\"public.invoices\"],\"decision\":\"approved\",\"rule\":\"truncate\",\"approval\":{\"token_id\":\"tok-77\",\"approver\":\"bob\",\"reason\":\"reset staging\"}"

# Help and usage errors.
expect 0 "verify" -- "$PGMOAT" audit --help
expect 0 "require-genesis" -- "$PGMOAT" audit verify --help
expect 0 "--application-name" -- "$PGMOAT" audit search --help
expect 2 "" -- "$PGMOAT" audit
expect 2 "unknown subcommand" -- "$PGMOAT" audit frobnicate
expect 2 "unknown option" -- "$PGMOAT" audit verify --frob "$CUR"
expect 2 "give audit files" -- "$PGMOAT" audit verify
expect 2 "not an IP" -- "$PGMOAT" audit search --client banana "$CUR"
expect 2 "as a time" -- "$PGMOAT" audit search --since whenever "$CUR"
expect 2 "table or jsonl" -- "$PGMOAT" audit search --format xml "$CUR"
expect 1 "no such file" -- "$PGMOAT" audit verify "$WORK/missing.jsonl"

# A whole chain, given as a directory, as a shell glob (current file sorts first by name),
# and through --config.
expect 0 "OK: chain whole: 5 records (seq 1..5) in 2 file(s)" -- "$PGMOAT" audit verify "$WORK/trail"
expect 0 "head: seq 5 sha256 $prev" -- "$PGMOAT" audit verify "$WORK"/trail/*
printf '[proxy]\nlisten = "x"\n\n[audit]\npath = "trail/audit.jsonl"\n' >"$WORK/pgmoat.toml"
expect 0 "OK: chain whole: 5 records" -- "$PGMOAT" audit verify --config "$WORK/pgmoat.toml"
printf '[audit]\npath = "trail/audit.jsonl"\ndurability = "maybe"\n' >"$WORK/bad.toml"
expect 2 "bad.toml:3:" -- "$PGMOAT" audit verify --config "$WORK/bad.toml"

# Only the newer file: verified from its first record on, start unknown.
expect 0 "chain start unknown" -- "$PGMOAT" audit verify "$CUR"
expect 1 "TAMPERED" -- "$PGMOAT" audit verify --require-genesis "$CUR"

# Search.
expect 0 "DELETE 9120" -- "$PGMOAT" audit search --config "$WORK/pgmoat.toml" --user app --type outcome --format jsonl
n=$("$PGMOAT" audit search "$WORK/trail" --user app --format jsonl 2>/dev/null | wc -l)
[ "$n" = 2 ] || fail "search --user app: $n lines"
n=$("$PGMOAT" audit search "$WORK/trail" --client 10.0.0.0/8 --format jsonl 2>/dev/null | wc -l)
[ "$n" = 3 ] || fail "search --client 10.0.0.0/8: $n lines"
n=$("$PGMOAT" audit search "$WORK/trail" --since 2024-05-02 --until 2024-05-02T23:59:59Z --format jsonl 2>/dev/null | wc -l)
[ "$n" = 2 ] || fail "search --since/--until: $n lines"
n=$("$PGMOAT" audit search "$WORK/trail" --since 24h --format jsonl 2>/dev/null | wc -l)
[ "$n" = 0 ] || fail "search --since 24h: $n lines"
expect 0 "tok-77" -- "$PGMOAT" audit search "$WORK/trail" --token 'tok-*' --application-name 'ps*' --format jsonl
expect 0 "USER@DB" -- "$PGMOAT" audit search "$WORK/trail" --table products
expect 0 "app@prod *seed-script *10.0.0.5:5432 *outcome" -- "$PGMOAT" audit search "$WORK/trail" --table products
expect 0 "9120" -- "$PGMOAT" audit search "$WORK/trail" --class delete --decision '' --type outcome
expect 0 "deploy@prod" -- "$PGMOAT" audit search "$WORK/trail" --class drop --decision deny --rule no-drop

# A torn last line (crash) is a warning, not tampering.
cp -r "$WORK/trail" "$WORK/torn"
printf '{"seq":6,"prev":"ab' >>"$WORK/torn/audit.jsonl"
expect 0 "torn last record (crash?)" -- "$PGMOAT" audit verify "$WORK/torn"

# Tampering: edit one byte, delete a record, swap two records.
cp -r "$WORK/trail" "$WORK/edit"
sed -i '2s/9120/9121/' "$WORK/edit/audit.jsonl.20240501T000000.1"
expect 1 "audit.jsonl.20240501T000000.1:2: seq 2: record modified" -- "$PGMOAT" audit verify "$WORK/edit"
cp -r "$WORK/trail" "$WORK/delete"
sed -i '2d' "$WORK/delete/audit.jsonl.20240501T000000.1"
expect 1 "records missing: seq 2 " -- "$PGMOAT" audit verify "$WORK/delete"
cp -r "$WORK/trail" "$WORK/swap"
awk 'NR==2 {held=$0; next} NR==3 {print; print held; next} {print}' \
  "$WORK/trail/audit.jsonl.20240501T000000.1" >"$WORK/swap/audit.jsonl.20240501T000000.1"
expect 1 ":2: seq 3: record out of order" -- "$PGMOAT" audit verify "$WORK/swap"

# A rotated file compressed afterwards (logrotate) still verifies, in order, and is searched.
cp -r "$WORK/trail" "$WORK/gz"
gzip "$WORK/gz/audit.jsonl.20240501T000000.1"
expect 0 "OK: chain whole: 5 records (seq 1..5) in 2 file(s)" -- "$PGMOAT" audit verify "$WORK/gz"
cp -r "$WORK/gz" "$WORK/gzbad"
printf 'not gzip at all' >"$WORK/gzbad/audit.jsonl.20240501T000000.1.gz"
expect 1 "not a readable gzip file" -- "$PGMOAT" audit verify "$WORK/gzbad"

if [ "$failures" != 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "audit CLI: all checks passed"
