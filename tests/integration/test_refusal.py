"""Refusal semantics through pgmoat against a real Postgres: what a refused statement looks
like to psql, psycopg 3 (incl. pipeline mode) and node-postgres, that nothing of a refused
query runs, transaction state, hidden destructive statements, monitor mode, `log` rules and
SIGHUP reloads."""

from __future__ import annotations

import os
import signal
import time

import pytest

psycopg = pytest.importorskip("psycopg", reason="python3-psycopg missing: run scripts/install-deps.sh "
                                                 "and use /usr/bin/python3")
from psycopg import errors as pgerr  # noqa: E402

import moatutil as mu  # noqa: E402

DROP_MSG = 'pgmoat: DROP TABLE refused by rule "drop-needs-approval"'
HINT_PART = "pgmoat.approval"


@pytest.fixture
def moat(pgmoat_factory):
    """pgmoat with the shipped default policy, enforcing."""
    return mu.start(pgmoat_factory, policy_mode="enforce")


def make_table(pg, name: str, rows: int = 5) -> str:
    with pg.admin() as c:
        c.execute(f"DROP TABLE IF EXISTS {name} CASCADE")
        c.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, note text)")
        c.execute(f"INSERT INTO {name} SELECT g, 'row ' || g FROM generate_series(1, {rows}) g")
        c.execute(f"GRANT ALL ON {name} TO PUBLIC")
    return name


def nrows(pg, table: str) -> int:
    return mu.count(pg, f"SELECT count(*) FROM {table}")


def exists(pg, table: str) -> bool:
    return mu.count(pg, f"SELECT count(*) FROM pg_class WHERE relname = '{table}'") == 1


# ------------------------------------------------------------------ error fields per client

def test_refusal_fields_psql(pg, moat):
    t = make_table(pg, "items")
    r = mu.psql(moat.endpoint, f"DROP TABLE {t}")
    assert r.returncode == 1, (r.stdout, r.stderr)
    # VERBOSITY=verbose prints the SQLSTATE after the severity
    assert f"ERROR:  42501: {DROP_MSG}" in r.stderr, r.stderr
    assert "DETAIL:  statement class drop (table) on items" in r.stderr, r.stderr
    hint = [ln for ln in r.stderr.splitlines() if ln.startswith("HINT:")]
    assert hint and HINT_PART in hint[0] and "pgmoat token issue" in hint[0], r.stderr
    assert exists(pg, t) and nrows(pg, t) == 5


def test_refusal_fields_psycopg(pg, moat):
    t = make_table(pg, "items")
    with moat.endpoint.connect() as conn:
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DROP TABLE {t}")
        d = ei.value.diag
        assert ei.value.sqlstate == "42501"
        assert d.severity == "ERROR"
        assert d.message_primary == DROP_MSG
        assert d.message_detail == "statement class drop (table) on items"
        assert HINT_PART in (d.message_hint or "") and "--classes drop" in d.message_hint
        # the session is fine afterwards (autocommit: no transaction to abort)
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 5
        assert conn.info.transaction_status.name == "IDLE"
    assert exists(pg, t)


def test_refusal_node_prepared(pg, moat):
    make_table(pg, "refusal_node_t", rows=3)
    got = mu.run_node("refusal_prepared.js", moat.endpoint)
    assert got["refused"]["code"] == "42501"
    assert got["refused"]["message"] == 'pgmoat: DROP TABLE refused by rule "drop-needs-approval"'
    assert got["refused"]["detail"] == "statement class drop (table) on refusal_node_t"
    assert HINT_PART in got["refused"]["hint"]
    assert got["after"] == 3                   # the connection still works
    assert got["again"]["code"] == "42501"    # the same name refused again (never prepared)
    assert got["tx"] == {"refused": "42501", "next": "25P02", "after_rollback": 4}
    assert exists(pg, "refusal_node_t") and nrows(pg, "refusal_node_t") == 4


# ------------------------------------------------------------------ every statement counts

def test_multi_statement_runs_none(pg, moat):
    t = make_table(pg, "multi_t", rows=4)
    r = mu.psql(moat.endpoint, f"SELECT 1; DROP TABLE {t}")
    assert r.returncode == 1 and "42501" in r.stderr, r.stderr
    assert r.stdout.strip() == "", f"the SELECT before the DROP returned rows: {r.stdout!r}"
    assert exists(pg, t)
    r = mu.psql(moat.endpoint, f"INSERT INTO {t} VALUES (100, 'x'); DELETE FROM {t}")
    assert r.returncode == 1, r.stderr
    assert 'refused by rule "delete-without-where-needs-approval"' in r.stderr, r.stderr
    assert nrows(pg, t) == 4, "the INSERT in front of the refused DELETE ran"
    with moat.endpoint.connect() as conn:
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"UPDATE {t} SET note = 'a' WHERE id = 1; TRUNCATE {t}", prepare=False)
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE note = 'a'") == 0
    assert nrows(pg, t) == 4


def test_transaction_aborted_psycopg(pg, moat):
    t = make_table(pg, "tx_t", rows=2)
    with moat.endpoint.connect(autocommit=False) as conn:
        conn.execute(f"INSERT INTO {t} VALUES (10, 'in tx')")
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"DROP TABLE {t}")
        assert conn.info.transaction_status.name == "INERROR"
        with pytest.raises(pgerr.InFailedSqlTransaction) as ei:
            conn.execute("SELECT 1")
        assert ei.value.sqlstate == "25P02"
        with pytest.raises(pgerr.InFailedSqlTransaction):
            conn.execute(f"SELECT count(*) FROM {t}")
        conn.rollback()
        assert conn.info.transaction_status.name == "IDLE"
        assert conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 2
        conn.rollback()
    assert nrows(pg, t) == 2 and exists(pg, t)


def test_transaction_aborted_psql(pg, moat):
    t = make_table(pg, "tx_psql_t", rows=2)
    script = (f"BEGIN;\nINSERT INTO {t} VALUES (10, 'in tx');\nDROP TABLE {t};\nSELECT 1;\n"
              f"ROLLBACK;\nSELECT count(*) FROM {t};\n")
    r = mu.psql_script(moat.endpoint, script)
    assert "ERROR:  42501: " + DROP_MSG in r.stderr, r.stderr
    assert ("ERROR:  25P02: current transaction is aborted, commands ignored until end of "
            "transaction block") in r.stderr, r.stderr
    assert r.stdout.splitlines()[-1] == "2", r.stdout
    assert nrows(pg, t) == 2


