"""psycopg 3 through the target behaves as it does straight to Postgres."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from decimal import Decimal

import pytest

psycopg = pytest.importorskip("psycopg", reason="python3-psycopg missing: run scripts/install-deps.sh "
                                                 "and use /usr/bin/python3")
from psycopg import pq  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

PARAMS = [
    1, -(2 ** 40), 3.25, Decimal("12345678901234567890.123456789"), "it's \"quoted\" ✓\n\ttab",
    b"\x00\x01\xfe\xff", None, True, dt.date(2024, 2, 29),
    dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc),
    uuid.UUID("12345678-1234-5678-1234-567812345678"), [1, 2, None, 4], Jsonb({"a": [1, {"b": None}]}),
]


def _roundtrip(endpoint, binary: bool):
    with endpoint.connect() as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        cur = conn.cursor(binary=binary)
        placeholders = ", ".join(["%s"] * len(PARAMS))
        row = cur.execute(f"SELECT {placeholders}", PARAMS).fetchone()
        types = [d.type_code for d in cur.description]
        # many parameter sets with executemany
        cur.execute("CREATE TEMP TABLE pm(i int, t text)")
        cur.executemany("INSERT INTO pm VALUES (%s, %s)", [(i, f"v{i}") for i in range(500)])
        agg = cur.execute("SELECT count(*), sum(i), md5(string_agg(t, ',' ORDER BY i)) FROM pm").fetchone()
        return row, types, agg


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_params(target, direct, binary):
    row, types, agg = _roundtrip(target, binary)
    expected = [p.obj if isinstance(p, Jsonb) else p for p in PARAMS]
    assert list(row) == expected
    assert agg[0] == 500 and agg[1] == sum(range(500))
    assert (row, types, agg) == _roundtrip(direct, binary)


def _pipeline(endpoint):
    log = []
    with endpoint.connect() as conn:
        assert psycopg.Pipeline.is_supported()
        conn.execute("CREATE TEMP TABLE p(x int PRIMARY KEY)")
        cur_first = []
        after = None
        try:
            with conn.pipeline() as p:
                for i in range(200):
                    cur_first.append(conn.execute("INSERT INTO p VALUES (%s) RETURNING x", (i,)))
                p.sync()
                conn.execute("INSERT INTO p VALUES (1000)")
                conn.execute("SELECT 1/0")
                # psycopg may already raise here, depending on when results arrive
                after = conn.execute("INSERT INTO p VALUES (2000)")
        except psycopg.errors.DivisionByZero as e:
            log.append(("error", e.sqlstate, str(e).strip()))
        else:
            log.append(("no error",))
        try:
            if after is not None:
                after.fetchone()
                log.append(("after", "fetched"))
            else:
                log.append(("after", "never-ran"))
        except psycopg.Error:
            log.append(("after", "never-ran"))
        log.append(("first", [c.fetchone()[0] for c in cur_first] == list(range(200))))
        log.append(("status", conn.info.transaction_status.name))
        # recovery: the connection works, and a second pipeline runs cleanly
        log.append(("after-rows", conn.execute("SELECT array_agg(x ORDER BY x) FILTER (WHERE x >= 1000),"
                                               " count(*) FROM p").fetchone()))
        with conn.pipeline():
            curs = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(300)]
        log.append(("second", [c.fetchone()[0] for c in curs] == [i * 2 for i in range(300)]))
        # a pipeline in a transaction: error aborts the transaction, rollback recovers
        conn.autocommit = False
        try:
            with conn.pipeline():
                conn.execute("INSERT INTO p VALUES (5000)")
                conn.execute("INSERT INTO p VALUES (0)")  # duplicate key
                conn.execute("INSERT INTO p VALUES (5001)")
        except psycopg.errors.UniqueViolation as e:
            log.append(("txn-error", e.sqlstate))
        log.append(("txn-status", conn.info.transaction_status.name))
        conn.rollback()
        log.append(("txn-rows", conn.execute("SELECT count(*) FROM p WHERE x >= 5000").fetchone()[0]))
        conn.rollback()
    return log


def test_pipeline_with_error_and_recovery(target, direct):
    log = _pipeline(target)
    d = dict((e[0], e[1:]) for e in log)
    assert d["error"][0] == "22012", log
    # the statement queued after the failing one never ran and has no result
    assert d["after"] == ("never-ran",), log
    assert d["first"] == (True,), log
    assert d["status"] == ("IDLE",), log
    assert d["after-rows"] == ((None, 200),), log  # the failed sync group was rolled back
    assert d["second"] == (True,), log
    assert d["txn-error"] == ("23505",), log
    assert d["txn-status"] == ("INERROR",), log
    assert d["txn-rows"] == (0,), log
    assert log == _pipeline(direct)


def test_named_cursor_100k_rows(target):
    with target.connect(autocommit=False) as conn:
        with conn.cursor(name="pgmoat_it_big") as cur:
            cur.execute("SELECT g, md5(g::text) FROM generate_series(1, 100000) g ORDER BY g")
            n, batches, h = 0, 0, hashlib.md5()
            open_cursors = conn.execute("SELECT name FROM pg_cursors").fetchall()
            while rows := cur.fetchmany(7000):
                batches += 1
                for g, m in rows:
                    n += 1
                    assert g == n
                    h.update(m.encode())
        conn.commit()
    assert ("pgmoat_it_big",) in open_cursors
    assert n == 100000 and batches == 15
    exp = hashlib.md5()
    for g in range(1, 100001):
        exp.update(hashlib.md5(str(g).encode()).hexdigest().encode())
    assert h.hexdigest() == exp.hexdigest()


def _copy(endpoint):
    out = {}
    with endpoint.connect() as conn:
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE c(id int, t text, b bytea)")
        with cur.copy("COPY c FROM STDIN") as copy:
            for i in range(50000):
                copy.write_row((i, f"row {i} ✓\t\\ \"x\"", bytes([i % 256]) * 10))
        out["in_rows"] = cur.rowcount
        for fmt in ("text", "binary"):
            h, size = hashlib.md5(), 0
            with cur.copy(f"COPY (SELECT * FROM c ORDER BY id) TO STDOUT (FORMAT {fmt})") as copy:
                for chunk in copy:
                    h.update(chunk)
                    size += len(chunk)
            out[fmt] = (size, h.hexdigest())
        # bad data: the server rejects it, the connection recovers
        try:
            with cur.copy("COPY c (id) FROM STDIN") as copy:
                copy.write(b"1\n2\nnot-a-number\n3\n")
        except psycopg.errors.InvalidTextRepresentation as e:
            out["bad"] = e.sqlstate
        # the client aborts a COPY IN (CopyFail)
        try:
            with cur.copy("COPY c (id) FROM STDIN") as copy:
                copy.write_row((1,))
                raise RuntimeError("client gave up")
        except psycopg.errors.QueryCanceled as e:
            # psycopg sends CopyFail; the server answers 57014 quoting the client's reason
            out["copyfail"] = (e.sqlstate, "client gave up" in str(e))
        out["status"] = conn.info.transaction_status.name
        out["count"] = conn.execute("SELECT count(*) FROM c").fetchone()[0]
        # COPY TO of rows typed back with read_row
        with cur.copy("COPY (SELECT id, t FROM c WHERE id < 3 ORDER BY id) TO STDOUT") as copy:
            copy.set_types(["int4", "text"])
            out["rows"] = list(copy.rows())
    return out


def test_copy(target, direct):
    out = _copy(target)
    assert out["in_rows"] == 50000
    assert out["count"] == 50000
    assert out["bad"] == "22P02"
    assert out["copyfail"] == ("57014", True)
    assert out["status"] == "IDLE"
    assert out["rows"] == [(i, f"row {i} ✓\t\\ \"x\"") for i in range(3)]
    assert out["text"][0] > 1_000_000
    assert out == _copy(direct)


def test_prepared_statements(target):
    with target.connect() as conn:
        cur = conn.cursor()
        results = [cur.execute("SELECT %s::int + 1, 'p'", (i,), prepare=True).fetchone() for i in range(20)]
        assert results == [(i + 1, "p") for i in range(20)]
        stmts = conn.execute("SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql").fetchall()
        assert any(s == "SELECT $1::int + 1, 'p'" and n.startswith("_pg3_") for n, s in stmts), stmts
        # automatic preparation after prepare_threshold executions
        conn.prepare_threshold = 2
        for i in range(5):
            assert conn.execute("SELECT %s::text || 'auto'", (str(i),)).fetchone() == (f"{i}auto",)
        stmts = conn.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql").fetchall()
        assert ("SELECT $1::text || 'auto'",) in stmts, stmts
        # SQL-level PREPARE / EXECUTE / DEALLOCATE
        conn.execute("PREPARE sqlprep(int) AS SELECT $1 * 10")
        assert conn.execute("EXECUTE sqlprep(7)").fetchone() == (70,)
        conn.execute("DEALLOCATE sqlprep")
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            conn.execute("EXECUTE sqlprep(7)")
        # a prepared statement whose execution fails, then is reused successfully
        q = "SELECT 10 / %s::int"
        assert cur.execute(q, (2,), prepare=True).fetchone() == (5,)
        with pytest.raises(psycopg.errors.DivisionByZero):
            cur.execute(q, (0,), prepare=True)
        assert cur.execute(q, (5,), prepare=True).fetchone() == (2,)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_large_result_50mb(target):
    q = "SELECT g, repeat(md5(g::text), 32) AS t FROM generate_series(1, 50000) g ORDER BY g"
    with target.connect() as conn:
        rows = conn.execute(q).fetchall()
        assert len(rows) == 50000
        total = sum(len(t) for _, t in rows)
        assert total == 50000 * 1024
        assert rows[12344] == (12345, hashlib.md5(b"12345").hexdigest() * 32)
        # binary, streamed row by row (single-row mode)
        n = 0
        for g, t in conn.cursor(binary=True).stream(q):
            n += 1
            assert g == n and len(t) == 1024
        assert n == 50000


AUTH = {"md5_user": "md5", "scram_user": "scram-sha-256", "plain_user": "password", "trust_user": None}


def _auth_error(endpoint, user) -> tuple[str | None, str]:
    with pytest.raises(psycopg.OperationalError) as ei:
        # sslmode=disable: with "prefer" libpq retries without TLS after a TLS failure and
        # reports both attempts, which only differs from pgmoat (no client TLS) in repetition
        endpoint.connect(user=user, password="definitely-wrong", sslmode="disable")
    msg = str(ei.value)
    msg = re.sub(r'connection to server at "[^"]*", port \d+ failed: ', "", msg)
    return ei.value.sqlstate, msg.strip()


@pytest.mark.parametrize("user", list(AUTH))
def test_auth_methods(target, direct, pg, user):
    with target.connect(user=user) as conn:
        cu, pid = conn.execute("SELECT current_user, pg_backend_pid()").fetchone()
        assert cu == user
        assert conn.execute("SELECT 40 + %s", (2,)).fetchone() == (42,)
    log = pg.log_text()
    method = AUTH[user]
    if method is None:
        assert re.search(rf"\[{pid}\] .*connection authorized: user={user} ", log), \
            f"no 'connection authorized' log line for backend {pid}"
    else:
        # Postgres itself authenticated the client with this method: the exchange was relayed
        assert re.search(rf'\[{pid}\] .*connection authenticated: identity="{user}" method={method} ', log), \
            f"no '{method}' authentication of {user} logged for backend {pid}"
        got = _auth_error(target, user)
        assert "password authentication failed" in got[1], got
        assert got == _auth_error(direct, user)


def test_transaction_status(target):
    TS = pq.TransactionStatus
    with target.connect(autocommit=False) as conn:
        assert conn.info.transaction_status == TS.IDLE
        conn.execute("SELECT 1")
        assert conn.info.transaction_status == TS.INTRANS
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        assert conn.info.transaction_status == TS.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.info.transaction_status == TS.IDLE
        conn.autocommit = True
        conn.execute("BEGIN")
        assert conn.info.transaction_status == TS.INTRANS
        conn.execute("COMMIT")
        assert conn.info.transaction_status == TS.IDLE
        assert conn.info.parameter_status("server_encoding") == "UTF8"
        assert conn.info.parameter_status("integer_datetimes") == "on"
        conn.execute("SET application_name = 'changed-by-test'")
        assert conn.info.parameter_status("application_name") == "changed-by-test"


def test_startup_parameters_reach_the_server(target):
    """application_name and options (-c settings) in the startup packet reach Postgres."""
    with target.connect(options="-c statement_timeout=4321 -c search_path=pg_catalog,public",
                        application_name="it-startup-params") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("4321ms",)
        assert conn.execute("SHOW search_path").fetchone() == ("pg_catalog,public",)
        assert conn.execute("SHOW application_name").fetchone() == ("it-startup-params",)
        assert conn.info.parameter_status("application_name") == "it-startup-params"
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(10)")  # statement_timeout from the startup options
