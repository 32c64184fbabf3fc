"""Approval tokens end to end: keygen/issue with the CLI, [[approvers]] and [approvals] in the
config, DROP refused without a token and run with one (SET in the session, or in the
connection options from psql and psycopg), and every way a token can fail: expired, revoked,
tampered, out of scope, used up (also across a restart). The token itself must never reach
the server's log; audit records of approved statements name the token and the approver."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from urllib.parse import quote

import pytest

psycopg = pytest.importorskip("psycopg", reason="python3-psycopg missing: run scripts/install-deps.sh "
                                                 "and use /usr/bin/python3")
from psycopg import errors as pgerr  # noqa: E402

import moatutil as mu  # noqa: E402
import pgwire  # noqa: E402

REFUSED_DROP = 'pgmoat: DROP TABLE refused by rule "drop-needs-approval"'


class Setup:
    def __init__(self, pg, pgmoat_factory, tmp_path, start: bool = True):
        self.pg = pg
        self.dir = tmp_path / "approvals"
        self.keys = tmp_path / "keys"
        self.alice = mu.Approver(mu.pgmoat_binary_path(), self.keys, "alice")
        self.state_dir = self.dir / "state"
        self.state_dir.mkdir(parents=True)
        self.revoked = self.dir / "revoked.txt"
        self.revoked.write_text("# revoked token ids\n")
        self.moat = mu.start(pgmoat_factory, start=start, extra_toml=self.alice.toml() + f"""