# ------------------------------------------------------------------ psycopg pipeline mode

def test_pipeline_psycopg(pg, moat):
    t = make_table(pg, "pipe_t", rows=1)
    with moat.endpoint.connect() as conn:
        assert psycopg.Pipeline.is_supported()
        first = second = after = None
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            with conn.pipeline():
                first = conn.execute(f"INSERT INTO {t} VALUES (2, 'p') RETURNING id")
                second = conn.execute("SELECT %s::int * 2", (21,))
                conn.execute(f"DROP TABLE {t}")
                after = conn.execute(f"INSERT INTO {t} VALUES (3, 'after') RETURNING id")
        assert ei.value.diag.message_primary == DROP_MSG
        assert first.fetchone() == (2,)
        assert second.fetchone() == (42,)
        if after is not None:
            with pytest.raises(psycopg.Error):
                after.fetchone()  # skipped until Sync: no result
        # autocommit + pipeline: each statement its own implicit transaction up to Sync, so the
        # first INSERT (before the error, same implicit transaction) is rolled back by Postgres
        # just as it would be without pgmoat; the statement after the refusal never ran.
        assert conn.info.transaction_status.name == "IDLE"
        assert conn.execute(f"SELECT count(*) FROM {t} WHERE id = 3").fetchone()[0] == 0
        # a second pipeline on the same connection runs cleanly
        with conn.pipeline():
            a = conn.execute(f"INSERT INTO {t} VALUES (4, 'ok') RETURNING id")
            b = conn.execute(f"SELECT count(*) FROM {t} WHERE id = 4")
        assert a.fetchone() == (4,) and b.fetchone() == (1,)
    assert exists(pg, t)
    direct_ids = mu.count(pg, f"SELECT count(*) FROM {t} WHERE id IN (2, 3)")
    assert direct_ids == _pipeline_direct_ids(pg, "pipe_direct_t")


def _pipeline_direct_ids(pg, t: str) -> int:
    """The same pipeline straight to Postgres with a real error in place of the refusal:
    how many of the rows (2, 3) survive there."""
    make_table(pg, t, rows=1)
    with pg.endpoint.connect() as conn:
        with pytest.raises(psycopg.Error):
            with conn.pipeline():
                conn.execute(f"INSERT INTO {t} VALUES (2, 'p') RETURNING id")
                conn.execute("SELECT %s::int * 2", (21,))
                conn.execute("SELECT 1/0")
                conn.execute(f"INSERT INTO {t} VALUES (3, 'after') RETURNING id")
    return mu.count(pg, f"SELECT count(*) FROM {t} WHERE id IN (2, 3)")


def _pipeline_in_tx(endpoint, t: str, bad_sql: str) -> tuple:
    with endpoint.connect(autocommit=False) as conn:
        with pytest.raises(psycopg.Error) as ei:
            with conn.pipeline():
                a = conn.execute(f"INSERT INTO {t} VALUES (2, 'p') RETURNING id")
                conn.execute(bad_sql)
                conn.execute(f"INSERT INTO {t} VALUES (3, 'after')")
        first = a.fetchone()
        status = conn.info.transaction_status.name
        with pytest.raises(pgerr.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        ok = conn.execute("SELECT 1").fetchone()
        conn.rollback()
    return ei.value.sqlstate, first, status, ok


def test_pipeline_in_transaction(pg, moat):
    """Explicit transaction + pipeline: the refusal aborts the transaction exactly like a
    Postgres error at the same place."""
    t = make_table(pg, "pipe_tx_t", rows=1)
    got = _pipeline_in_tx(moat.endpoint, t, f"TRUNCATE {t}")
    assert got == ("42501", (2,), "INERROR", (1,)), got
    make_table(pg, "pipe_tx_direct", rows=1)
    want = _pipeline_in_tx(pg.endpoint, "pipe_tx_direct", "SELECT 1/0")
    assert got[1:] == want[1:], (got, want)
    assert nrows(pg, t) == 1


# ------------------------------------------------------------------ look inside

HIDDEN = {
    "cte": ("WITH d AS (DELETE FROM {t} RETURNING *) SELECT count(*) FROM d",
            "delete-without-where-needs-approval", "statement class delete_without_where on {t}"),
    "explain_analyze": ("EXPLAIN ANALYZE DELETE FROM {t}",
                        "delete-without-where-needs-approval", "statement class delete_without_where on {t}"),
    "do_block": ("DO $$BEGIN DELETE FROM {t}; END$$", "do-block-needs-approval", "statement class do_block"),
    "plpgsql_drop": ("CREATE FUNCTION hidden_drop_{t}() RETURNS void LANGUAGE plpgsql AS "
                     "$$BEGIN DROP TABLE {t}; END$$", "drop-needs-approval", "statement class drop"),
    "copy_program": ("COPY {t} TO PROGRAM 'cat > /dev/null'", "copy-program-needs-approval",
                     "statement class copy_program on {t}"),
    "replication_role": ("SET session_replication_role = replica", "replication-role-needs-approval",
                         "statement class session_replication_role"),
    "terminate_backend": ("SELECT pg_terminate_backend(pg_backend_pid())", "dangerous-function-needs-approval",
                          "statement class dangerous_function (pg_terminate_backend())"),
    "copy_query_to": ("COPY (DELETE FROM {t} RETURNING *) TO STDOUT", "delete-without-where-needs-approval",
                      "statement class delete_without_where on {t}"),
    "create_rule": ("CREATE RULE hidden_rule AS ON INSERT TO {t} DO ALSO DELETE FROM {t}",
                    "delete-without-where-needs-approval", "statement class delete_without_where (rule) on {t}"),
    "procedure_truncate": ("CREATE PROCEDURE hidden_drop_{t}() LANGUAGE plpgsql AS $$BEGIN TRUNCATE {t}; END$$",
                           "truncate-needs-approval", "statement class truncate"),
    "plpgsql_execute": ("CREATE FUNCTION hidden_drop_{t}() RETURNS void LANGUAGE plpgsql AS "
                        "$$BEGIN EXECUTE 'DROP TABLE {t}'; END$$", "drop-needs-approval", "statement class drop"),
    "always_true_where": ("DELETE FROM {t} WHERE 1 = 1 OR id = 3", "delete-without-where-needs-approval",
                          "statement class delete_without_where on {t}"),
    "lowercase_comment": ("/* cleanup */ drop table if exists {t} cascade", "drop-needs-approval",
                          "statement class drop (table) on {t}"),
    "set_config_replication": ("SELECT set_config('session_replication_role', 'replica', false)",
                               "replication-role-needs-approval", "statement class session_replication_role"),
    "prepare_as": ("PREPARE hidden_p AS DELETE FROM {t}", "delete-without-where-needs-approval",
                   "statement class delete_without_where on {t}"),
}


@pytest.mark.parametrize("case", list(HIDDEN))
def test_hidden_destructive_refused(pg, moat, case):
    t = make_table(pg, f"hidden_{case}", rows=6)
    sql, rule, detail = (s.format(t=t) for s in HIDDEN[case])
    with moat.endpoint.connect() as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(sql, prepare=False)
        d = ei.value.diag
        assert d.message_primary.startswith("pgmoat: ") and f'refused by rule "{rule}"' in d.message_primary
        assert (d.message_detail or "").startswith(detail), d.message_detail
        assert HINT_PART in (d.message_hint or "")
        # nothing happened: same backend, session settings and data untouched
        assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        assert conn.execute("SHOW session_replication_role").fetchone()[0] == "origin"
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'hidden_p'"
                            ).fetchone()[0] == 0
    assert exists(pg, t) and nrows(pg, t) == 6
    assert mu.count(pg, f"SELECT count(*) FROM pg_proc WHERE proname = 'hidden_drop_{t}'") == 0
    assert mu.count(pg, "SELECT count(*) FROM pg_rules WHERE rulename = 'hidden_rule'") == 0


