"""The audit trail through a real Postgres: identity and row counts of writes from psql,
psycopg and pgbench, refusals, `pgmoat audit verify` (and tampering), `pgmoat audit search`
answering "who deleted rows from table X?", a full disk, and kill -9 under load."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

psycopg = pytest.importorskip("psycopg", reason="python3-psycopg missing: run scripts/install-deps.sh "
                                                 "and use /usr/bin/python3")
from psycopg import errors as pgerr  # noqa: E402

import moatutil as mu  # noqa: E402
from itutil import tool  # noqa: E402


def make_table(pg, name: str, rows: int, db: str = "postgres") -> str:
    with pg.admin(db) as c:
        c.execute(f"DROP TABLE IF EXISTS {name}")
        c.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, code text)")
        c.execute(f"INSERT INTO {name} SELECT g, 'c' || g FROM generate_series(1, {rows}) g")
        c.execute(f"GRANT ALL ON {name} TO PUBLIC")
    return name


def outcome_of(p, table: str, verb: str) -> dict:
    recs = mu.wait_records(p, lambda rs: [r for r in rs if r["type"] == "outcome"
                                          and r.get("statement", "").upper().startswith(verb)
                                          and table in r.get("statement", "")],
                           what=f"outcome record of {verb} on {table}")
    assert len(recs) == 1, recs
    return recs[0]


def statement_of(p, rec: dict) -> dict:
    """The statement (intent) record of an outcome. The extended protocol gets one at Parse
    and one per Execute, with the same statement_id; the last one is the Execute's."""
    st = [r for r in mu.audit_records(p.audit_path) if r["type"] == "statement"
          and r.get("session") == rec["session"] and r.get("statement_id") == rec["statement_id"]]
    assert 1 <= len(st) <= 2, (rec, st)
    assert all(x["statement"] == rec["statement"] for x in st), st
    return st[-1]


# ------------------------------------------------------------------ identity and row counts