[approvals]
state_dir = "{self.state_dir}"
revocation_list = "{self.revoked}"
""")

    @property
    def ep(self):
        return self.moat.endpoint

    def issue(self, **kw) -> str:
        return self.alice.issue(**kw)


@pytest.fixture
def S(pg, pgmoat_factory, tmp_path):
    return Setup(pg, pgmoat_factory, tmp_path)


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def make_table(pg, name: str, rows: int = 3) -> str:
    with pg.admin() as c:
        c.execute(f"DROP TABLE IF EXISTS {name}")
        c.execute(f"CREATE TABLE {name} (id int)")
        c.execute(f"INSERT INTO {name} SELECT generate_series(1, {rows})")
    return name


def exists(pg, t: str) -> bool:
    return mu.count(pg, f"SELECT count(*) FROM pg_class WHERE relname = '{t}'") == 1


def refusal_text(e: psycopg.Error) -> str:
    d = e.diag
    return " | ".join(x or "" for x in (d.message_primary, d.message_detail, d.message_hint))


def set_token(conn, token: str) -> None:
    conn.execute(f"SET pgmoat.approval = '{token}'")


# ------------------------------------------------------------------ the happy paths

def test_drop_with_token_set_in_session(S, pg):
    t = make_table(pg, "appr_set_t")
    t2 = make_table(pg, "appr_set_t2")
    tok = S.issue(classes="drop", reason="ticket OPS-1 cleanup")
    tid = claims(tok)["id"]
    with S.ep.connect() as conn:
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DROP TABLE {t}")
        assert ei.value.diag.message_primary == REFUSED_DROP
        assert exists(pg, t)
        set_token(conn, tok)
        # the server saw a harmless placeholder with the token id only
        assert conn.execute("SHOW pgmoat.approval_id").fetchone()[0] == tid
        conn.execute(f"DROP TABLE {t}")
        assert not exists(pg, t)
        conn.execute("RESET pgmoat.approval")
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DROP TABLE {t2}")
        assert ei.value.diag.message_primary == REFUSED_DROP
    assert exists(pg, t2)
    assert mu.count(pg, f"SELECT count(*) FROM {t2}") == 3

    # audit: the approved statement names the token, the approver and the reason
    rec = mu.wait_records(S.moat, lambda rs: [r for r in rs if r["type"] == "statement"
                                              and r.get("statement") == f"DROP TABLE {t}"], what="approved DROP")
    assert len(rec) == 1 and rec[0]["decision"] == "approved", rec
    assert rec[0]["approval"] == {"token_id": tid, "approver": "alice", "reason": "ticket OPS-1 cleanup"}
    found = mu.search_jsonl(S.moat, "--token", tid)
    assert any(r["type"] == "statement" and r.get("statement") == f"DROP TABLE {t}" for r in found), found
    assert all(r["approval"]["token_id"] == tid for r in found)
    assert not any(t2 in r.get("statement", "") for r in found)
    table = mu.search(S.moat, "--token", tid).stdout
    assert f"DROP TABLE {t}" in table, table

    # the same from psql (simple protocol): SET, then the DROP
    r = mu.psql_script(S.ep, f"SET pgmoat.approval = '{tok}';\nDROP TABLE {t2};\n")
    assert r.returncode == 0 and "ERROR" not in r.stderr, r.stderr
    assert not exists(pg, t2)

    # the secret never reached Postgres or its log; the placeholder id did
    log = mu.poll(lambda: (lambda s: s if f"pgmoat.approval_id = '{tid}'" in s else None)(pg.log_text()),
                  5, what="SET pgmoat.approval_id in the server log")
    assert tok not in log and tok.split(".")[2] not in log
    assert "pgmoat.approval =" not in log and "pgmoat.approval=" not in log
    assert tok not in S.moat.audit_path.read_text()


def test_token_in_connection_options(S, pg):
    t1, t2 = make_table(pg, "appr_url_psql"), make_table(pg, "appr_url_psycopg")
    tok = S.issue(classes="drop")
    tid = claims(tok)["id"]
    url = S.ep.url(options=f"-c pgmoat.approval={tok}", application_name="deploy")
    r = mu.psql(S.ep, f"DROP TABLE {t1}", args=("-d", url))  # psql with the token in the URL
    assert r.returncode == 0, r.stderr
    assert not exists(pg, t1)
    with psycopg.connect(S.ep.url(options=f"-c pgmoat.approval={tok}"), autocommit=True) as conn:
        conn.execute(f"DROP TABLE {t2}")
    assert not exists(pg, t2)
    # other options in the same string still reach the server
    with psycopg.connect(S.ep.conninfo(options=f"-c work_mem=7MB -c pgmoat.approval={tok}"),
                         autocommit=True) as conn:
        assert conn.execute("SHOW work_mem").fetchone()[0] == "7MB"
    # connection records cost no fsync of their own: they reach the file within lazy_sync
    auth = mu.poll(lambda: (lambda a: a if len(a) >= 3 else None)(
        mu.search_jsonl(S.moat, "--token", tid, "--type", "authenticated")),
        5, what="three authenticated records")
    assert len(auth) == 3 and all(r["approval"]["approver"] == "alice" for r in auth), auth
    assert {r["application_name"] for r in auth} >= {"deploy"}
    recs = mu.search_jsonl(S.moat, "--token", tid, "--type", "statement")
    assert sorted(r["statement"] for r in recs) == sorted([f"DROP TABLE {t1}", f"DROP TABLE {t2}"]), recs
    assert all(r["approval"]["approver"] == "alice" for r in recs)
    assert tok not in pg.log_text()

    # a bad token at connect: FATAL 42501 with the reason
    bad = tok[:-3] + ("AAA" if not tok.endswith("AAA") else "BBB")
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(S.ep.conninfo(options=f"-c pgmoat.approval={bad}"), autocommit=True)
    msg = str(ei.value)
    assert "pgmoat: approval token in connection options refused" in msg, msg
    assert "altered or is corrupt" in msg, msg
    r = mu.psql(S.ep, "SELECT 1", args=("-d", S.ep.url(options=f"-c pgmoat.approval={bad}")))
    assert r.returncode == 2 and "FATAL:  pgmoat: approval token in connection options refused" in r.stderr, r.stderr
    # the raw ErrorResponse: severity FATAL, SQLSTATE 42501, then the connection closes
    with pgwire.RawConn(S.ep.host, S.ep.port) as raw:
        msgs = raw.startup("postgres", options=f"-c pgmoat.approval={bad}")
        err = pgwire.first_error(msgs)
        assert err is not None, msgs
        assert (err.get("S"), err.get("C")) == ("FATAL", "42501"), err
        assert err["M"].startswith("pgmoat: approval token in connection options refused: signature"), err
        assert raw.wait_closed()


# ------------------------------------------------------------------ failures

def test_expired_token(S, pg):
    t = make_table(pg, "appr_expired_t")
    r = S.alice.issue_result("--database", "postgres", "--user", "postgres", "--classes", "drop",
                             "--reason", "short", "--ttl", "2s")
    assert r.returncode == 0, f"--ttl 2s not accepted: {r.stderr}"
    tok = r.stdout.strip()
    c = claims(tok)
    assert c["exp"] - c["iat"] == 2, c
    with S.ep.connect() as conn:
        set_token(conn, tok)  # still valid now
        # wait for the wall clock to pass the expiry (no event to poll for but time itself)
        mu.poll(lambda: time.time() >= c["exp"] + 0.2, 10, what="token expiry")
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DROP TABLE {t}")
        txt = refusal_text(ei.value)
        assert ei.value.diag.message_primary == REFUSED_DROP, txt
        assert f"{c['id']} expired at" in txt, txt
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            set_token(conn, tok)
        assert ei.value.diag.message_primary.startswith(
            f"pgmoat: approval token refused: token {c['id']} expired at"), refusal_text(ei.value)
    assert exists(pg, t)


def test_revoked_token(S, pg):
    t1, t2, t3 = (make_table(pg, f"appr_revoked_t{i}") for i in (1, 2, 3))
    tok = S.issue(classes="drop")
    tid = claims(tok)["id"]
    with S.ep.connect() as holder:
        set_token(holder, tok)
        holder.execute(f"DROP TABLE {t1}")
        S.revoked.write_text(f"# revoked after incident\n{tid}\n")
        os.kill(S.moat.proc.pid, signal.SIGHUP)

        def refused_now():
            with S.ep.connect() as c:
                try:
                    set_token(c, tok)
                    return None
                except pgerr.InsufficientPrivilege as e:
                    return e.diag.message_primary
        msg = mu.poll(refused_now, 10, interval=0.2, what="the revoked token to be refused")
        assert msg == f"pgmoat: approval token refused: token {tid} is revoked", msg
        assert S.moat.alive()
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(S.ep.conninfo(options=f"-c pgmoat.approval={tok}"), autocommit=True)
    assert f"token {tid} is revoked" in str(ei.value)
    assert exists(pg, t3) and exists(pg, t2)


def test_revoked_token_stops_working_in_sessions_holding_it(S, pg):
    t1, t2 = make_table(pg, "appr_rev_hold_t1"), make_table(pg, "appr_rev_hold_t2")
    tok = S.issue(classes="drop")
    tid = claims(tok)["id"]
    with S.ep.connect() as holder, S.ep.connect() as probe:
        set_token(holder, tok)
        holder.execute(f"DROP TABLE {t1}")
        S.revoked.write_text(f"{tid}\n")
        os.kill(S.moat.proc.pid, signal.SIGHUP)

        def reloaded():
            try:
                set_token(probe, tok)
                return False
            except pgerr.InsufficientPrivilege:
                return True
        mu.poll(reloaded, 10, interval=0.2, what="the revocation list to be reloaded")
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            holder.execute(f"DROP TABLE {t2}")
        assert "revoked" in refusal_text(ei.value), refusal_text(ei.value)
    assert exists(pg, t2)


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_tampered_token(S, pg, part):
    t = make_table(pg, f"appr_tampered_{part}")
    tok = S.issue(classes="drop")
    head, payload, sig = tok.split(".")
    if part == "payload":
        # widen the token to every database: a valid-looking payload, old signature
        c = claims(tok)
        c["db"] = ["*"]
        payload = base64.urlsafe_b64encode(json.dumps(c, separators=(",", ":")).encode()).decode().rstrip("=")
    else:
        i = len(sig) // 2
        sig = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]
    bad = ".".join([head, payload, sig])
    assert bad != tok
    with S.ep.connect() as conn:
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            set_token(conn, bad)
        assert ei.value.diag.message_primary == (
            "pgmoat: approval token refused: signature does not match the token: it was altered or is corrupt"), \
            refusal_text(ei.value)
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"DROP TABLE {t}")
    assert exists(pg, t)
    assert bad not in pg.log_text()


SCOPES = {
    "other_database": (dict(database="some_other_db", classes="drop"),
                       'is not valid for database "postgres" (only some_other_db)'),
    "other_user": (dict(user="md5_user", classes="drop"), 'is not valid for user "postgres" (only md5_user)'),
    "class_not_covered": (dict(classes="truncate"), "does not cover class `drop`"),
    "table_glob": (dict(classes="drop", extra=("--tables", "keep_*")), "does not cover table"),
    "application_name": (dict(classes="drop", extra=("--application-name", "deploy-*")),
                         'is not valid for application_name "pgmoat-it"'),
    "client_cidr": (dict(classes="drop", extra=("--client-cidr", "10.0.0.0/8")),
                    "is not valid for client address 127.0.0.1"),
}


@pytest.mark.parametrize("case", list(SCOPES))
def test_out_of_scope_token(S, pg, case):
    t = make_table(pg, f"appr_scope_{case}")
    kw, expect = SCOPES[case]
    tok = S.issue(**kw)
    tid = claims(tok)["id"]
    with S.ep.connect() as conn:
        set_token(conn, tok)  # a well-signed token is accepted; scope is judged per statement
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DROP TABLE {t}")
        txt = refusal_text(ei.value)
        assert ei.value.diag.message_primary == REFUSED_DROP, txt
        assert tid in txt and expect in txt, txt
    assert exists(pg, t)


def test_untrusted_approver(S, pg, tmp_path):
    """A token signed by a key that is not in [[approvers]] is refused, also when it claims
    to come from a trusted approver's name."""
    t = make_table(pg, "appr_untrusted_t")
    mallory = mu.Approver(mu.pgmoat_binary_path(), tmp_path / "mallory", "mallory")
    for approver in (None, "alice"):
        extra = ("--approver", approver) if approver else ()
        tok = mallory.issue(classes="drop", extra=extra)
        with S.ep.connect() as conn:
            with pytest.raises(pgerr.InsufficientPrivilege) as ei:
                set_token(conn, tok)
            msg = ei.value.diag.message_primary
            assert msg.startswith("pgmoat: approval token refused: token is signed by key "), msg
            assert "which is not a trusted approver key" in msg, msg
            with pytest.raises(pgerr.InsufficientPrivilege):
                conn.execute(f"DROP TABLE {t}")
    assert exists(pg, t)