def test_sql_prepared_statement_bound_by_protocol_is_refused(pg, moat):
    """SQL PREPARE defers a guarded DELETE's row limit to its EXECUTE. A protocol Bind of the
    same name runs the body with no EXECUTE for pgmoat to judge, so that Execute is refused
    (it used to delete every row, past the row limit and without an audit record)."""
    import pgwire

    sync = pgwire.SYNC
    t = make_table(pg, "bind_sqlprep_t", rows=1500)  # above the shipped max_rows = 1000
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        assert pgwire.first_error(c.simple_query(f"PREPARE wipe AS DELETE FROM {t} WHERE id > 0")) is None
        c.send(pgwire.bind("", "wipe") + pgwire.execute("") + sync)
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "0A000", err
        assert 'statement "wipe"' in err["M"] and "SQL PREPARE" in err.get("D", ""), err
        assert "EXECUTE wipe" in err.get("H", ""), err
        # The session goes on; the SQL route is judged (the row guard refuses it), and a
        # statement prepared with Parse still runs through Bind/Execute.
        err = pgwire.first_error(c.simple_query("EXECUTE wipe"))
        assert err is not None and err["C"] == "42501" and "row-limit" in err["M"], err
        c.send(pgwire.parse("cnt", f"SELECT count(*) FROM {t}") + pgwire.bind("", "cnt") +
               pgwire.execute("") + sync)
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None and pgwire.data_rows(msgs) == [["1500"]], msgs
    assert nrows(pg, t) == 1500


def _prepare_wipe_then_run(c, t: str, name: str, statement: str):
    """SQL PREPARE `name` as a guarded DELETE of every row of t, then Bind `statement` to the
    unnamed portal and Execute it. Returns the error (None: it ran)."""
    import pgwire

    assert pgwire.first_error(c.simple_query(f"PREPARE {name} AS DELETE FROM {t} WHERE id > 0")) is None
    c.send(pgwire.bind("", statement) + pgwire.execute("") + pgwire.SYNC)
    return pgwire.first_error(c.read_until(b"Z"))


# How the name "wipe" is freed before SQL PREPARE takes it: SQL DEALLOCATE (psycopg 3 evicts
# its prepared statements that way) as a simple Query or through Parse/Bind/Execute,
# DEALLOCATE ALL, DISCARD ALL.
FREED_BY = {
    "deallocate": [None, "DEALLOCATE wipe"],
    "deallocate_extended": ["extended", "DEALLOCATE wipe"],
    "deallocate_all": [None, "DEALLOCATE ALL"],
    "discard_all": [None, "DISCARD ALL"],
}


@pytest.mark.parametrize("how", sorted(FREED_BY))
def test_protocol_statement_freed_by_sql_is_forgotten(pg, moat, how):
    """A name prepared with Parse, dropped with SQL, then taken by SQL PREPARE: a protocol Bind
    of it runs the new body, so its Execute is refused like that of any SQL-prepared statement.
    pgmoat used to judge it as the statement first parsed under the name: the DELETE ran past
    the row limit, unaudited."""
    import pgwire

    sync = pgwire.SYNC
    route, drop = FREED_BY[how]
    t = make_table(pg, f"freed_{how}_t", rows=1500)  # above the shipped max_rows = 1000
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.parse("wipe", "SELECT 1") + sync)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        if route == "extended":
            c.send(pgwire.parse("", drop) + pgwire.bind("", "") + pgwire.execute("") + sync)
            msgs = c.read_until(b"Z")
        else:
            msgs = c.simple_query(drop)
        assert pgwire.first_error(msgs) is None, msgs
        err = _prepare_wipe_then_run(c, t, "wipe", "wipe")
        assert err is not None and err["C"] == "0A000", err
        assert 'statement "wipe"' in err["M"] and "SQL PREPARE" in err.get("D", ""), err
    assert nrows(pg, t) == 1500