def test_identity_psycopg(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_psycopg_t", rows=10)
    with p.endpoint.connect(user="scram_user", application_name="billing-worker") as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        cur = conn.execute(f"DELETE FROM {t} WHERE id <= %s", (7,))
        assert cur.rowcount == 7
        conn.execute(f"UPDATE {t} SET code = 'x' WHERE id > 8")
    rec = outcome_of(p, t, "DELETE")
    assert rec["outcome"]["tag"] == "DELETE 7" and rec["outcome"]["rows"] == 7, rec
    for r in (rec, statement_of(p, rec)):
        assert r["user"] == "scram_user"
        assert r["database"] == "postgres"
        assert r["application_name"] == "billing-worker"
        assert r["client_addr"] == "127.0.0.1"
        assert r["auth"] == "scram-sha-256", r
        assert r["backend_pid"] == pid
        assert r["tables_written"] == [t] and "delete" in r["classes"]
    up = outcome_of(p, t, "UPDATE")
    assert up["outcome"]["rows"] == 2 and up["backend_pid"] == pid


def test_identity_psql(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_psql_t", rows=5)
    r = mu.psql(p.endpoint, f"SELECT pg_backend_pid(); INSERT INTO {t} SELECT g, 'n' FROM "
                f"generate_series(100, 102) g; UPDATE {t} SET code = 'u' WHERE id < 3",
                user="md5_user", extra_env={"PGAPPNAME": "psql-oncall"})
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[0])
    ins = outcome_of(p, t, "INSERT")
    up = outcome_of(p, t, "UPDATE")
    assert ins["outcome"]["rows"] == 3 and ins["outcome"]["tag"] == "INSERT 0 3", ins
    assert up["outcome"]["rows"] == 2, up
    for rec in (ins, up, statement_of(p, up)):
        assert (rec["user"], rec["database"], rec["application_name"]) == ("md5_user", "postgres", "psql-oncall")
        assert rec["client_addr"] == "127.0.0.1" and rec["auth"] == "md5", rec
        assert rec["backend_pid"] == pid, (rec, pid)


def test_identity_pgbench(pg, pgmoat_factory):
    db = mu.fresh_db(pg, "aud_bench")
    r = subprocess.run([tool("pgbench"), "-i", "-s", "1", "-q"], env=pg.endpoint.env(dbname=db),
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    p = mu.start(pgmoat_factory)
    env = p.endpoint.env(user="plain_user", dbname=db, PGAPPNAME="pgbench")
    with pg.admin(db) as c:
        c.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO plain_user")
    r = subprocess.run([tool("pgbench"), "-n", "-c", "1", "-t", "5"], env=env, capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    outs = mu.wait_records(p, lambda rs: (lambda o: o if len(o) >= 5 else None)(
        [x for x in rs if x["type"] == "outcome" and "pgbench_accounts" in x.get("tables_written", [])]),
        what="5 pgbench_accounts outcome records")
    assert len(outs) == 5
    assert mu.count(pg, "SELECT count(*) FROM pgbench_history", db) == 5
    for rec in outs:
        assert rec["outcome"] == {"tag": "UPDATE 1", "rows": 1}, rec
        assert (rec["user"], rec["database"], rec["application_name"]) == ("plain_user", db, "pgbench")
        assert rec["auth"] == "cleartext" and rec["client_addr"] == "127.0.0.1", rec
        assert isinstance(rec["backend_pid"], int) and rec["backend_pid"] > 0


def test_refusal_recorded(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_refused_t", rows=3)
    with p.endpoint.connect(application_name="prisma-cli") as conn:
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"DROP TABLE {t}")
    refs = mu.wait_records(p, lambda rs: [r for r in rs if r["type"] == "refusal"], what="refusal record")
    assert len(refs) == 1, refs
    ref = refs[0]
    assert ref["rule"] == "drop-needs-approval" and ref["decision"] == "require_approval", ref
    assert ref["statement"] == f"DROP TABLE {t}" and ref["application_name"] == "prisma-cli"
    assert ref["classes"] == ["drop"] and ref["tables_written"] == [t]
    # nothing ran, so there is no statement or outcome for it
    assert not [r for r in mu.audit_records(p.audit_path)
                if r["type"] in ("statement", "outcome") and t in r.get("statement", "")]
    out = mu.search(p, "--type", "refusal", "--rule", "drop-needs-approval").stdout
    assert f"DROP TABLE {t}" in out and "prisma-cli" in out, out


# ------------------------------------------------------------------ verify and search

def test_verify_and_tamper(pg, pgmoat_factory, tmp_path):
    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_verify_t", rows=0)
    with p.endpoint.connect() as conn:
        for i in range(20):
            conn.execute(f"INSERT INTO {t} VALUES ({i}, 'value {i}')")
    mu.wait_records(p, lambda rs: len([r for r in rs if r["type"] == "outcome"]) >= 20, what="20 outcomes")
    r = mu.verify(p)
    assert r.returncode == 0, f"verify of an untouched trail failed:\n{r.stdout}\n{r.stderr}"

    copy = tmp_path / "audit.jsonl"
    shutil.copy(p.audit_path, copy)
    r = mu.cli(p.binary, "audit", "verify", str(copy))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = copy.read_bytes().split(b"\n")
    mid = len(lines) // 2
    line = lines[mid]
    rec_seq = int(re.search(rb'"seq":(\d+)', line).group(1))
    # flip one byte inside the statement text: still valid JSON, different content
    i = line.index(b"INSERT INTO") + 2
    lines[mid] = line[:i] + bytes([line[i] ^ 0x01]) + line[i + 1:]
    copy.write_bytes(b"\n".join(lines))
    r = mu.cli(p.binary, "audit", "verify", str(copy))
    out = r.stdout + r.stderr
    assert r.returncode == 1, f"verify accepted a tampered trail:\n{out}"
    # the first bad record is named: the edited line breaks the chain at the record after it
    # (its "prev" no longer matches), or the edited record itself
    named = re.findall(r":(\d+)\b", out)
    assert f"{copy.name}:{mid + 1}" in out or f"{copy.name}:{mid + 2}" in out, out
    assert re.search(rf"seq\D{{0,3}}({rec_seq}|{rec_seq + 1})\b", out), (out, rec_seq, named)


def test_search_who_deleted(pg, pgmoat_factory):
    """README: "who deleted rows from table X yesterday?" is one command."""
    p = mu.start(pgmoat_factory)
    cust = make_table(pg, "customers_aud", rows=10)
    other = make_table(pg, "products_aud", rows=4)
    r = mu.psql(p.endpoint, f"DELETE FROM {cust} WHERE code NOT IN ('c1')", user="scram_user",
                extra_env={"PGAPPNAME": "seed-script"})
    assert r.returncode == 0 and r.stdout.strip() == "DELETE 9", (r.stdout, r.stderr)
    with p.endpoint.connect(application_name="web") as conn:
        conn.execute(f"INSERT INTO {cust} VALUES (50, 'new')")
        conn.execute(f"DELETE FROM {other} WHERE id = 1")
    mu.wait_records(p, lambda rs: len([x for x in rs if x["type"] == "outcome"]) >= 3, what="3 outcomes")

    out = mu.search(p, "--table", cust, "--class", "delete", "--since", "24h").stdout
    rows = [ln for ln in out.splitlines()[1:] if ln.strip()]
    assert rows, out
    assert all("DELETE FROM customers_aud" in ln for ln in rows), out
    outcome = [ln for ln in rows if " outcome " in ln]
    assert len(outcome) == 1, out
    ln = outcome[0]
    assert "scram_user" in ln and "seed-script" in ln and "127.0.0.1" in ln, ln
    assert re.search(r"\s9\s", ln), f"row count 9 missing from {ln!r}"
    # jsonl agrees and excludes the insert and the other table
    recs = mu.search_jsonl(p, "--table", cust, "--class", "delete", "--since", "24h")
    assert {r["type"] for r in recs} <= {"statement", "outcome"} and recs
    assert all(r["tables_written"] == [cust] and "delete" in r["classes"] for r in recs), recs
    assert [r["outcome"]["rows"] for r in recs if r["type"] == "outcome"] == [9]
    # a time window in the past finds nothing
    assert mu.search_jsonl(p, "--table", cust, "--class", "delete", "--until", "2000-01-01") == []


# ------------------------------------------------------------------ full disk

def _insert(conn, t: str, i: int):
    conn.execute(f"INSERT INTO {t} VALUES ({i}, 'x')")


def test_disk_full_refuses_writes(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_full_t", rows=0)
    with p.endpoint.connect() as conn:
        _insert(conn, t, 1)
        mu.wait_records(p, lambda rs: [r for r in rs if r["type"] == "outcome"], what="first outcome")
        size = p.audit_path.stat().st_size
        mu.prlimit_fsize(mu.pid_of(p), str(size + 100))
        try:
            with pytest.raises(psycopg.Error) as ei:
                _insert(conn, t, 2)
            assert ei.value.sqlstate == "58030", (ei.value.sqlstate, str(ei.value))
            assert "audit trail cannot be written" in ei.value.diag.message_primary
            with pytest.raises(psycopg.Error) as ei:
                conn.execute(f"UPDATE {t} SET code = 'y' WHERE id = 1")
            assert ei.value.sqlstate == "58030"
            # reads keep working on the same and on new sessions
            assert conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 1
            with p.endpoint.connect() as c2:
                assert c2.execute("SELECT 42").fetchone() == (42,)
            assert p.alive(), "pgmoat died on EFBIG / SIGXFSZ"
        finally:
            mu.prlimit_fsize(mu.pid_of(p), "unlimited")
        ids = iter(range(10, 1000))

        def write_ok():
            try:
                _insert(conn, t, next(ids))
                return True
            except psycopg.Error as e:
                assert e.sqlstate == "58030", e
                return False
        mu.poll(write_ok, 10, interval=0.2, what="writes to work again after raising the limit")
    # the refused writes never reached Postgres
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE id = 2 OR code = 'y'") == 0
    assert mu.count(pg, f"SELECT count(*) FROM {t}") == 2
    r = mu.verify(p)
    assert r.returncode == 0, f"verify after disk-full recovery:\n{r.stdout}\n{r.stderr}"
    assert "58030" in p.log_text() or "audit" in p.log_text().lower()


def test_disk_full_inside_transaction_refuses_commit(pg, pgmoat_factory):
    """Inside a transaction block a write's record is not waited for, but COMMIT is: when the
    records could not be written, COMMIT is refused and nothing of the transaction commits."""
    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_full_tx", rows=0)
    with p.endpoint.connect() as conn:
        _insert(conn, t, 1)
        mu.wait_records(p, lambda rs: [r for r in rs if r["type"] == "outcome"], what="first outcome")
        mu.prlimit_fsize(mu.pid_of(p), str(p.audit_path.stat().st_size + 100))
        try:
            # simple protocol (psql), then the extended protocol (psycopg)
            r = mu.psql(p.endpoint, f"BEGIN; INSERT INTO {t} VALUES (2, 'a'); COMMIT;")
            assert "58030" in r.stdout + r.stderr, r  # one Query: its write waits, and fails
            r = mu.psql_script(p.endpoint, f"BEGIN;\nINSERT INTO {t} VALUES (3, 'b');\nCOMMIT;\n")
            assert "58030" in r.stdout + r.stderr and "COMMIT refused" in r.stdout + r.stderr, r
            conn.execute("BEGIN")
            conn.execute(f"INSERT INTO {t} VALUES (4, 'c')")
            with pytest.raises(psycopg.Error) as ei:
                conn.execute("COMMIT")
            assert ei.value.sqlstate == "58030", (ei.value.sqlstate, str(ei.value))
            conn.rollback()
        finally:
            mu.prlimit_fsize(mu.pid_of(p), "unlimited")
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE id IN (2, 3, 4)") == 0
    assert mu.count(pg, f"SELECT count(*) FROM {t}") == 1


# ------------------------------------------------------------------ crash under load

def test_kill9_under_pgbench(pg, pgmoat_factory):
    db = mu.fresh_db(pg, "aud_kill")
    r = subprocess.run([tool("pgbench"), "-i", "-s", "1", "-q"], env=pg.endpoint.env(dbname=db),
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    p = mu.start(pgmoat_factory)
    bench = subprocess.Popen([tool("pgbench"), "-n", "-c", "4", "-j", "2", "-T", "5"],
                             env=p.endpoint.env(dbname=db), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        mu.wait_records(p, lambda rs: len(rs) > 200, timeout=20, what="load through pgmoat")
        while time.monotonic() - t0 < 2:
            time.sleep(0.1)
        p.proc.send_signal(signal.SIGKILL)
        p.proc.wait()
    finally:
        _, err = bench.communicate(timeout=60)
    assert p.proc.returncode == -signal.SIGKILL

    r = mu.verify(p)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"verify after kill -9 reported tampering:\n{out}"
    if not p.audit_path.read_bytes().endswith(b"\n"):
        assert "torn" in out.lower(), out

    data = p.audit_path.read_bytes()
    torn = not data.endswith(b"\n")
    last_line = data[:data.rindex(b"\n")].split(b"\n")[-1]
    recs = mu.audit_records(p.audit_path)
    stmt_upd = [x for x in recs if x["type"] == "statement" and x.get("statement", "").startswith("UPDATE")]
    out_upd = [x for x in recs if x["type"] == "outcome" and x.get("outcome", {}).get("tag", "").startswith("UPDATE")]
    assert out_upd and len(out_upd) <= len(stmt_upd), (len(out_upd), len(stmt_upd))
    started = {(x["session"], x["statement_id"]) for x in stmt_upd}
    assert all((x["session"], x["statement_id"]) in started for x in out_upd)
    # write-ahead: every committed TPC-B transaction's history INSERT has a statement record
    hist_stmts = [x for x in recs if x["type"] == "statement" and "pgbench_history" in x.get("tables_written", [])]
    committed = mu.count(pg, "SELECT count(*) FROM pgbench_history", db)
    assert committed > 0
    assert len(hist_stmts) >= committed, (len(hist_stmts), committed)

    # restart on the same audit path: the chain continues and still verifies
    last_seq = recs[-1]["seq"]
    p.start()
    t = make_table(pg, "aud_after_kill_t", rows=0, db=db)
    with p.endpoint.connect(dbname=db) as conn:
        conn.execute(f"INSERT INTO {t} VALUES (1, 'after restart')")
    after = mu.wait_records(p, lambda rs: [x for x in rs if x["type"] == "outcome" and t in x.get("statement", "")],
                            what="outcome after restart")
    assert after[0]["seq"] > last_seq
    # the first record after the restart links to the last complete record before the kill
    # (after a torn last line the old file is moved aside and a chain_resume record starts
    # the new one)
    nxt = [x for x in mu.audit_records(p.audit_path) if x["seq"] == last_seq + 1]
    assert len(nxt) == 1, f"no record with seq {last_seq + 1} after the restart"
    assert nxt[0]["prev"] == hashlib.sha256(last_line).hexdigest(), (nxt[0], last_line[:200])
    if torn:
        assert nxt[0]["type"] == "chain_resume", nxt[0]
    r = mu.verify(p)
    assert r.returncode == 0, f"verify after restart:\n{r.stdout}\n{r.stderr}"
    r = mu.verify(p, "--require-genesis")
    assert r.returncode == 0, f"verify --require-genesis after restart:\n{r.stdout}\n{r.stderr}"


# ------------------------------------------------------------------ rotation, torn line, "all"

def test_rotation_verify_and_search(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory, audit={"rotate_bytes": 4096})
    t = make_table(pg, "aud_rot_t", rows=0)
    with p.endpoint.connect() as conn:
        for i in range(30):
            conn.execute(f"INSERT INTO {t} VALUES ({i}, 'rotation {i}')")
    mu.wait_records(p, lambda rs: [r for r in rs if r["type"] == "outcome" and "rotation 29" in r.get("statement", "")],
                    what="last outcome")
    rotated = sorted(x for x in p.audit_path.parent.iterdir()
                     if x.name.startswith(p.audit_path.name + "."))
    assert len(rotated) >= 2, list(p.audit_path.parent.iterdir())
    assert all(x.stat().st_size <= 4096 + 2048 for x in rotated), [(x.name, x.stat().st_size) for x in rotated]
    r = mu.verify(p, "--require-genesis")
    assert r.returncode == 0, r.stdout + r.stderr
    recs = mu.search_jsonl(p, "--table", t, "--type", "outcome")
    assert sorted(r["outcome"]["rows"] for r in recs) == [1] * 30
    assert len({r["statement"] for r in recs}) == 30
    # deleting a middle file breaks the chain
    rotated[len(rotated) // 2].unlink()
    r = mu.verify(p)
    assert r.returncode == 1, r.stdout + r.stderr


def test_torn_line_at_startup(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_torn_t", rows=0)
    with p.endpoint.connect() as conn:
        conn.execute(f"INSERT INTO {t} VALUES (1, 'before')")
    mu.wait_records(p, lambda rs: [r for r in rs if r["type"] == "outcome"], what="outcome")
    assert p.stop() == 0
    good = p.audit_path.read_bytes()
    last_line = good.rstrip(b"\n").split(b"\n")[-1]
    last_seq = json.loads(last_line)["seq"]
    with open(p.audit_path, "ab") as f:
        f.write(b'{"seq":%d,"prev":"00' % (last_seq + 1))  # a crash mid-write
    r = mu.verify(p)
    assert r.returncode == 0 and "torn" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    p.stopped = False
    p.start()
    with p.endpoint.connect() as conn:
        conn.execute(f"INSERT INTO {t} VALUES (2, 'after')")
    recs = mu.wait_records(p, lambda rs: rs if any(r["type"] == "outcome" for r in rs) else None,
                           what="outcome after restart")
    first = recs[0]
    assert first["type"] == "chain_resume" and first["seq"] == last_seq + 1, first
    assert first["prev"] == hashlib.sha256(last_line).hexdigest()
    aside = [x for x in p.audit_path.parent.iterdir() if x.name.startswith(p.audit_path.name + ".")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(good), aside  # evidence kept
    r = mu.verify(p, "--require-genesis")
    assert r.returncode == 0, r.stdout + r.stderr


def test_statements_all_records_reads(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory, audit={"statements": "all"})
    with p.endpoint.connect(application_name="reader") as conn:
        conn.execute("SELECT 'audit-all-probe'")
    recs = mu.wait_records(p, lambda rs: [r for r in rs if "audit-all-probe" in r.get("statement", "")],
                           what="read statement record")
    assert {r["type"] for r in recs} >= {"statement"}, recs
    assert recs[0]["application_name"] == "reader" and "select" in recs[0]["classes"]
    q = mu.start(pgmoat_factory)  # default: writes only
    with q.endpoint.connect() as conn:
        conn.execute("SELECT 'audit-writes-probe'")
        conn.execute("CREATE TEMP TABLE aud_w (i int)")
    mu.wait_records(q, lambda rs: [r for r in rs if "aud_w" in r.get("statement", "")], what="ddl record")
    assert not [r for r in mu.audit_records(q.audit_path) if "audit-writes-probe" in r.get("statement", "")]


def test_connection_records_and_failed_login(pg, pgmoat_factory):
    """Accepted, authenticated and failed logins are on the trail, with who tried."""
    p = mu.start(pgmoat_factory)
    bad = mu.psql(p.endpoint, "SELECT 1", user="scram_user",
                  extra_env={"PGPASSWORD": "not-the-password", "PGAPPNAME": "wrong-pw",
                             "PGSSLMODE": "disable"})
    assert bad.returncode != 0 and "password authentication failed" in bad.stderr, bad.stderr
    ok = mu.psql(p.endpoint, "SELECT 1", user="md5_user", extra_env={"PGAPPNAME": "right-pw"})
    assert ok.returncode == 0, ok.stderr
    failed = mu.wait_records(p, lambda rs: [r for r in rs if r["type"] == "auth_failed"],
                             what="an auth_failed record")
    assert len(failed) == 1, failed
    f = failed[0]
    assert (f["user"], f["application_name"], f["client_addr"]) == ("scram_user", "wrong-pw",
                                                                     "127.0.0.1"), f
    assert "28P01" in f["detail"] and "password authentication failed" in f["detail"], f
    recs = mu.wait_records(p, lambda rs: rs if any(r["type"] == "authenticated" for r in rs)
                           else None, what="an authenticated record")
    authenticated = [r for r in recs if r["type"] == "authenticated"]
    assert [(r["user"], r["application_name"]) for r in authenticated] == [("md5_user", "right-pw")]
    accepted = [r for r in recs if r["type"] == "connection_accepted"]
    # One per TCP connection: the two logins (the harness's readiness probe may add more).
    assert len(accepted) >= 2 and all(r["client_addr"] == "127.0.0.1" for r in accepted), accepted


def test_bind_parameters_recorded_only_when_configured(pg, pgmoat_factory):
    t = make_table(pg, "aud_params_t", rows=10)
    p = mu.start(pgmoat_factory, audit={"parameters": True})
    with p.endpoint.connect() as conn:
        conn.execute(f"UPDATE {t} SET code = %s WHERE id = %s", ("secret-ish", 3))
        conn.execute(f"UPDATE {t} SET code = %s WHERE id = %s", (None, 4))
    recs = mu.wait_records(p, lambda rs: [r for r in rs if r["type"] == "statement"
                                          and t in r.get("tables_written", [])] or None,
                           what="statement records with parameters")
    assert len(recs) == 2, recs  # one per Execute, none for the Parse
    # psycopg sends str as text and a small int as binary int2: rendered as hex.
    assert recs[0]["parameters"] == ["secret-ish", "\\x0003"], recs[0]
    assert recs[1]["parameters"] == [None, "\\x0004"], recs[1]
    q = mu.start(pgmoat_factory)  # default: parameters off
    with q.endpoint.connect() as conn:
        conn.execute(f"UPDATE {t} SET code = %s WHERE id = %s", ("not-recorded", 5))
    recs = mu.wait_records(q, lambda rs: [r for r in rs if r["type"] == "statement"
                                          and t in r.get("tables_written", [])] or None,
                           what="statement record")
    assert "parameters" not in recs[0] and "not-recorded" not in json.dumps(recs), recs


def test_a_portal_is_recorded_as_the_statement_it_was_bound_to(pg, pgmoat_factory):
    """Bind the unnamed portal to an UPDATE, then Parse the unnamed statement again as a
    SELECT before executing the portal: Postgres runs the UPDATE (a portal keeps its plan),
    so the trail must record the UPDATE, not the SELECT that now has the statement's name."""
    import pgwire

    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_rebind_t", rows=10)
    with pgwire.RawConn(p.endpoint.host, p.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.parse("", f"UPDATE {t} SET code = 'x' WHERE id <= 3") + pgwire.bind("", "") +
               pgwire.parse("", "SELECT 1") + pgwire.execute("") + pgwire.SYNC)
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None, msgs
        assert (b"C", b"UPDATE 3\0") in msgs, msgs
    up = outcome_of(p, t, "UPDATE")
    assert up["outcome"]["rows"] == 3, up
    assert 'portal ""' in statement_of(p, up).get("detail", ""), statement_of(p, up)
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE code = 'x'") == 3


def _bind_execute(statement: str) -> bytes:
    import pgwire
    return pgwire.bind("", statement) + pgwire.execute("")


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_refused_reparse_of_a_name_is_recorded_as_what_the_server_kept(pg, pgmoat_factory,
                                                                          pipelined):
    """Postgres refuses a Parse of a name that is taken (42P05) and keeps the old statement.
    An Execute of that name then runs the old UPDATE, so the trail must record the UPDATE, not
    the SELECT the refused Parse named. Pipelined, the Execute reaches pgmoat before the
    refusal does: pgmoat waits for the answer before judging it."""
    import pgwire

    p = mu.start(pgmoat_factory)
    t = make_table(pg, f"aud_reparse_{int(pipelined)}_t", rows=10)
    with pgwire.RawConn(p.endpoint.host, p.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.parse("s1", f"UPDATE {t} SET code = 'x' WHERE id <= 2") + pgwire.SYNC)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        if pipelined:
            c.send(pgwire.parse("s1", "SELECT 1") + pgwire.SYNC + _bind_execute("s1") + pgwire.SYNC)
        else:
            c.send(pgwire.parse("s1", "SELECT 1") + pgwire.SYNC)
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "42P05", err
        if not pipelined:
            c.send(_bind_execute("s1") + pgwire.SYNC)
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None and (b"C", b"UPDATE 2\0") in msgs, msgs
    up = outcome_of(p, t, "UPDATE")
    assert up["outcome"]["rows"] == 2, up
    assert 'statement "s1"' in statement_of(p, up).get("detail", ""), statement_of(p, up)
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE code = 'x'") == 2


def test_a_skipped_parse_leaves_the_unnamed_statement_it_replaced(pg, pgmoat_factory):
    """After an error the server skips every message up to Sync, a Parse too: the unnamed
    statement stays what it was. A later Bind of it runs that UPDATE, and the trail says so."""
    import pgwire

    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_skipped_parse_t", rows=10)
    with pgwire.RawConn(p.endpoint.host, p.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.parse("", f"UPDATE {t} SET code = 'y' WHERE id <= 3") + pgwire.SYNC)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        c.send(pgwire.parse("broken", "SELECT 1/0") + _bind_execute("broken") +
               pgwire.parse("", "SELECT 1") + pgwire.SYNC)
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "22012", err
        c.send(_bind_execute("") + pgwire.SYNC)
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None and (b"C", b"UPDATE 3\0") in msgs, msgs
    up = outcome_of(p, t, "UPDATE")
    assert up["outcome"]["rows"] == 3, up
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE code = 'y'") == 3


@pytest.mark.parametrize("route", ["sql", "parse"])
def test_an_execute_is_recorded_as_what_it_runs(pg, pgmoat_factory, route):
    """EXECUTE of a prepared UPDATE writes like the UPDATE: the trail records it, with its
    classes and its row count. A Parse of the text `EXECUTE w` used to leave no record at all
    (judged as a harmless EXECUTE), and SQL EXECUTE no outcome."""
    import pgwire

    p = mu.start(pgmoat_factory)
    t = make_table(pg, f"aud_execute_{route}_t", rows=10)
    with pgwire.RawConn(p.endpoint.host, p.endpoint.port) as c:
        c.startup("postgres")
        msgs = c.simple_query(f"PREPARE w AS UPDATE {t} SET code = 'x' WHERE id <= 3")
        assert pgwire.first_error(msgs) is None, msgs
        if route == "sql":
            msgs = c.simple_query("EXECUTE w")
        else:
            c.send(pgwire.parse("", "EXECUTE w") + _bind_execute("") + pgwire.SYNC)
            msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None and (b"C", b"UPDATE 3\0") in msgs, msgs
    out = outcome_of(p, "EXECUTE w", "EXECUTE")
    assert out["outcome"]["rows"] == 3, out
    st = statement_of(p, out)
    assert "update" in st["classes"] and st["decision"] == "allow", st
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE code = 'x'") == 3


def test_an_execute_of_an_unparsed_statement_is_recorded_as_unparsed(pg, pgmoat_factory):
    """With on_parse_error = "allow", a Parse pgmoat could not read (here an expression nested
    deeper than pgmoat follows) reaches the server. Running it by SQL EXECUTE is recorded as
    an unparsed statement, with the reason, not as a harmless EXECUTE."""
    import pgwire

    p = mu.start(pgmoat_factory, policy={"on_parse_error": "allow"})
    deep = "SELECT " + "+".join(["1"] * 3000)
    with pgwire.RawConn(p.endpoint.host, p.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.parse("u", deep) + pgwire.SYNC)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        msgs = c.simple_query("EXECUTE u")
        assert pgwire.first_error(msgs) is None and pgwire.data_rows(msgs) == [["3000"]], msgs
        # and through the extended protocol: each Execute's record says the same
        c.send(pgwire.parse("", "EXECUTE u") + _bind_execute("") + pgwire.SYNC)
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None and pgwire.data_rows(msgs) == [["3000"]], msgs
    def both(rs):
        found = [r for r in rs if r["type"] == "statement" and r.get("statement") == "EXECUTE u"]
        return found if len(found) >= 2 else None

    recs = mu.wait_records(p, both, what="statement records of EXECUTE u")
    assert len(recs) == 2, recs
    for rec in recs:
        assert rec["decision"] == "allow_unparsed", recs
        assert 'prepared statement "u" could not be parsed' in rec.get("detail", ""), recs


def test_client_certificate_identity_and_policy(pg, pgmoat_factory, tmp_path):
    """With [tls] client_ca_file, a client certificate's subject and fingerprint are on every
    record, and rules can match the subject."""
    key, csr, crt, ext = (tmp_path / n for n in ("c.key", "c.csr", "c.crt", "c.ext"))
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                   "extendedKeyUsage=clientAuth\n")
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, text=True)  # noqa: E731
    run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=ops/CN=oncall-alice",
        "-keyout", str(key), "-out", str(csr))
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(pg.ca_crt), "-CAkey", str(pg.ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
    os.chmod(key, 0o600)
    fp = run("openssl", "x509", "-in", str(crt), "-noout", "-fingerprint", "-sha256").stdout
    want_fp = "sha256:" + fp.split("=", 1)[1].strip().replace(":", "").lower()
    t = make_table(pg, "aud_cert_t", rows=0)
    extra = f'''
[tls]
cert_file = "{pg.proxy_crt}"
key_file = "{pg.proxy_key}"
client_ca_file = "{pg.ca_crt}"

[[rules]]
name = "oncall-certs-read-only"
action = "deny"
classes = ["insert"]
match = {{ tls_subject = "*CN=oncall-alice*" }}
'''
    p = mu.start(pgmoat_factory, extra_toml=extra)
    with_cert = {"PGSSLMODE": "require", "PGSSLCERT": str(crt), "PGSSLKEY": str(key)}
    r = mu.psql(p.endpoint, f"INSERT INTO {t} VALUES (1, 'cert')", extra_env=with_cert)
    assert "42501" in r.stdout + r.stderr and "oncall-certs-read-only" in r.stdout + r.stderr, r
    r = mu.psql(p.endpoint, f"INSERT INTO {t} VALUES (2, 'no cert')",
                extra_env={"PGSSLMODE": "require"})
    assert r.returncode == 0, r.stderr
    assert mu.count(pg, f"SELECT count(*) FROM {t}") == 1
    refused = mu.wait_records(p, lambda rs: [x for x in rs if x["type"] == "refusal"] or None,
                              what="the refusal record")
    tls = refused[0]["tls"]
    assert "CN=oncall-alice" in tls["subject"] and tls["fingerprint"] == want_fp, tls
    assert tls["version"].startswith("TLS"), tls


def test_a_named_portal_ends_with_its_transaction(pg, pgmoat_factory):
    """A named portal is gone when its transaction ends. A cursor declared WITH HOLD can take
    its name later, and an Execute of that name then fetches from the cursor (judged when it
    was declared). The trail must not record the UPDATE the old portal ran a second time:
    pgmoat used to, and kept every portal a client did not Close for the life of the
    connection."""
    import pgwire

    p = mu.start(pgmoat_factory)
    t = make_table(pg, "aud_portal_end_t", rows=10)
    with pgwire.RawConn(p.endpoint.host, p.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.parse("upd", f"UPDATE {t} SET code = 'x' WHERE id = 1") +
               pgwire.bind("p1", "upd") + pgwire.execute("p1") + pgwire.SYNC)
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None and (b"C", b"UPDATE 1\0") in msgs, msgs
        msgs = c.simple_query(
            f"BEGIN; DECLARE p1 CURSOR WITH HOLD FOR SELECT id FROM {t} ORDER BY id; COMMIT")
        assert pgwire.first_error(msgs) is None, msgs
        c.send(pgwire.execute("p1") + pgwire.SYNC)
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None, msgs
        assert len(pgwire.data_rows(msgs)) == 10, msgs
    updates = mu.records_for(p, type="statement", statement_re=f"^UPDATE {t}")
    assert len(updates) == 1, updates