def test_token_within_scope_table_glob(S, pg):
    """The positive twin of the table_glob case: a matching glob unlocks the DROP."""
    t = make_table(pg, "keep_scope_t")
    tok = S.issue(classes="drop", extra=("--tables", "keep_*"))
    with S.ep.connect() as conn:
        set_token(conn, tok)
        conn.execute(f"DROP TABLE {t}")
    assert not exists(pg, t)


def test_max_uses(S, pg):
    t1, t2 = make_table(pg, "appr_uses_t1"), make_table(pg, "appr_uses_t2")
    tok = S.issue(classes="drop", extra=("--max-uses", "1"))
    tid = claims(tok)["id"]
    with S.ep.connect() as conn:
        set_token(conn, tok)
        conn.execute(f"DROP TABLE {t1}")
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DROP TABLE {t2}")
        txt = refusal_text(ei.value)
        assert f"{tid} has no uses left" in txt, txt
    assert not exists(pg, t1) and exists(pg, t2)
    # a second session with the same token: still used up
    with S.ep.connect() as conn:
        set_token(conn, tok)
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DROP TABLE {t2}")
        assert "no uses left" in refusal_text(ei.value)

    # and after a restart on the same state_dir
    assert S.moat.stop() == 0
    S.moat.stopped = False
    S.moat.start()
    with S.ep.connect() as conn:
        set_token(conn, tok)
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DROP TABLE {t2}")
        assert "no uses left" in refusal_text(ei.value), refusal_text(ei.value)
    assert exists(pg, t2)