@pytest.mark.parametrize("runner", ["EXECUTE wipe", "EXPLAIN (ANALYZE) EXECUTE wipe"])
def test_protocol_statement_run_by_sql_is_judged(pg, moat, runner):
    """A statement prepared with Parse can be run by SQL: EXECUTE, EXPLAIN ANALYZE EXECUTE.
    Each is judged as what it runs (here the row guard refuses it).
    pgmoat used to judge only SQL-prepared names: a guarded DELETE ran past the row limit."""
    import pgwire

    t = make_table(pg, "sqlrun_t", rows=1500)  # above the shipped max_rows = 1000
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.parse("wipe", f"DELETE FROM {t} WHERE id > 0 RETURNING id") + pgwire.SYNC)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        err = pgwire.first_error(c.simple_query(runner))
        assert err is not None and err["C"] == "42501" and "row-limit" in err["M"], err
    assert nrows(pg, t) == 1500


def test_parsed_execute_of_a_name_prepared_again_is_refused(pg, moat):
    """A Parse of `EXECUTE x` is judged as what x stands for at that Parse. If x is prepared
    again before the statement's portal runs, the Execute is refused (55000); it used to run
    the new body: here a guarded DELETE past the row limit. Unchanged, it runs as judged."""
    import pgwire

    sync = pgwire.SYNC
    t = make_table(pg, "reprepared_t", rows=1500)  # above the shipped max_rows = 1000
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        assert pgwire.first_error(c.simple_query(f"PREPARE x AS SELECT count(*) FROM {t}")) is None
        c.send(pgwire.parse("e", "EXECUTE x") + pgwire.bind("", "e") + pgwire.execute("") + sync)
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None and pgwire.data_rows(msgs) == [["1500"]], msgs
        assert pgwire.first_error(c.simple_query("DEALLOCATE x")) is None
        err = _prepare_wipe_then_run(c, t, "x", "e")
        assert err is not None and err["C"] == "55000", err
        assert 'prepared statement "x" changed' in err["M"] and 'Parse "e" again' in err.get("H", ""), err
    assert nrows(pg, t) == 1500


@pytest.mark.parametrize("route", ["sql", "parse"])
def test_a_chain_of_prepared_statements_is_refused(pg, moat, route):
    """A Parse can prepare the text `EXECUTE w`; running that statement runs w. pgmoat used to
    judge it as what its own text says (a harmless EXECUTE) when it was itself run by SQL
    EXECUTE or by another Parse of EXECUTE: a guarded DELETE ran past the row limit. pgmoat
    does not follow such chains: the outer EXECUTE is refused (0A000)."""
    import pgwire

    sync = pgwire.SYNC
    t = make_table(pg, f"chain_{route}_t", rows=1500)  # above the shipped max_rows = 1000
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        assert pgwire.first_error(c.simple_query(f"PREPARE w AS DELETE FROM {t} WHERE id > 0")) is None
        c.send(pgwire.parse("x", "EXECUTE w") + sync)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        if route == "sql":
            err = pgwire.first_error(c.simple_query("EXECUTE x"))
        else:
            c.send(pgwire.parse("y", "EXECUTE x") + pgwire.bind("", "y") + pgwire.execute("") + sync)
            err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "0A000", err
        assert 'prepared statement "x" runs prepared statement "w"' in err["M"], err
        # w itself is still judged as the DELETE it is
        err = pgwire.first_error(c.simple_query("EXECUTE w"))
        assert err is not None and err["C"] == "42501" and "row-limit" in err["M"], err
    assert nrows(pg, t) == 1500


# A drop the server refuses or skips leaves the name standing, and a PREPARE of a taken name
# fails: each pair then runs the first DELETE on the server, and pgmoat must judge it so.
DROP_THAT_FAILS = {
    "prepare_over_taken": [],
    "deallocate_in_aborted_block": ["BEGIN", "SELECT 1/0", "DEALLOCATE wipe", "ROLLBACK"],
    "discard_all_in_block": ["BEGIN", "DISCARD ALL", "ROLLBACK"],
    "deallocate_after_error": ["SELECT 1/0; DEALLOCATE wipe"],
    "close_skipped": ["close after error"],
}


@pytest.mark.parametrize("how", sorted(DROP_THAT_FAILS))
def test_a_name_that_was_not_dropped_runs_what_it_did(pg, moat, how):
    """After a drop that failed (or was skipped), SQL PREPARE of the same name fails on the
    server, and EXECUTE runs the statement the name had: a guarded DELETE, refused by the row
    guard. pgmoat used to forget the name when the drop was sent, or take the failed PREPARE's
    body, and let the DELETE run past the row limit."""
    import pgwire

    t = make_table(pg, f"notdropped_{how}_t", rows=1500)  # above the shipped max_rows = 1000
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        if how == "prepare_over_taken":  # SQL PREPARE twice: the second one fails
            assert pgwire.first_error(c.simple_query(f"PREPARE wipe AS DELETE FROM {t} WHERE id > 0")) is None
        else:
            c.send(pgwire.parse("wipe", f"DELETE FROM {t} WHERE id > 0") + pgwire.SYNC)
            assert pgwire.first_error(c.read_until(b"Z")) is None
        for step in DROP_THAT_FAILS[how]:
            if step == "close after error":
                c.send(pgwire.parse("", "SELECT 1/0") + pgwire.bind("", "") + pgwire.execute("") +
                       pgwire.close("S", "wipe") + pgwire.SYNC)
                c.read_until(b"Z")
            else:
                c.simple_query(step)
        err = pgwire.first_error(c.simple_query("PREPARE wipe AS SELECT 1"))
        assert err is not None and err["C"] == "42P05", err  # the name is still taken
        err = pgwire.first_error(c.simple_query("EXECUTE wipe"))
        assert err is not None and err["C"] == "42501" and "row-limit" in err["M"], err
    assert nrows(pg, t) == 1500


def _desync(c, how: str, t: str) -> None:
    """Sequences whose boundaries the server does not all answer: a Query skipped after an
    error in an unsynced extended group; a Sync sent during COPY IN (libpq's extended COPY)."""
    import pgwire

    if how == "skipped_query":
        c.send(pgwire.parse("", "SELECT 1/0") + pgwire.bind("", "") + pgwire.execute("") +
               pgwire.query("SELECT 1") + pgwire.SYNC)
        assert pgwire.first_error(c.read_until(b"Z")) is not None
    else:  # as libpq sends it: the data after CopyInResponse, then CopyDone and a Sync
        c.send(pgwire.parse("", f"COPY {t}_copy FROM STDIN") + pgwire.bind("", "") +
               pgwire.execute("") + pgwire.SYNC)
        c.read_until(b"G")
        c.send(pgwire.message(b"d", b"1\n") + pgwire.message(b"c") + pgwire.SYNC)
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None, msgs


