"""The blast-radius guard (issue 6) through pgmoat against a real Postgres: DELETE / UPDATE /
MERGE run for real, every row they touch is counted (ON DELETE CASCADE included), and a
statement over its rule's max_rows is rolled back and refused with 42501, in and out of
transaction blocks, over the simple and the extended protocol (psql, psycopg pipeline mode,
node-postgres), with RETURNING, with an approval token lifting the limit, and with the audit
record saying how many rows it would have touched."""

from __future__ import annotations

import threading
import time

import pytest

psycopg = pytest.importorskip("psycopg", reason="python3-psycopg missing: run scripts/install-deps.sh "
                                                 "and use /usr/bin/python3")
from psycopg import errors as pgerr  # noqa: E402

import moatutil as mu  # noqa: E402

LIMIT = 100
LIMIT_RULE = f"""
[[rules]]
name = "test-row-limit"
action = "require_approval"
classes = ["delete", "update", "merge"]
max_rows = {LIMIT}
"""
OVER = 'touched more rows than rule "test-row-limit" allows'


def start_guarded(pgmoat_factory, extra: str = "", rule: str = LIMIT_RULE, **kw):
    """pgmoat whose first rule limits delete/update/merge to LIMIT rows, then the default
    policy."""
    return mu.start(pgmoat_factory, rules=False, extra_toml=rule + "\n" + mu.default_rules() + extra, **kw)


@pytest.fixture
def moat(pgmoat_factory):
    return start_guarded(pgmoat_factory)


def table(pg, name: str, rows: int, db: str = "postgres") -> str:
    with pg.admin(db) as c:
        c.execute(f"DROP TABLE IF EXISTS {name} CASCADE")
        c.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)")
        c.execute(f"INSERT INTO {name} (id) SELECT g FROM generate_series(1, {rows}) g")
        c.execute(f"GRANT ALL ON {name} TO PUBLIC")
    return name


def stations(pg, prefix: str, n_stations: int = 7, db: str = "postgres") -> tuple[str, str]:
    """The incident's shape: stations, and measurements that cascade from them."""
    st, me = f"{prefix}_station", f"{prefix}_measurement"
    with pg.admin(db) as c:
        c.execute(f"DROP TABLE IF EXISTS {me}, {st} CASCADE")
        c.execute(f'CREATE TABLE {st} (id int PRIMARY KEY, "ofevCode" text NOT NULL)')
        c.execute(f"CREATE TABLE {me} (id bigserial PRIMARY KEY, "
                  f"station int NOT NULL REFERENCES {st} ON DELETE CASCADE, value float8)")
        c.execute(f"INSERT INTO {st} SELECT g, 'S' || g FROM generate_series(1, {n_stations}) g")
        c.execute(f"INSERT INTO {me} (station, value) SELECT 1 + (g % {n_stations}), g "
                  f"FROM generate_series(1, 20000) g")
        c.execute(f"GRANT ALL ON {st}, {me} TO PUBLIC")
        c.execute(f"GRANT ALL ON SEQUENCE {me}_id_seq TO PUBLIC")
    return st, me


def function(pg, signature: str, language: str, body: str) -> None:
    """CREATE OR REPLACE FUNCTION <signature> RETURNS int, callable by every role."""
    with pg.admin() as c:
        c.execute(f"CREATE OR REPLACE FUNCTION {signature} RETURNS int LANGUAGE {language} "
                  f"AS $${body}$$")
        c.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC")


def n(pg, t: str, db: str = "postgres") -> int:
    return mu.count(pg, f"SELECT count(*) FROM {t}", db)


LARGE_DB = "rg_large_catalog"
SMALL_DB = "rg_small_catalog"


@pytest.fixture(scope="module")
def small_catalog(pg) -> str:
    """A database with a small catalog of its own. The tables earlier test modules leave in
    "postgres" can take its pg_class past the threshold, and the guard then counts as on a
    large catalog."""
    with pg.admin() as c:
        c.execute(f"DROP DATABASE IF EXISTS {SMALL_DB}")
        c.execute(f"CREATE DATABASE {SMALL_DB}")
    with pg.admin(SMALL_DB) as c:
        size = c.execute("SELECT pg_relation_size('pg_catalog.pg_class')").fetchone()[0]
    assert size < 160 * 1024, f"pg_class is {size} bytes in a new database: not a small catalog"
    return SMALL_DB