def test_max_uses_counts_every_statement_of_a_query(S, pg):
    """Two drops in one query need two uses; a one-use token runs none of them."""
    t1, t2 = make_table(pg, "appr_multi_t1"), make_table(pg, "appr_multi_t2")
    tok = S.issue(classes="drop", extra=("--max-uses", "1"))
    with S.ep.connect() as conn:
        set_token(conn, tok)
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"DROP TABLE {t1}; DROP TABLE {t2}")
    assert exists(pg, t1) and exists(pg, t2)


def test_set_approval_must_be_alone(S, pg):
    tok = S.issue(classes="drop")
    with S.ep.connect() as conn:
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"SELECT 1; SET pgmoat.approval = '{tok}'")
        assert ei.value.diag.message_primary == (
            "pgmoat: SET pgmoat.approval must be sent as a statement of its own")
    assert tok not in pg.log_text()


LEAK_VARIANTS = {
    "set_session_to": "SET SESSION pgmoat.approval TO '{tok}'",
    "set_local": "BEGIN; SET LOCAL pgmoat.approval = '{tok}'; COMMIT",
    "quoted_name": "SET \"pgmoat\".\"approval\" = '{tok}'",
    "set_config": "SELECT set_config('pgmoat.approval', '{tok}', false)",
}


@pytest.mark.parametrize("case", [
    c for c in LEAK_VARIANTS])