@pytest.mark.parametrize("how", ["skipped_query", "copy_in"])
def test_a_failed_drop_after_unanswered_boundaries_leaves_the_name(pg, moat, how):
    """After boundaries the server leaves unanswered, pgmoat cannot tell which error belongs
    to which group: a DEALLOCATE in a query string that failed must still leave the name (it
    used to be taken as answered without an error, and the guarded DELETE ran)."""
    import pgwire

    t = make_table(pg, f"desync_{how}_t", rows=1500)
    with pg.admin() as a:
        a.execute(f"DROP TABLE IF EXISTS {t}_copy")
        a.execute(f"CREATE TABLE {t}_copy (n int)")
        a.execute(f"GRANT ALL ON {t}_copy TO PUBLIC")
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.parse("wipe", f"DELETE FROM {t} WHERE id > 0") + pgwire.SYNC)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        _desync(c, how, t)
        err = pgwire.first_error(c.simple_query("SELECT 1/0; DEALLOCATE wipe"))
        assert err is not None and err["C"] == "22012", err
        assert pgwire.first_error(c.simple_query("SELECT 1")) is None
        err = pgwire.first_error(c.simple_query("PREPARE wipe AS SELECT 1"))
        assert err is not None and err["C"] == "42P05", err
        err = pgwire.first_error(c.simple_query("EXECUTE wipe"))
        assert err is not None and err["C"] == "42501" and "row-limit" in err["M"], err
    assert nrows(pg, t) == 1500


def test_a_name_dropped_and_prepared_in_one_query_is_the_new_body(pg, moat):
    """`DEALLOCATE x; PREPARE x AS SELECT ...` in one query string: once it has succeeded, x is
    the SELECT alone. pgmoat used to keep judging it as the old DELETE too: every EXECUTE went
    through the row guard's counts and into the audit trail as a write."""
    import pgwire

    t = make_table(pg, "dropprep_t", rows=1500)
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        assert pgwire.first_error(c.simple_query(f"PREPARE wipe AS DELETE FROM {t} WHERE id > 0")) is None
        msgs = c.simple_query(f"DEALLOCATE wipe; PREPARE wipe AS SELECT count(*) FROM {t}")
        assert pgwire.first_error(msgs) is None, msgs
        msgs = c.simple_query("EXECUTE wipe")
        assert pgwire.first_error(msgs) is None and pgwire.data_rows(msgs) == [["1500"]], msgs
    assert mu.records_for(moat, statement_re="^EXECUTE wipe") == []
    assert nrows(pg, t) == 1500


@pytest.mark.parametrize("runner", ["query", "parsed"])
def test_a_name_parsed_again_unanswered_is_judged_as_both(pg, moat, runner):
    """A Parse of a taken name fails on the server, which keeps the old statement. Sent in
    one write with a later group that runs the name through SQL, the old statement is what
    runs: pgmoat judges the name as both until the server answers (here the row guard refuses
    it). It used to judge it as the new SELECT only."""
    import pgwire

    t = make_table(pg, f"inflight_{runner}_t", rows=1500)
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.parse("wipe", f"DELETE FROM {t} WHERE id > 0") + pgwire.SYNC)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        run = (pgwire.query("EXECUTE wipe") if runner == "query" else
               pgwire.parse("e", "EXECUTE wipe") + pgwire.bind("", "e") + pgwire.execute("") +
               pgwire.SYNC)
        c.send(pgwire.parse("wipe", "SELECT 1") + pgwire.SYNC + run)
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "42P05", err
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] in ("42501", "55000"), err
    assert nrows(pg, t) == 1500


def test_a_skipped_portal_close_leaves_the_portal(pg, moat):
    """A Close of a portal skipped after an error leaves the portal on the server; after
    ROLLBACK TO SAVEPOINT it still runs. pgmoat used to forget it when the Close was sent, and
    an Execute of a portal it does not know runs unjudged (as a SQL cursor would)."""
    import pgwire

    sync = pgwire.SYNC
    t = make_table(pg, "skipped_close_t", rows=1500)
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        assert pgwire.first_error(c.simple_query("BEGIN")) is None
        c.send(pgwire.parse("del", f"DELETE FROM {t} WHERE id > 0") + pgwire.bind("p", "del") + sync)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        assert pgwire.first_error(c.simple_query("SAVEPOINT s")) is None
        c.send(pgwire.parse("", "SELECT 1/0") + pgwire.bind("", "") + pgwire.execute("") +
               pgwire.close("P", "p") + sync)
        assert pgwire.first_error(c.read_until(b"Z")) is not None
        assert pgwire.first_error(c.simple_query("ROLLBACK TO SAVEPOINT s")) is None
        c.send(pgwire.execute("p") + sync)
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "42501" and "row-limit" in err["M"], err
        c.simple_query("ROLLBACK")
    assert nrows(pg, t) == 1500


@pytest.mark.parametrize("desync", [False, True])
@pytest.mark.parametrize("portal", ["p", ""])
def test_a_portal_bound_after_an_error_may_be_the_old_one(pg, moat, portal, desync):
    """A Bind the server refuses (a named portal that exists: 42P03; the unnamed one with the
    wrong number of parameters: 08P01) keeps the old portal, and ROLLBACK TO SAVEPOINT lets it
    run. pgmoat cannot tell, so the Execute is refused (55000); it used to be judged as the
    new statement while the guarded DELETE ran past the row limit."""
    import pgwire

    sync = pgwire.SYNC
    t = make_table(pg, f"rebind_{portal or 'unnamed'}_{int(desync)}_t", rows=1500)
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        if desync:  # the server leaves a boundary unanswered first
            _desync(c, "skipped_query", t)
        c.send(pgwire.parse("BEGIN", "BEGIN") + pgwire.bind("", "BEGIN") + pgwire.execute("") +
               pgwire.parse("del", f"DELETE FROM {t} WHERE id > 0") + pgwire.parse("sel", "SELECT $1::int") +
               pgwire.parse("sp", "SAVEPOINT s") + pgwire.parse("back", "ROLLBACK TO SAVEPOINT s") +
               sync)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        c.send(pgwire.bind(portal, "del") + pgwire.bind("sp_p", "sp") + pgwire.execute("sp_p") + sync)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        # Binding "p" again fails (it exists); binding "" to sel without its parameter fails.
        c.send(pgwire.bind(portal, "sel") + pgwire.execute(portal) + sync)
        assert pgwire.first_error(c.read_until(b"Z")) is not None
        c.send(pgwire.bind("back_p", "back") + pgwire.execute("back_p") + sync)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        c.send(pgwire.execute(portal) + sync)
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] in ("55000", "42501"), err
        c.simple_query("ROLLBACK")
    assert nrows(pg, t) == 1500