@pytest.fixture(scope="module")
def large_catalog(pg) -> str:
    """A database with 300 more tables: pg_class past RowGuard::kLockedCountFromCatalogBytes,
    so the guard counts the tables a transaction holds locks on, over a per-transaction
    baseline, instead of reading every table twice."""
    with pg.admin() as c:
        c.execute(f"DROP DATABASE IF EXISTS {LARGE_DB}")
        c.execute(f"CREATE DATABASE {LARGE_DB}")
    with pg.admin(LARGE_DB) as c:
        for lo in range(1, 301, 100):  # 100 per transaction: each holds a lock until it ends
            c.execute(f"DO $$BEGIN FOR i IN {lo}..{lo + 99} LOOP EXECUTE format("
                      f"'CREATE TABLE filler_%s (id int PRIMARY KEY)', i); END LOOP; END$$")
        size = c.execute("SELECT pg_relation_size('pg_catalog.pg_class')").fetchone()[0]
    assert size >= 160 * 1024, f"pg_class is only {size} bytes: the test would not reach the mode"
    return LARGE_DB


@pytest.fixture(params=["small", "large"])
def db(request) -> str:
    """The same test on a database with a small catalog and on one whose catalog is large
    enough for the guard to count only locked tables."""
    return request.getfixturevalue("small_catalog" if request.param == "small" else "large_catalog")


