#!/bin/sh
# Drives the real `pgmoat token` command: keygen, issue, inspect, and a tampered token.
# usage: token_cli_test.sh PATH/TO/pgmoat
set -u
PGMOAT=$1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgmoat-token-cli-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILS=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
# expect_exit CODE DESCRIPTION -- runs the rest of the arguments, output in $WORK/out
expect_exit() {
  want=$1; what=$2; shift 2
  "$@" >"$WORK/out" 2>&1
  got=$?
  [ "$got" -eq "$want" ] || { fail "$what: exit $got, want $want"; cat "$WORK/out" >&2; }
}
expect_out() {
  grep -q -- "$1" "$WORK/out" || { fail "output lacks '$1'"; cat "$WORK/out" >&2; }
}

# keygen
expect_exit 0 "keygen" "$PGMOAT" token keygen --name alice --out "$WORK"
[ -f "$WORK/alice.key" ] && [ -f "$WORK/alice.pub" ] || fail "keygen did not write both files"
mode=$(stat -c %a "$WORK/alice.key")
[ "$mode" = 600 ] || fail "alice.key has mode $mode, want 600"
cp "$WORK/alice.key" "$WORK/alice.key.orig"
expect_exit 1 "keygen refuses to overwrite" "$PGMOAT" token keygen --name alice --out "$WORK"
expect_out "already exists"
cmp -s "$WORK/alice.key" "$WORK/alice.key.orig" || fail "keygen changed an existing key"
"$PGMOAT" token keygen --name mallory --out "$WORK" >/dev/null || fail "keygen mallory"

cat >"$WORK/pgmoat.toml" <<TOML
[[approvers]]
name = "alice"
public_key = "alice.pub"

[approvals]
revocation_list = "revoked"
TOML
echo "# revoked token ids" >"$WORK/revoked"

# usage errors exit 2
expect_exit 2 "token without subcommand" "$PGMOAT" token
expect_exit 2 "unknown subcommand" "$PGMOAT" token frobnicate
expect_exit 0 "issue --help" "$PGMOAT" token issue --help
expect_out "--max-uses"
expect_exit 2 "issue without --reason" "$PGMOAT" token issue --key "$WORK/alice.key" \
  --database app --user deploy --classes drop
expect_exit 2 "issue with an unknown class" "$PGMOAT" token issue --key "$WORK/alice.key" \
  --database app --user deploy --classes drop,nuke --reason r
expect_out "unknown statement class 'nuke'"
expect_exit 2 "issue with a 2d ttl" "$PGMOAT" token issue --key "$WORK/alice.key" \
  --database app --user deploy --classes drop --reason r --ttl 2d
expect_exit 2 "issue with a bad cidr" "$PGMOAT" token issue --key "$WORK/alice.key" \
  --database app --user deploy --classes drop --reason r --client-cidr 10.0.0.0/33

# issue + inspect
TOKEN=$("$PGMOAT" token issue --key "$WORK/alice.key" --database app --user deploy \
  --classes drop,truncate --ttl 10m --reason "drop old audit tables" --tables 'audit.*' \
  --max-uses 2 2>"$WORK/issue.err") || { fail "issue"; cat "$WORK/issue.err" >&2; }
case $TOKEN in
  pgmoat1.*.*) ;;
  *) fail "token has the wrong shape: $TOKEN" ;;
esac
case $TOKEN in
  *[!A-Za-z0-9._-]*) fail "token has unsafe characters: $TOKEN" ;;
esac

expect_exit 0 "inspect with config" "$PGMOAT" token inspect "$TOKEN" --config "$WORK/pgmoat.toml"
expect_out "status:       VALID"
expect_out "classes:      drop,truncate"
expect_out "tables:       audit\.\*"
expect_out "approver:     alice"
expect_out "max uses:     2"
expect_exit 0 "inspect without config" "$PGMOAT" token inspect "$TOKEN"
expect_out "signature:    not checked"
printf '%s\n' "$TOKEN" | "$PGMOAT" token inspect - --config "$WORK/pgmoat.toml" >"$WORK/out" 2>&1 \
  || fail "inspect from stdin"

# tamper one character in the middle of the payload
PAYLOAD=$(printf '%s' "$TOKEN" | cut -d. -f2)
SIG=$(printf '%s' "$TOKEN" | cut -d. -f3)
MID=$(( ${#PAYLOAD} / 2 ))
HEAD=$(printf '%s' "$PAYLOAD" | cut -c1-$((MID - 1)))
CH=$(printf '%s' "$PAYLOAD" | cut -c$MID)
TAIL=$(printf '%s' "$PAYLOAD" | cut -c$((MID + 1))-)
if [ "$CH" = A ]; then NEW=B; else NEW=A; fi
TAMPERED="pgmoat1.$HEAD$NEW$TAIL.$SIG"
[ "$TAMPERED" != "$TOKEN" ] || fail "tampering changed nothing"
expect_exit 1 "inspect tampered token" "$PGMOAT" token inspect "$TAMPERED" --config "$WORK/pgmoat.toml"
expect_out "bad signature"
expect_out "status:       INVALID"

# signed by a key the config does not trust
OTHER=$("$PGMOAT" token issue --key "$WORK/mallory.key" --database app --user deploy \
  --classes drop --reason r 2>/dev/null)
expect_exit 1 "inspect untrusted token" "$PGMOAT" token inspect "$OTHER" --config "$WORK/pgmoat.toml"
expect_out "unknown signer"

# expired, judged at an injected time
expect_exit 1 "inspect at a later time" "$PGMOAT" token inspect "$TOKEN" \
  --config "$WORK/pgmoat.toml" --now 4000000000
expect_out "expired at"

# revoked
ID=$(printf '%s' "$PAYLOAD" | tr -- '-_' '+/' | base64 -d 2>/dev/null | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/')
[ ${#ID} -eq 16 ] || fail "could not read the token id from the payload ($ID)"
echo "$ID" >>"$WORK/revoked"
expect_exit 1 "inspect revoked token" "$PGMOAT" token inspect "$TOKEN" --config "$WORK/pgmoat.toml"
expect_out "revoked"

# a config error names file:line:column
printf '[[approvers]]\nname = "alice"\npublic_key = "missing.pub"\n' >"$WORK/bad.toml"
expect_exit 2 "inspect with a bad config" "$PGMOAT" token inspect "$TOKEN" --config "$WORK/bad.toml"
expect_out "bad.toml:3:[0-9]*: approvers\[0\]"

if [ "$FAILS" -ne 0 ]; then
  echo "$FAILS check(s) failed" >&2
  exit 1
fi
echo "token CLI: all checks passed"