def test_execute_of_a_name_pgmoat_does_not_know_is_refused(pg, moat):
    """EXECUTE of a name no PREPARE or Parse made in the session (or one deallocated since)
    cannot be judged: refused with 26000, as Postgres refuses a name it does not have. Names
    prepared earlier in the same query string are known."""
    t = make_table(pg, "unknown_exec_t", rows=3)
    with moat.endpoint.connect(autocommit=True) as conn:
        with pytest.raises(pgerr.InvalidSqlStatementName) as e:
            conn.execute("EXECUTE never_prepared")
        assert e.value.diag.message_primary.startswith('pgmoat: prepared statement "never_prepared"')
        conn.execute(f"PREPARE gone AS DELETE FROM {t} WHERE id = 1")
        conn.execute("DEALLOCATE gone")
        with pytest.raises(pgerr.InvalidSqlStatementName) as e:
            conn.execute("EXECUTE gone")
        assert e.value.diag.message_primary.startswith('pgmoat: prepared statement "gone"')
        conn.execute(f"PREPARE kept AS SELECT count(*) FROM {t}")
        conn.execute("DISCARD PLANS")  # keeps prepared statements
        assert conn.execute("EXECUTE kept").fetchone() == (3,)
        conn.execute("DEALLOCATE ALL")
        with pytest.raises(pgerr.InvalidSqlStatementName):
            conn.execute("EXECUTE kept")
        # Creating a function that deallocates a name runs nothing: not refused as unknown.
        conn.execute("CREATE OR REPLACE FUNCTION pgmoat_it_dealloc() RETURNS void LANGUAGE plpgsql "
                     "AS $$ BEGIN EXECUTE 'DEALLOCATE never_prepared'; END $$")
        # PREPARE and EXECUTE in one query string (the simple protocol allows several)
        cur = conn.cursor()
        cur.execute(f"PREPARE both_in_one AS SELECT count(*) FROM {t}; EXECUTE both_in_one")
        assert cur.nextset() and cur.fetchone() == (3,)
    assert nrows(pg, t) == 3


def test_protocol_close_of_a_sql_prepared_statement_forgets_it(pg, moat):
    """A protocol Close of a statement closes it whichever way it was prepared: an EXECUTE of
    the name afterwards is refused by pgmoat (26000), not judged as the closed body."""
    import pgwire

    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        assert pgwire.first_error(c.simple_query("PREPARE closed_p AS SELECT 1")) is None
        c.send(pgwire.close("S", "closed_p") + pgwire.SYNC)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        err = pgwire.first_error(c.simple_query("EXECUTE closed_p"))
        assert err is not None and err["C"] == "26000", err
        assert err["M"].startswith('pgmoat: prepared statement "closed_p"'), err


def test_psycopg_evicting_its_prepared_statements_keeps_working(pg, moat):
    """psycopg 3 prepares a query on its fifth run (prepare_threshold) and keeps at most
    prepared_max of them, deallocating the oldest with SQL DEALLOCATE. pgmoat follows: every
    query still runs, and the server holds no more than prepared_max."""
    t = make_table(pg, "evict_t", rows=4)
    with moat.endpoint.connect(autocommit=True) as conn:
        conn.prepare_threshold = 0
        conn.prepared_max = 2
        for rnd in range(3):
            for i in range(1, 5):
                got = conn.execute(f"SELECT note FROM {t} WHERE id = %s AND {i} = {i}", (i,)).fetchone()
                assert got == (f"row {i}",), (rnd, i, got)
                conn.execute(f"UPDATE {t} SET note = note WHERE id = %s AND {i} = {i}", (i,))
        # prepared_max, and the query that counts them (pgmoat's row guard keeps its own)
        held = conn.execute("SELECT count(*) FROM pg_prepared_statements "
                            "WHERE name LIKE '\\_pg3\\_%'").fetchone()[0]
        assert held <= 3, held


def test_ordinary_traffic_allowed(pg, moat):
    t = make_table(pg, "plain_t", rows=3)
    with moat.endpoint.connect() as conn:
        assert conn.execute("SELECT 'DROP TABLE plain_t' AS s").fetchone() == ("DROP TABLE plain_t",)
        conn.execute(f"INSERT INTO {t} VALUES (%s, %s)", (4, "DROP TABLE plain_t; DELETE FROM plain_t"))
        conn.execute(f"INSERT INTO {t} VALUES (5, 'x') -- DROP TABLE plain_t")
        conn.execute(f"/* TRUNCATE {t} */ UPDATE {t} SET note = 'u' WHERE id = 1")
        cur = conn.execute(f"DELETE FROM {t} WHERE id = 2")
        assert cur.rowcount == 1
        assert conn.execute(f"SELECT note FROM {t} WHERE id = 4").fetchone() == (
            "DROP TABLE plain_t; DELETE FROM plain_t",)
        conn.execute("SET work_mem = '8MB'")
        conn.execute("CREATE TEMP TABLE tmp_ok (i int)")
        conn.execute("SELECT pg_sleep(0)")
    assert nrows(pg, t) == 4
    r = mu.psql(moat.endpoint, f"SELECT note FROM {t} WHERE id = 1; SELECT 'TRUNCATE {t}'")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["u", f"TRUNCATE", t] or r.stdout.splitlines() == ["u", f"TRUNCATE {t}"], r.stdout


# ------------------------------------------------------------------ monitor mode, log rules