def test_token_never_reaches_server_log(S, pg, case):
    """Other spellings of setting pgmoat.approval must not carry the secret to the server."""
    tok = S.issue(classes="drop", reason=f"leak check {case}")
    sql = LEAK_VARIANTS[case].format(tok=tok)
    r = mu.psql(S.ep, sql)
    marker = f"leak-probe-{case}"
    mu.psql(S.ep, f"SELECT '{marker}'")
    mu.poll(lambda: marker in pg.log_text(), 5, what="the probe in the server log")
    assert tok not in pg.log_text() and tok.split(".")[2] not in pg.log_text(), (
        f"{sql[:60]}... put the token into the server log (psql rc {r.returncode}: {r.stderr.strip()})")


def test_multi_table_drop_needs_every_table_covered(S, pg):
    k, t = make_table(pg, "keep_multi_a"), make_table(pg, "appr_multi_other")
    tok = S.issue(classes="drop", extra=("--tables", "keep_*"))
    with S.ep.connect() as conn:
        set_token(conn, tok)
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DROP TABLE {k}, {t}")
        assert f"does not cover table {t}" in refusal_text(ei.value), refusal_text(ei.value)
    assert exists(pg, k) and exists(pg, t)


# The server's own state says the approval is gone (pgmoat.approval_id is empty, or the SET was
# transaction-scoped), so pgmoat must not keep honouring the token. DISCARD ALL / RESET ALL are
# what connection poolers send between clients: an approval must not survive into the next
# client's use of the connection.
ENDED = {
    "discard_all": ("SET", "DISCARD ALL"),
    "reset_all": ("SET", "RESET ALL"),
    "set_local_then_commit": ("BEGIN; SET LOCAL", "COMMIT"),
    "set_then_rollback": ("BEGIN; SET", "ROLLBACK"),
}


@pytest.mark.parametrize("case", list(ENDED))
def test_approval_ends_with_session_state(S, pg, case):
    t = make_table(pg, f"appr_ended_{case}")
    tok = S.issue(classes="drop")
    start, end = ENDED[case]
    with S.ep.connect() as conn:
        if start.startswith("BEGIN"):
            conn.execute("BEGIN")
        kw = "SET LOCAL" if "LOCAL" in start else "SET"
        conn.execute(f"{kw} pgmoat.approval = '{tok}'")
        conn.execute(end)
        assert conn.execute("SELECT current_setting('pgmoat.approval_id', true)").fetchone()[0] in ("", None) \
            or case == "set_local_then_commit"
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"DROP TABLE {t}")
    assert exists(pg, t)


def test_sql_prepare_under_token_needs_it_again_to_execute(S, pg):
    """A statement PREPAREd while a token was active is judged by its body when EXECUTEd:
    once the approval has ended, EXECUTE is refused like the statement itself."""
    t = make_table(pg, "appr_prep_t", rows=5)
    tok = S.issue(classes="delete_without_where", extra=("--max-uses", "1"))
    with S.ep.connect() as conn:
        set_token(conn, tok)
        conn.execute(f"PREPARE wipe AS DELETE FROM {t}")  # uses the token's one use
        conn.execute("RESET pgmoat.approval")
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute("EXECUTE wipe")
        assert "delete-without-where" in refusal_text(ei.value), refusal_text(ei.value)
        conn.execute(f"PREPARE one AS SELECT count(*) FROM {t}")  # harmless ones still run
        assert conn.execute("EXECUTE one").fetchone()[0] == 5
    assert mu.count(pg, f"SELECT count(*) FROM {t}") == 5


def test_check_knows_a_revoked_token(S, pg):
    """`pgmoat check --token` consults the same revocation list as the server."""
    tok = S.issue(classes="drop")
    tid = claims(tok)["id"]
    cmd = [str(mu.pgmoat_binary_path()), "check", "--config", str(S.moat.config_path),
           "--user", "postgres", "--database", "postgres", "--token", tok,
           "-c", "DROP TABLE appr_check_revoked"]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert ok.returncode == 0, (ok.stdout, ok.stderr)
    assert "NEEDS-APPROVAL" not in ok.stdout, ok.stdout
    S.revoked.write_text(f"{tid}\n")
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2, (bad.stdout, bad.stderr)
    assert f"token {tid} is revoked" in bad.stderr, bad.stderr