def guard_statements(conn) -> set[str]:
    """The count statements the guard has prepared in this session, by their suffix."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'pgmoat\\_guard\\_%'").fetchall()]
    return {"locked" if name.endswith("_locked") else "full" for name in names}


# ------------------------------------------------------------------ simple protocol, psql

def test_where_matching_every_row_is_refused(pg, moat):
    t = table(pg, "rg_all", 10000)
    r = mu.psql(moat.endpoint, f"DELETE FROM {t} WHERE id > 0")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"ERROR:  42501: pgmoat: DELETE on {t} {OVER}" in r.stderr, r.stderr
    assert f"DETAIL:  It touched 10000 rows; the limit is {LIMIT}. Rows by table: public.{t} " \
           f"10000 deleted. Nothing was changed" in r.stderr, r.stderr
    assert "pgmoat token issue" in r.stderr and "--classes delete" in r.stderr, r.stderr
    assert n(pg, t) == 10000
    # the session goes on normally afterwards
    r = mu.psql_script(moat.endpoint, f"DELETE FROM {t} WHERE id > 0;\nSELECT count(*) FROM {t};\n")
    assert r.stdout.strip().splitlines()[-1] == "10000", (r.stdout, r.stderr)


def test_cascade_is_counted_and_nothing_is_ever_visible(pg, moat):
    st, me = stations(pg, "rg_casc")
    # A statement-level trigger keeps the transaction open for a while, so that a second
    # connection looks while the DELETE has run but is not yet judged.
    with pg.admin() as c:
        c.execute("CREATE OR REPLACE FUNCTION rg_slow() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$BEGIN PERFORM pg_sleep(0.7); RETURN NULL; END$$")
        c.execute(f"CREATE TRIGGER slow AFTER DELETE ON {st} FOR EACH STATEMENT EXECUTE FUNCTION rg_slow()")
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def watch():
        with pg.admin() as c:
            while not stop.is_set():
                seen.append((c.execute(f"SELECT count(*) FROM {st}").fetchone()[0],
                             c.execute(f"SELECT count(*) FROM {me}").fetchone()[0]))
                time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    try:
        t0 = time.monotonic()
        r = mu.psql(moat.endpoint, f"""DELETE FROM {st} WHERE "ofevCode" NOT IN ('X1', 'X2')""")
        took = time.monotonic() - t0
    finally:
        stop.set()
        w.join()
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "42501" in r.stderr and OVER in r.stderr, r.stderr
    assert "It touched 20007 rows" in r.stderr, r.stderr
    assert f"public.{me} 20000 deleted, public.{st} 7 deleted" in r.stderr, r.stderr
    assert took >= 0.7, took  # the trigger ran: the statement really ran
    assert len(seen) >= 5, seen
    assert set(seen) == {(7, 20000)}, seen[:20]
    assert (n(pg, st), n(pg, me)) == (7, 20000)


def test_under_the_limit_runs_with_its_row_count(pg, moat):
    st, me = stations(pg, "rg_under")
    with pg.admin() as c:
        c.execute(f"DELETE FROM {me} WHERE id > 30")  # 30 measurements left
    r = mu.psql(moat.endpoint, f"DELETE FROM {me} WHERE station <= 2")
    assert r.returncode == 0, r.stderr
    r = mu.psql(moat.endpoint, f"DELETE FROM {st} WHERE id <= 2")
    assert r.returncode == 0, r.stderr
    r = mu.psql(moat.endpoint, f"UPDATE {me} SET value = -1 WHERE value > 0")
    assert r.returncode == 0, r.stderr
    assert n(pg, st) == 5
    assert mu.count(pg, f"SELECT count(*) FROM {me} WHERE value = -1") == n(pg, me) > 0
    # the client sees the real row count in the command tag
    with moat.endpoint.connect() as conn:
        cur = conn.execute(f"DELETE FROM {me} WHERE station = 3")
        assert cur.rowcount > 0
        assert cur.statusmessage == f"DELETE {cur.rowcount}"
        assert conn.info.transaction_status.name == "IDLE"
    assert mu.count(pg, f"SELECT count(*) FROM {me} WHERE station = 3") == 0


def test_inside_a_transaction_block(pg, moat, db):
    t = table(pg, "rg_tx", 1000, db)
    with moat.endpoint.connect(dbname=db, autocommit=False) as conn:  # not autocommit: BEGIN first
        conn.execute(f"UPDATE {t} SET v = 1 WHERE id <= 10")
        assert conn.info.transaction_status.name == "INTRANS"
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"UPDATE {t} SET v = 2 WHERE id <= 500")
        assert OVER in ei.value.diag.message_primary
        assert "It touched 500 rows" in ei.value.diag.message_detail
        assert conn.info.transaction_status.name == "INERROR"
        with pytest.raises(pgerr.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        # a block with writes under the limit commits them
        conn.execute(f"UPDATE {t} SET v = 3 WHERE id <= 50")
        conn.execute(f"DELETE FROM {t} WHERE id > 990")
        assert guard_statements(conn) == ({"full"} if db == SMALL_DB else {"full", "locked"})
        conn.commit()
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE v = 3", db) == 50
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE v IN (1, 2)", db) == 0
    assert n(pg, t, db) == 990


def test_limit_counts_per_statement_not_per_transaction(pg, moat, db):
    t = table(pg, "rg_per_stmt", 300, db)
    with moat.endpoint.connect(dbname=db, autocommit=False) as conn:
        for lo in (1, 81, 161, 241):  # 4 x 60..80 rows, 300 in the transaction
            conn.execute(f"DELETE FROM {t} WHERE id >= {lo} AND id < {lo + 80}")
        conn.commit()
    assert n(pg, t, db) == 0


def test_counts_chain_between_consecutive_statements_only(pg, moat):
    """Within a transaction the guard takes a statement's before count from the previous
    guarded statement's after count only when the client sent nothing in between: a cascade
    after a chained count is still seen. Anything in between (a SELECT; here one that calls
    a function updating 80 rows, over the simple and the extended protocol) breaks the chain;
    chained across it, the next UPDATE would be charged for the function's 80 rows too and
    refused."""
    st, _ = stations(pg, "rg_chain")
    t, other = table(pg, "rg_chain_t", 300), table(pg, "rg_chain_other", 300)
    function(pg, "rg_chain_bulk()", "sql", f"UPDATE {other} SET v = v + 1 WHERE id <= 80 RETURNING 1")
    with moat.endpoint.connect(autocommit=False) as conn:
        conn.execute(f"UPDATE {t} SET v = 1 WHERE id <= 10")
        conn.execute(f"UPDATE {t} SET v = 1 WHERE id <= 20")  # chained
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DELETE FROM {st} WHERE id = 1")  # cascades to 2,857 measurements
        assert "It touched 2858 rows" in ei.value.diag.message_detail
        conn.rollback()
        for prepare in (False, True):
            conn.execute(f"UPDATE {t} SET v = 2 WHERE id <= 60")
            conn.execute("SELECT rg_chain_bulk()", prepare=prepare)
            conn.execute(f"UPDATE {t} SET v = 3 WHERE id > 240")  # 60 rows: within the limit
            conn.commit()
    # The same over the simple protocol: psql sends each statement as its own Query.
    r = mu.psql_script(moat.endpoint, f"BEGIN;\nUPDATE {t} SET v = 4 WHERE id <= 60;\n"
                                      f"SELECT rg_chain_bulk();\nUPDATE {t} SET v = 5 WHERE id > 240;\n"
                                      f"COMMIT;\n")
    assert r.returncode == 0 and "ERROR" not in r.stderr, r.stderr
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE v = 5", "postgres") == 60
    assert mu.count(pg, f"SELECT count(*) FROM {other} WHERE v = 3", "postgres") == 80
    assert n(pg, st) == 7


def test_counters_reset_by_a_truncate_inside_the_statement_refuse(pg, moat):
    """A function the guarded statement calls TRUNCATEs a table whose counters the before
    count saw: they fall, and what the statement touched there can no longer be counted, so
    it is refused (fail closed) rather than judged on the other tables alone."""
    st, me = stations(pg, "rg_trunc")
    function(pg, "rg_trunc_zap(i int)", "plpgsql", f"BEGIN TRUNCATE {me}; RETURN i; END")
    with moat.endpoint.connect(autocommit=False) as conn:
        conn.execute(f"DELETE FROM {me} WHERE id <= 50")
        with pytest.raises(pgerr.Error) as ei:
            conn.execute(f"DELETE FROM {st} WHERE id = rg_trunc_zap(1)")
        assert ei.value.sqlstate == "58000", ei.value
        assert f"public.{me} fell during the statement" in str(ei.value), ei.value
        conn.rollback()
    assert n(pg, me) == 20000 and n(pg, st) == 7


def test_returning_under_and_over(pg, moat):
    t = table(pg, "rg_ret", 500)
    with moat.endpoint.connect() as conn:
        rows = conn.execute(f"DELETE FROM {t} WHERE id <= 40 RETURNING id").fetchall()
        assert sorted(r[0] for r in rows) == list(range(1, 41))
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DELETE FROM {t} WHERE id > 40 RETURNING id, v").fetchall()
        assert "It touched 460 rows" in ei.value.diag.message_detail
        # the connection is clean: no stray rows or results from the refused statement
        assert conn.execute("SELECT 42").fetchone() == (42,)
        assert conn.info.transaction_status.name == "IDLE"
    assert n(pg, t) == 460


def test_multi_statement_query_counts_as_a_whole(pg, moat):
    a, b = table(pg, "rg_multi_a", 60), table(pg, "rg_multi_b", 60)
    r = mu.psql(moat.endpoint, f"DELETE FROM {a} WHERE id <= 60; DELETE FROM {b} WHERE id <= 60")
    assert r.returncode == 1 and "It touched 120 rows" in r.stderr, r.stderr
    assert n(pg, a) == 60 and n(pg, b) == 60
    r = mu.psql(moat.endpoint, f"DELETE FROM {a} WHERE id <= 30; DELETE FROM {b} WHERE id <= 30; "
                               f"SELECT count(*) FROM {a}")
    assert r.returncode == 0, r.stderr
    # psql 15 prints every result of the query string: both tags reach it unchanged
    assert r.stdout.split() == ["DELETE", "30", "DELETE", "30", "30"], r.stdout
    assert n(pg, a) == 30 and n(pg, b) == 30


def test_transaction_control_in_the_same_query_string_is_refused(pg, moat):
    t = table(pg, "rg_shape", 10)
    r = mu.psql(moat.endpoint, f"BEGIN; DELETE FROM {t} WHERE id = 1; COMMIT")
    assert r.returncode == 1, r.stderr
    assert "cannot share a query string with BEGIN" in r.stderr, r.stderr
    assert n(pg, t) == 10
    # sent one by one (psql -f), the same script runs
    r = mu.psql_script(moat.endpoint, f"BEGIN;\nDELETE FROM {t} WHERE id = 1;\nCOMMIT;\n")
    assert r.returncode == 0 and "ERROR" not in r.stderr, r.stderr
    assert n(pg, t) == 9


def test_merge_and_update_are_limited(pg, moat):
    t = table(pg, "rg_merge", 300)
    src = table(pg, "rg_merge_src", 300)
    r = mu.psql(moat.endpoint, f"MERGE INTO {t} USING {src} s ON {t}.id = s.id "
                               f"WHEN MATCHED THEN UPDATE SET v = 9")
    assert r.returncode == 1 and "It touched 300 rows" in r.stderr, r.stderr
    r = mu.psql(moat.endpoint, f"MERGE INTO {t} USING (SELECT * FROM {src} WHERE id <= 5) s "
                               f"ON {t}.id = s.id WHEN MATCHED THEN UPDATE SET v = 9")
    assert r.returncode == 0, r.stderr
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE v = 9") == 5


def test_trigger_changes_count(pg, moat, db):
    t, log = table(pg, "rg_trig", 50, db), table(pg, "rg_trig_log", 200, db)
    with pg.admin(db) as c:
        c.execute(f"CREATE OR REPLACE FUNCTION rg_touch() RETURNS trigger LANGUAGE plpgsql AS "
                  f"$$BEGIN UPDATE {log} SET v = v + 1; RETURN NULL; END$$")
        c.execute(f"CREATE TRIGGER touch AFTER UPDATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION rg_touch()")
    # 1 row updated directly, 200 by the trigger
    r = mu.psql(moat.endpoint, f"UPDATE {t} SET v = 1 WHERE id = 1", dbname=db)
    assert r.returncode == 1 and "It touched 201 rows" in r.stderr, r.stderr
    assert mu.count(pg, f"SELECT count(*) FROM {log} WHERE v > 0", db) == 0


def test_large_catalog_counts_rows_left_by_earlier_transactions_once(pg, moat, large_catalog):
    """Rows an earlier transaction changed stay in the backend's counters until Postgres
    reports them (at most once a second, when idle). The guard's baseline holds them, so a
    later statement in the transaction is not charged for them."""
    db = large_catalog
    t, other = table(pg, "rgl_busy", 1000, db), table(pg, "rgl_other", 10, db)
    st, me = stations(pg, "rgl_casc", db=db)
    with pg.admin(db) as c:
        c.execute(f"CREATE OR REPLACE FUNCTION rgl_bump() RETURNS int LANGUAGE sql AS "
                  f"$$UPDATE {t} SET v = v + 1 WHERE id <= 600 RETURNING 1$$")
    with moat.endpoint.connect(dbname=db) as conn:
        # Report whatever is pending now; then 600 updates that are not reported for a second.
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT rgl_bump()")  # a function called by SELECT: not guarded
        conn.autocommit = False
        pending = conn.execute(f"SELECT pg_stat_get_xact_tuples_updated('{t}'::regclass)").fetchone()[0]
        assert pending >= 600, f"the 600 updates were already reported ({pending} pending)"
        conn.execute(f"UPDATE {other} SET v = 1 WHERE id = 1")  # the full count: the baseline
        cur = conn.execute(f"UPDATE {t} SET v = -1 WHERE id = 1000")  # locked tables only
        assert cur.rowcount == 1
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DELETE FROM {st} WHERE id <= 3")
        assert "It touched" in ei.value.diag.message_detail
        assert f"public.{me} " in ei.value.diag.message_detail
        assert f"public.{t}" not in ei.value.diag.message_detail
        conn.rollback()
        assert guard_statements(conn) == {"full", "locked"}
    assert (n(pg, st, db), n(pg, me, db)) == (7, 20000)


def test_large_catalog_rolled_back_savepoint_is_not_charged_again(pg, moat, large_catalog):
    """ROLLBACK TO SAVEPOINT releases the locks of what it undid, but the counters keep its
    rows: the guard counts every table again after transaction control."""
    db = large_catalog
    t, other = table(pg, "rgl_sp", 1000, db), table(pg, "rgl_sp_other", 10, db)
    with moat.endpoint.connect(dbname=db, autocommit=False) as conn:
        conn.execute(f"UPDATE {other} SET v = 1 WHERE id = 1")
        conn.execute("SAVEPOINT s")
        assert conn.execute(f"UPDATE {t} SET v = 1 WHERE id <= 80").rowcount == 80
        conn.execute("ROLLBACK TO SAVEPOINT s")
        assert conn.execute(f"UPDATE {t} SET v = 2 WHERE id <= 80").rowcount == 80
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"UPDATE {t} SET v = 3 WHERE id <= 101")
        assert "It touched 101 rows" in ei.value.diag.message_detail
        conn.rollback()
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE v <> 0", db) == 0


def test_large_catalog_pipeline_across_an_idle_point_counts_afresh(pg, moat, large_catalog):
    """One pipeline, sent at once: a Sync between two guarded statements lets the server go
    idle and report (zero) its counters before pgmoat has seen that ReadyForQuery. A baseline
    from before it would be too high and hide the trigger's 1000 rows; the guard counts every
    table again instead."""
    import pgwire
    db = large_catalog
    t, log = table(pg, "rgl_pipe_t", 10, db), table(pg, "rgl_pipe_log", 1000, db)
    other = table(pg, "rgl_pipe_other", 10, db)
    with pg.admin(db) as c:
        c.execute(f"CREATE OR REPLACE FUNCTION rgl_pipe_touch() RETURNS trigger LANGUAGE plpgsql AS "
                  f"$$BEGIN UPDATE {log} SET v = v + 1; RETURN NULL; END$$")
        c.execute(f"CREATE TRIGGER touch AFTER UPDATE ON {t} FOR EACH STATEMENT "
                  f"EXECUTE FUNCTION rgl_pipe_touch()")
        c.execute(f"CREATE OR REPLACE FUNCTION rgl_pipe_bump() RETURNS int LANGUAGE sql AS "
                  f"$$UPDATE {log} SET v = v + 1 RETURNING 1$$")
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres", db)
        assert pgwire.first_error(c.simple_query("SELECT pg_stat_force_next_flush()")) is None
        for _ in range(5):  # 5000 updates of the log table left in the counters
            assert pgwire.first_error(c.simple_query("SELECT count(rgl_pipe_bump())")) is None

        def run(sql: str) -> bytes:
            return _parse("", sql) + _bind("", "") + _execute("")

        c.send(run("SELECT pg_stat_force_next_flush()") +  # reported at the next idle point
               run(f"UPDATE {other} SET v = 1 WHERE id = 1") + SYNC +
               run(f"UPDATE {t} SET v = 1 WHERE id = 1") + SYNC)  # 1 row, 1000 by the trigger
        assert pgwire.first_error(c.read_until(b"Z")) is None
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err.get("C") == "42501", err
        assert "It touched 1001 rows" in err.get("D", ""), err
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE v = 1", db) == 0


# ------------------------------------------------------------------ extended protocol

def test_psycopg_pipeline(pg, moat, db):
    t = table(pg, "rg_pipe", 1000, db)
    with moat.endpoint.connect(dbname=db) as conn:
        with conn.pipeline():
            a = conn.execute(f"DELETE FROM {t} WHERE id <= %s RETURNING id", (20,))
            b = conn.execute(f"UPDATE {t} SET v = %s WHERE id > %s AND id <= %s", (7, 20, 70))
            c = conn.execute(f"SELECT count(*) FROM {t}")
        assert len(a.fetchall()) == 20
        assert b.rowcount == 50
        assert c.fetchone() == (980,)
        first = after = None
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            with conn.pipeline():
                first = conn.execute(f"UPDATE {t} SET v = 8 WHERE id = %s", (999,))
                conn.execute(f"DELETE FROM {t} WHERE id > %s", (100,))
                after = conn.execute(f"UPDATE {t} SET v = 9 WHERE id = %s", (1000,))
        assert "It touched 900 rows" in ei.value.diag.message_detail
        assert first.rowcount == 1
        assert after is not None
        assert conn.info.transaction_status.name == "IDLE"
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert n(pg, t, db) == 980
    # the same implicit transaction: the UPDATE before the refusal rolled back with it
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE v IN (8, 9)", db) == 0


def test_psycopg_prepared_statement_reused_under_the_guard(pg, moat):
    t = table(pg, "rg_prep", 400)
    with psycopg.connect(moat.endpoint.conninfo(), autocommit=True, prepare_threshold=0) as conn:
        for lo in range(1, 201, 50):
            cur = conn.execute(f"DELETE FROM {t} WHERE id >= %s AND id < %s", (lo, lo + 50))
            assert cur.rowcount == 50
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {t} WHERE id >= %s AND id < %s", (200, 401))
        assert conn.execute(f"DELETE FROM {t} WHERE id >= %s AND id < %s", (201, 211)).rowcount == 10
    assert n(pg, t) == 190


def test_node_pg(pg, moat):
    t = table(pg, "rg_node", 1000)
    got = mu.run_node("row_guard.js", moat.endpoint, extra_env={"RG_TABLE": t})
    assert got["under"] == {"rowCount": 30, "returned": 30}, got
    assert got["over"]["code"] == "42501" and "It touched 970 rows" in got["over"]["detail"], got
    assert got["after_over"] == 970, got
    assert got["tx"] == {"refused": "42501", "next": "25P02", "after_rollback": 970}, got
    assert n(pg, t) == 970


# ------------------------------------------------------------------ approval, audit, modes

def test_token_lifts_the_limit(pg, pgmoat_factory, tmp_path):
    alice = mu.Approver(mu.pgmoat_binary_path(), tmp_path / "keys", "alice")
    state = tmp_path / "state"
    state.mkdir()
    moat = start_guarded(pgmoat_factory, extra=alice.toml() + f'\n[approvals]\nstate_dir = "{state}"\n')
    t = table(pg, "rg_token", 600)
    tok = alice.issue(classes="delete", extra=("--tables", t, "--max-uses", "1"))
    with moat.endpoint.connect() as conn:
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {t} WHERE id > 200")
        conn.execute(f"SET pgmoat.approval = '{tok}'")
        assert conn.execute(f"DELETE FROM {t} WHERE id > 200").rowcount == 400
        # one use only: the limit is back
        with pytest.raises(pgerr.InsufficientPrivilege) as ei:
            conn.execute(f"DELETE FROM {t} WHERE id > 0")
        assert "It touched 200 rows" in ei.value.diag.message_detail
    assert n(pg, t) == 200


def test_audit_record_carries_the_row_count(pg, moat):
    st, me = stations(pg, "rg_audit")
    r = mu.psql(moat.endpoint, f"DELETE FROM {st} WHERE id > 0")
    assert r.returncode == 1, r.stderr
    recs = mu.wait_records(moat, lambda recs: [r for r in recs if r.get("type") == "refusal"
                                                         and r.get("decision") == "row_limit"])
    rec = recs[-1]
    assert rec["would_have_affected_rows"] == 20007, rec
    assert rec["rule"] == "test-row-limit" and "delete" in rec["classes"], rec
    assert st in rec["statement"] and rec["user"] == "postgres", rec
    assert mu.verify(moat).returncode == 0


@pytest.mark.parametrize("how", ["log_rule", "monitor_mode"])
def test_not_enforced_records_but_commits(pg, pgmoat_factory, how):
    if how == "log_rule":
        moat = start_guarded(pgmoat_factory, rule=LIMIT_RULE.replace('"require_approval"', '"log"'))
    else:
        moat = start_guarded(pgmoat_factory, policy_mode="monitor")
    t = table(pg, f"rg_{how}", 300)
    r = mu.psql(moat.endpoint, f"DELETE FROM {t} WHERE id > 0")
    assert r.returncode == 0, r.stderr
    assert n(pg, t) == 0
    recs = mu.wait_records(moat, lambda recs: [r for r in recs if r.get("type") == "would_refuse"
                                                         and r.get("would_have_affected_rows") == 300])
    assert recs[-1]["rule"] == "test-row-limit"


def test_default_config_limits_untrusted_clients(pg, pgmoat_factory):
    moat = mu.start(pgmoat_factory)  # the shipped rules only
    t = table(pg, "rg_default", 5000)
    r = mu.psql(moat.endpoint, f"UPDATE {t} SET v = 1 WHERE id > 0")
    assert r.returncode == 1 and "42501" in r.stderr and "It touched 5000 rows" in r.stderr, r.stderr
    r = mu.psql(moat.endpoint, f"UPDATE {t} SET v = 1 WHERE id <= 500")
    assert r.returncode == 0, r.stderr
    assert mu.count(pg, f"SELECT count(*) FROM {t} WHERE v = 1") == 500


# ------------------------------------------------------------------ raw protocol edge cases

from pgwire import SYNC  # noqa: E402
from pgwire import bind as _bind  # noqa: E402
from pgwire import close as _close  # noqa: E402
from pgwire import execute as _execute  # noqa: E402
from pgwire import parse as _parse  # noqa: E402


def test_reparsing_the_unnamed_statement_does_not_unguard_a_bound_portal(pg, moat):
    """Bind the unnamed portal to a DELETE, then Parse the unnamed statement again as a
    SELECT before executing the portal: the portal still runs the DELETE, and is guarded."""
    import pgwire
    t = table(pg, "rg_rebind", 500)
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        c.send(_parse("", f"DELETE FROM {t} WHERE id > 0") + _bind("", "") +
               _parse("", "SELECT 1") + _execute("") + SYNC)
        msgs = c.read_until(b"Z")
        err = pgwire.first_error(msgs)
        assert err is not None and err.get("C") == "42501", msgs
        assert "It touched 500 rows" in err.get("D", ""), err
    assert n(pg, t) == 500


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_rejected_reparse_of_a_named_statement_keeps_its_limit(pg, moat, pipelined):
    """Pipelined, the Execute reaches pgmoat before Postgres's answer to the Parse: pgmoat
    waits for it, then guards what the server kept."""
    import pgwire
    t = table(pg, f"rg_named_{int(pipelined)}", 500)
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        c.send(_parse("s", f"DELETE FROM {t} WHERE id > 0") + SYNC)
        assert pgwire.first_error(c.read_until(b"Z")) is None
        # Postgres refuses this Parse (42P05): "s" is still the DELETE
        later = _bind("p", "s") + _execute("p") + SYNC
        c.send(_parse("s", "SELECT 1") + SYNC + (later if pipelined else b""))
        assert pgwire.first_error(c.read_until(b"Z")).get("C") == "42P05"
        if not pipelined:
            c.send(later)
        err = pgwire.first_error(c.read_until(b"Z"))
        assert err is not None and err.get("C") == "42501", err
    assert n(pg, t) == 500


def test_simple_query_after_unsynced_extended_messages(pg, moat):
    """Parse/Bind/Execute without Sync, then a guarded simple Query: pgmoat asks the server
    to flush rather than wait for answers that would never come."""
    import pgwire
    t = table(pg, "rg_unsynced", 50)
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port, timeout=10) as c:
        c.startup("postgres")
        c.send(_parse("", "SELECT 7") + _bind("", "") + _execute(""))
        c.send(pgwire.query(f"DELETE FROM {t} WHERE id <= 5"))
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None, msgs
        assert [m for m in msgs if m[0] == b"C"][-1][1].startswith(b"DELETE 5"), msgs
    assert n(pg, t) == 45


# Answers like the guard's count, but with no table rows: every statement would count zero.
FAKE_COUNT = ("SELECT 'on', EXTRACT(epoch FROM now())::text, 0::int8, NULL::int8")


@pytest.mark.parametrize("how", ["sql", "protocol"])
def test_the_guard_count_statement_cannot_be_replaced(pg, moat, how):
    """The count statement's name shows in pg_prepared_statements. A client that closes it
    and prepares a same-named statement answering zeros would hide cascaded rows: pgmoat
    refuses every Close, Parse, PREPARE, EXECUTE and DEALLOCATE of its reserved names (42939),
    and the guard still counts the cascade."""
    import pgwire
    st, me = stations(pg, f"rg_fake_{how}")
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        assert pgwire.first_error(c.simple_query(f"DELETE FROM {st} WHERE id = -1")) is None
        rows = pgwire.data_rows(c.simple_query(
            "SELECT name FROM pg_prepared_statements WHERE name LIKE 'pgmoat%'"))
        assert len(rows) == 1, rows
        name = rows[0][0]
        if how == "sql":
            attempts = [c.simple_query(f"DEALLOCATE {name}"),
                        c.simple_query(f"PREPARE {name} AS {FAKE_COUNT}"),
                        c.simple_query(f"EXECUTE {name}")]
        else:
            c.send(_close("S", name) + SYNC)
            attempts = [c.read_until(b"Z")]
            c.send(_parse(name, FAKE_COUNT) + SYNC)
            attempts.append(c.read_until(b"Z"))
        errors = [pgwire.first_error(a) for a in attempts]
        err = pgwire.first_error(c.simple_query(f"DELETE FROM {st} WHERE id <= 7"))
        assert err is not None and err.get("C") == "42501", (err, errors)
        assert "It touched 20007 rows" in err.get("D", ""), err
        for e in errors:
            assert e is not None and e.get("C") == "42939", errors
            assert "reserved" in e.get("M", ""), e
        # the statement is still the guard's own
        rows = pgwire.data_rows(c.simple_query(
            f"SELECT statement FROM pg_prepared_statements WHERE name = '{name}'"))
        assert rows and "pg_stat_get_xact_tuples_deleted" in rows[0][0], rows
    assert (n(pg, st), n(pg, me)) == (7, 20000)


def test_an_unparsed_text_naming_a_guard_statement_is_refused(pg, pgmoat_factory):
    """With on_parse_error = "allow", texts libpg_query cannot read go to Postgres unjudged;
    one that names the guard's reserved prefix is refused instead (pgmoat cannot tell what it
    does to that statement)."""
    import pgwire
    moat = start_guarded(pgmoat_factory, policy={"on_parse_error": "allow"})
    with pgwire.RawConn(moat.endpoint.host, moat.endpoint.port) as c:
        c.startup("postgres")
        # allowed unparsed: Postgres answers with its own syntax error
        err = pgwire.first_error(c.simple_query("PREPARE other_1 AS SELEC 1"))
        assert err is not None and err.get("C") == "42601", err
        err = pgwire.first_error(c.simple_query("PREPARE PGMOAT_GUARD_1 AS SELEC 1"))
        assert err is not None and err.get("C") == "42939", err