def test_monitor_mode_runs_and_records(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory, policy_mode="monitor")
    t = make_table(pg, "monitor_t", rows=3)
    r = mu.psql(p.endpoint, f"DELETE FROM {t}; DROP TABLE {t}")
    assert r.returncode == 0, r.stderr
    assert not exists(pg, t), "monitor mode refused the DROP"
    recs = mu.wait_records(p, lambda rs: [x for x in rs if x["type"] == "would_refuse"] if len(
        [x for x in rs if x["type"] == "would_refuse"]) >= 2 else None, what="two would_refuse records")
    rules = sorted(x.get("rule") for x in recs)
    assert rules == ["delete-without-where-needs-approval", "drop-needs-approval"], recs
    assert all(t in x.get("statement", "") for x in recs), recs
    assert not mu.records_for(p, type="refusal")


def test_log_action_rule(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory, extra_toml="""
[[rules]]
name = "log-ledger-writes"
action = "log"
classes = ["insert", "update"]
tables = ["ledger_*"]
""")
    t = make_table(pg, "ledger_log_t", rows=1)
    o = make_table(pg, "other_log_t", rows=1)
    with p.endpoint.connect() as conn:
        conn.execute(f"INSERT INTO {t} VALUES (2, 'logged')")
        conn.execute(f"INSERT INTO {o} VALUES (2, 'not logged')")
    assert nrows(pg, t) == 2 and nrows(pg, o) == 2
    logged = mu.wait_records(p, lambda rs: [x for x in rs if x["type"] == "statement" and t in x.get("statement", "")],
                             what="statement record for the logged insert")
    # the statement runs; its record names the log rule, and a would_refuse record says why
    assert logged[0]["decision"] == "allow" and logged[0]["rule"] == "log-ledger-writes", logged
    flagged = mu.records_for(p, type="would_refuse", statement_re=t)
    assert [x["rule"] for x in flagged] == ["log-ledger-writes"], flagged
    other = mu.wait_records(p, lambda rs: [x for x in rs if x["type"] == "statement" and o in x.get("statement", "")],
                            what="statement record for the other insert")
    assert other[0]["decision"] == "allow" and other[0].get("rule") in (None, ""), other
    assert not mu.records_for(p, type="would_refuse", statement_re=o)
    assert not mu.records_for(p, type="refusal")


# ------------------------------------------------------------------ SIGHUP reload

def _insert_refused(conn, t: str, i: int) -> bool:
    try:
        conn.execute(f"INSERT INTO {t} VALUES ({i}, 'probe')")
        return False
    except pgerr.InsufficientPrivilege as e:
        return 'refused by rule "deny-reload-inserts"' in e.diag.message_primary


def test_sighup_reload(pg, pgmoat_factory):
    p = mu.start(pgmoat_factory)
    t = make_table(pg, "reload_t", rows=0)
    original = p.config_path.read_text()
    with p.endpoint.connect() as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute(f"INSERT INTO {t} VALUES (1, 'before reload')")
        p.config_path.write_text(original + '\n[[rules]]\nname = "deny-reload-inserts"\naction = "deny"\n'
                                 'classes = ["insert"]\ntables = ["reload_t"]\n')
        os.kill(p.proc.pid, signal.SIGHUP)
        counter = iter(range(100, 100000))
        mu.poll(lambda: _insert_refused(conn, t, next(counter)), 10, interval=0.1,
                what="the reloaded rule to refuse inserts on the existing session")
        # same session, same backend: the reload did not drop it
        assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        # the exact text run before the reload is judged again (no stale cached decision):
        # refused (42501), not forwarded (it would fail with 23505)
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"INSERT INTO {t} VALUES (1, 'before reload')")
        n_after_reload = nrows(pg, t)

        # a broken file: pgmoat keeps running with the previous policy
        p.config_path.write_text(original + '\n[[rules]]\nname = "broken"\naction = "explode"\n[[[\n')
        os.kill(p.proc.pid, signal.SIGHUP)
        mu.poll(lambda: "reload" in p.log_text().lower() and ("error" in p.log_text().lower()
                                                             or "keep" in p.log_text().lower()),
                10, what="a log line about the failed reload")
        assert p.alive()
        assert _insert_refused(conn, t, 99999), "the old policy was dropped by a broken reload"
        assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
    assert nrows(pg, t) == n_after_reload
    # new sessions get the old (still valid) policy too
    with p.endpoint.connect() as conn2:
        assert _insert_refused(conn2, t, 99998)


def test_a_bind_the_server_skips_leaves_the_portal_uncertain(pg, moat):
    """After an error the server skips the rest of the Sync group, a Bind too: a portal of that
    name bound earlier (kept by ROLLBACK TO SAVEPOINT) stays what it was. pgmoat took the
    skipped Bind as done (the error had arrived before it read the Bind), judged the portal
    as the SELECT, and the guarded DELETE bound earlier ran past the row limit. Now its
    Execute is refused (55000) until it is bound again. Found by a differential fuzz."""
    import pgwire

    sync = pgwire.SYNC
    t = make_table(pg, "skipped_bind_t", rows=1500)  # above the shipped max_rows = 1000
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.query("BEGIN") + pgwire.parse("sdel", f"DELETE FROM {t} WHERE id > 0") +
               pgwire.parse("ssel", "SELECT 1") + pgwire.bind("p1", "sdel") + sync +
               pgwire.query("SAVEPOINT a") +
               pgwire.parse("", f"UPDATE {t} SET note = 'x' WHERE id = 1 / 0") +
               pgwire.bind("", "") + pgwire.execute("") + pgwire.bind("p1", "ssel") + sync +
               pgwire.query("ROLLBACK TO SAVEPOINT a") + pgwire.execute("p1") + sync +
               pgwire.query("COMMIT"))
        # BEGIN, Sync, SAVEPOINT, the failed group, ROLLBACK TO, Execute p1, COMMIT
        answers = [c.read_until(b"Z") for _ in range(7)]
        err = pgwire.first_error(answers[3])
        assert err is not None and err["C"] == "22012", answers[3]
        err = pgwire.first_error(answers[5])
        assert err is not None and err["C"] == "55000" and "p1" in err["M"], answers[5]
    assert nrows(pg, t) == 1500


@pytest.mark.parametrize("control", ["BEGIN", "COMMIT"])
def test_a_guarded_query_before_the_sync_of_extended_messages_is_refused(pg, moat, control):
    """BEGIN or COMMIT by the extended protocol, and a guarded simple Query before any Sync:
    no ReadyForQuery has said whether a block is open. pgmoat used the last one it saw and
    after COMMIT ran the DELETE unwrapped: it committed 1,500 rows while the client was
    told the statement was refused. After BEGIN it committed the client's open block. Now
    such a Query is refused (0A000) before it runs."""
    import pgwire

    t = make_table(pg, f"unsynced_{control.lower()}_t", rows=1500)
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        if control == "COMMIT":
            assert pgwire.first_error(c.simple_query("BEGIN")) is None
        c.send(pgwire.parse("", control) + pgwire.bind("", "") + pgwire.execute("") +
               pgwire.query(f"DELETE FROM {t} WHERE id > 0"))
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "0A000" and "Sync" in err.get("H", ""), err
        c.simple_query("ROLLBACK")
    assert nrows(pg, t) == 1500


# ------------------------------------------------------------------ how the server reads backslashes

# With standard_conforming_strings off, Postgres reads \' inside '...' as a quote that does not
# end the string: this is a SELECT and then a DROP TABLE. Read with it on (libpg_query's
# default), it is one SELECT of two strings.
HIDDEN_DROP = "SELECT 'a\\', ' ; DROP TABLE {t}; --'"


@pytest.mark.parametrize("how", ["set", "startup_options"])
def test_a_drop_hidden_by_backslash_escapes_is_judged_as_the_server_reads_it(pg, moat, how):
    """pgmoat follows standard_conforming_strings as the server reports it (ParameterStatus),
    set in the session or in the startup packet. It used to read every text with it on: the
    DROP TABLE passed as part of a string and the server ran it."""
    import pgwire

    t = make_table(pg, f"scs_{how}_t")
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        if how == "set":
            c.startup("postgres")
            assert pgwire.first_error(c.simple_query("SET standard_conforming_strings = off")) is None
        else:
            c.startup("postgres", options="-c standard_conforming_strings=off")
        err = pgwire.first_error(c.simple_query(HIDDEN_DROP.format(t=t)))
        assert err is not None and err["C"] == "42501" and "DROP TABLE" in err["M"], err
        # the same through the extended protocol
        c.send(pgwire.parse("", HIDDEN_DROP.format(t=t)) + pgwire.bind("", "") +
               pgwire.execute("") + pgwire.SYNC)
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "42501" and "DROP TABLE" in err["M"], err
        # texts whose backslashes change only a value still run
        msgs = c.simple_query("SELECT 'x\\y'")
        assert pgwire.first_error(msgs) is None and pgwire.data_rows(msgs) == [["xy"]], msgs
    assert exists(pg, t)


def test_a_text_pipelined_behind_a_change_of_the_setting_is_refused(pg, moat):
    """Sent in one write behind a SET that turns standard_conforming_strings off, a text
    that reads differently either way is refused (55000): pgmoat cannot tell which way the
    server reads it. One whose reading does not depend on it runs."""
    import pgwire

    t = make_table(pg, "scs_pipelined_t")
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        c.send(pgwire.query("SET standard_conforming_strings = off") +
               pgwire.query(HIDDEN_DROP.format(t=t)) + pgwire.query("SELECT 'x\\y'"))
        assert pgwire.first_error(c.read_until(b"Z")) is None
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "55000", err
        assert "standard_conforming_strings" in err["M"], err
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None and pgwire.data_rows(msgs) == [["xy"]], msgs
    assert exists(pg, t)


@pytest.mark.parametrize("language", ["sql", "plpgsql_quoted"])
def test_a_function_body_that_reads_differently_is_judged_both_ways(pg, moat, language):
    """Postgres parses a function's stored body again when it runs (SQL) or is compiled in a
    session (PL/pgSQL), under the setting of that moment: created with
    standard_conforming_strings on, this body drops a table when called with it off. pgmoat
    reads a body both ways, so the CREATE FUNCTION is judged as one that may drop a table;
    a PL/pgSQL body written as a '...' string too (its value, not the statement, is read the
    other way)."""
    import pgwire

    t = make_table(pg, f"scs_body_{language}_t")
    if language == "sql":
        body = HIDDEN_DROP.format(t=t)
        create = f"CREATE FUNCTION scs_body_f() RETURNS void LANGUAGE sql AS $${body}$$"
    else:
        body = f"BEGIN\nPERFORM 'a\\', ' ; DROP TABLE {t}; PERFORM 1; --';\nEND"
        quoted = body.replace("'", "''")
        create = f"CREATE FUNCTION scs_body_f() RETURNS void LANGUAGE plpgsql AS '{quoted}'"
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        err = pgwire.first_error(c.simple_query(create))
        assert err is not None and err["C"] == "42501" and "drop" in err.get("D", ""), err
    assert exists(pg, t)


def test_a_drop_hidden_in_a_multibyte_character_is_refused(pg, moat):
    """In client_encoding SJIS the bytes 0x95 0x5C are one character, so E'<0x95 0x5C>' is a
    whole string for the server and the DROP after it runs. pgmoat reads the bytes and saw
    an escaped quote: it refuses such a text (0A000). A backslash byte that changes nothing
    but a value still runs."""
    import pgwire

    t = make_table(pg, "sjis_t")
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        assert pgwire.first_error(c.simple_query("SET client_encoding = 'SJIS'")) is None
        c.send(pgwire.message(b"Q", b"SELECT E'\x95\x5c'; DROP TABLE " + t.encode() + b"; --'\0"))
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "0A000" and "SJIS" in err["M"], err
        # 0xA1 is a one-byte character: the two backslashes after it are real ones
        c.send(pgwire.message(b"Q", b"SELECT E'x\xa1\x5c\x5c', E', \x95\x5c' ; DROP TABLE " +
                              t.encode() + b" ; --'\0"))
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err["C"] == "0A000" and "SJIS" in err["M"], err
        c.send(pgwire.message(b"Q", b"SELECT length(E'\x95\x5cn')\0"))
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None and pgwire.data_rows(msgs) == [["2"]], msgs
    assert exists(pg, t)
