"""psql through the target gives the same output as psql straight to Postgres."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import subprocess
import time
import uuid

import pytest

from itutil import normalise, run_psql, tool

PSQL_FLAGS = ["-v", "ON_ERROR_STOP=0", "-P", "pager=off", "-A", "-F", "|"]


def run_script(endpoint, script: str, tmp_path, name: str, **kw) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.sql"
    path.write_text(script)
    return run_psql(endpoint, [*PSQL_FLAGS, "-f", str(path)], **kw)


def same_as_direct(target, direct, script: str, tmp_path, name: str, **kw):
    got = run_script(target, script, tmp_path, f"{name}-{target.name}", **kw)
    ref = run_script(direct, script, tmp_path, f"{name}-direct-ref", **kw)
    # the script file name appears in psql's error prefixes: make them equal
    g_err = got.stderr.replace(f"{name}-{target.name}.sql", "S.sql")
    r_err = ref.stderr.replace(f"{name}-direct-ref.sql", "S.sql")
    assert normalise(got.stdout) == normalise(ref.stdout), "stdout differs from direct Postgres"
    assert normalise(g_err) == normalise(r_err), "stderr (errors/notices) differs from direct Postgres"
    assert got.returncode == ref.returncode
    return got


SIMPLE = r"""
SELECT 1 AS one, 'two'::text AS two, NULL::int AS nothing, 3.50::numeric AS num;
SELECT g, g * g AS sq FROM generate_series(1, 5) g ORDER BY g;
SELECT '{"a": [1, 2]}'::jsonb -> 'a' AS j, E'tab\there' AS t, 'ünïcødé ✓' AS u;
SELECT '\x00ff'::bytea AS b, ARRAY[1, NULL, 3] AS arr, '2024-02-29'::date + 1 AS d;
VALUES (1, 'a'), (2, 'b');
SELECT current_user AS cu, session_user AS su, current_database() AS db;
SELECT count(*) AS big FROM generate_series(1, 100000);
\echo done
"""


def test_simple_queries(target, direct, tmp_path):
    r = same_as_direct(target, direct, SIMPLE, tmp_path, "simple")
    out = r.stdout
    assert "one|two|nothing|num\n1|two||3.50\n" in out
    assert "5|25\n" in out
    assert "ünïcødé ✓" in out
    assert "\\x00ff|{1,NULL,3}|2024-03-01" in out
    assert "postgres|postgres|postgres" in out
    assert "big\n100000\n" in out
    assert out.rstrip().endswith("done")
    assert r.stderr == ""


MULTI = r"""
CREATE TEMP TABLE mt(x int);
SELECT 1 AS a \; SELECT 2 AS b \; SELECT 3 AS c;
INSERT INTO mt VALUES (1) \; INSERT INTO mt VALUES (2) \; SELECT 1/0;
SELECT count(*) AS after_failed_multi FROM mt;
INSERT INTO mt VALUES (3) \; INSERT INTO mt VALUES (4) \; SELECT count(*) AS inside FROM mt;
SELECT count(*) AS after_ok_multi FROM mt;
SELECT 10 AS x \; SELECT no_such_column \; SELECT 30 AS never;
"""


def test_multi_statement(target, direct, tmp_path):
    r = same_as_direct(target, direct, MULTI, tmp_path, "multi")
    out = r.stdout
    # psql 15 shows every result of a multi-statement Query
    assert "a\n1\n" in out and "b\n2\n" in out and "c\n3\n" in out
    # an error in an implicit transaction rolls back the earlier statements of that Query
    assert "after_failed_multi\n0\n" in out
    assert "inside\n2\n" in out and "after_ok_multi\n2\n" in out
    assert "never" not in out
    assert "division by zero" in r.stderr
    assert 'column "no_such_column" does not exist' in r.stderr


ERRORS = r"""
\set VERBOSITY verbose
SELECT 1/0;
\echo state=:LAST_ERROR_SQLSTATE
SELECT * FROM no_such_table_xyz;
\echo state=:LAST_ERROR_SQLSTATE
SELECT 'abc'::int;
CREATE TEMP TABLE IF NOT EXISTS n1(x int);
CREATE TEMP TABLE IF NOT EXISTS n1(x int);
ROLLBACK;
CREATE FUNCTION pg_temp.say(t text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'say: %', t;
  RAISE WARNING 'warn: %', t USING DETAIL = 'some detail', HINT = 'some hint';
  RETURN length(t);
END $$;
SELECT pg_temp.say('hello');
CREATE FUNCTION pg_temp.boom() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'boom %', 42 USING ERRCODE = 'P0042', DETAIL = 'the detail', HINT = 'the hint';
END $$;
SELECT pg_temp.boom();
\echo state=:LAST_ERROR_SQLSTATE
SELECT 'still alive' AS ok;
"""


def test_errors_and_notices(target, direct, tmp_path):
    r = same_as_direct(target, direct, ERRORS, tmp_path, "errors")
    out, err = r.stdout, r.stderr
    assert "state=22012" in out and "state=42P01" in out and "state=P0042" in out
    assert "ERROR:  22012: division by zero" in err
    assert 'ERROR:  22P02: invalid input syntax for type integer: "abc"' in err
    assert 'NOTICE:  42P07: relation "n1" already exists, skipping' in err
    assert "WARNING:  25P01: there is no transaction in progress" in err
    assert "NOTICE:  00000: say: hello" in err
    assert "WARNING:  01000: warn: hello\nDETAIL:  some detail\nHINT:  some hint" in err
    assert "ERROR:  P0042: boom 42\nDETAIL:  the detail\nHINT:  the hint" in err
    assert "say\n5\n" in out
    assert "ok\nstill alive\n(1 row)" in out


TXN = r"""
BEGIN;
SELECT 1 AS in_tx;
SELECT 1/0;
SELECT 2 AS ignored;
\echo aborted=:LAST_ERROR_SQLSTATE
COMMIT;
CREATE TEMP TABLE tx(x int);
BEGIN;
INSERT INTO tx VALUES (1);
SAVEPOINT s1;
INSERT INTO tx VALUES (2);
SELECT 1/0;
ROLLBACK TO SAVEPOINT s1;
INSERT INTO tx VALUES (3);
RELEASE SAVEPOINT s1;
COMMIT;
SELECT string_agg(x::text, ',' ORDER BY x) AS rows_after_savepoint FROM tx;
BEGIN;
BEGIN;
COMMIT;
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY;
SHOW transaction_isolation;
SHOW transaction_read_only;
CREATE TABLE pgmoat_it_readonly_check(x int);
\echo readonly=:LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
INSERT INTO tx VALUES (5);
ROLLBACK;
SELECT count(*) AS final_count FROM tx;
"""


def test_transaction_states(target, direct, tmp_path):
    r = same_as_direct(target, direct, TXN, tmp_path, "txn")
    out, err = r.stdout, r.stderr
    assert "aborted=25P02" in out
    assert "current transaction is aborted, commands ignored until end of transaction block" in err
    # COMMIT of an aborted transaction reports ROLLBACK
    assert re.search(r"^ROLLBACK$", out, re.M)
    assert "rows_after_savepoint\n1,3\n" in out
    assert "WARNING:  there is already a transaction in progress" in err
    assert "WARNING:  there is no transaction in progress" in err
    assert "transaction_isolation\nserializable\n" in out
    assert "transaction_read_only\non\n" in out
    assert "readonly=25006" in out
    assert "final_count\n2\n" in out


COPY_ROWS = 1_050_000  # ~100 bytes a row -> ~105 MB of COPY text

COPY_SCRIPT = r"""
\set ON_ERROR_STOP 1
CREATE TEMP TABLE src AS
  SELECT g AS id, md5(g::text) || repeat('x', 60) AS payload FROM generate_series(1, {rows}) g;
\copy (SELECT * FROM src ORDER BY id) TO '{out}'
CREATE TEMP TABLE dst (LIKE src);
\copy dst FROM '{inp}'
SELECT 'src' AS t, count(*) AS n, md5(string_agg(md5(id::text || payload), '' ORDER BY id)) AS h FROM src
UNION ALL
SELECT 'dst', count(*), md5(string_agg(md5(id::text || payload), '' ORDER BY id)) FROM dst;
"""


def _copy_roundtrip(endpoint, tmp_path, tag: str):
    out = tmp_path / f"copy-out-{tag}.tsv"
    script = COPY_SCRIPT.format(rows=COPY_ROWS, out=out, inp=out)
    r = run_script(endpoint, script, tmp_path, f"copy-{tag}", timeout=300)
    assert r.returncode == 0, f"psql copy on {endpoint.name} failed:\n{r.stderr[-3000:]}"
    lines = [l for l in r.stdout.splitlines() if l.startswith(("src|", "dst|"))]
    assert len(lines) == 2, r.stdout
    res = {l.split("|")[0]: l.split("|")[1:] for l in lines}
    h = hashlib.md5()
    size = 0
    with open(out, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    out.unlink()
    return res, size, h.hexdigest(), r


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_copy_100mb_both_ways(target, direct, tmp_path):
    res, size, file_md5, r = _copy_roundtrip(target, tmp_path, target.name)
    assert size >= 100 * 1024 * 1024, f"exported only {size} bytes"
    assert res["src"][0] == str(COPY_ROWS)
    assert res["dst"] == res["src"], f"COPY IN did not reproduce the table: {res}"
    assert "COPY %d" % COPY_ROWS in r.stdout.replace("\n", " ") or r.stdout.count(f"COPY {COPY_ROWS}") == 2
    if target.name != "direct":
        ref, ref_size, ref_md5, _ = _copy_roundtrip(direct, tmp_path, "direct-ref")
        assert (size, file_md5) == (ref_size, ref_md5), "COPY OUT bytes differ from direct"
        assert res == ref


def test_pg_dump_matches_direct(target, direct):
    """pg_dump (catalog queries, a REPEATABLE READ snapshot, COPY TO STDOUT) through the
    target writes the same dump as straight to Postgres."""
    t = f"dump_{uuid.uuid4().hex[:8]}"
    run_psql(direct, ["-v", "ON_ERROR_STOP=1", "-c",
                      f"CREATE TABLE {t} (id int PRIMARY KEY, t text, b bytea); "
                      f"INSERT INTO {t} SELECT g, 'row ' || g || E'\\t✓', "
                      f"decode(md5(g::text), 'hex') FROM generate_series(1, 30000) g"],
             check_rc=0)
    try:
        def dump(endpoint) -> str:
            r = subprocess.run([tool("pg_dump"), "-t", t], env=endpoint.env(user="postgres"),
                               capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
            assert r.returncode == 0, (endpoint.name, r.stderr[-3000:])
            # pg_dump 15.14+ brackets the dump with a random \restrict key
            return re.sub(r"^\\(un)?restrict \S+$", "", r.stdout, flags=re.M)
        got, ref = dump(target), dump(direct)
        assert "COPY public." in got and got.count("\n") > 30000, got[:2000]
        assert got == ref, "pg_dump output differs from direct Postgres"
    finally:
        run_psql(direct, ["-c", f"DROP TABLE IF EXISTS {t}"])


class PtyPsql:
    """psql reading commands from a pipe and writing to a pty (so its output is line
    buffered and can be read as it happens)."""

    def __init__(self, endpoint, app: str):
        self.master, slave = pty.openpty()
        env = endpoint.env(PGAPPNAME=app)
        self.proc = subprocess.Popen([tool("psql"), "-X", "-P", "pager=off"], stdin=subprocess.PIPE,
                                     stdout=slave, stderr=slave, env=env, text=True)
        os.close(slave)
        self.out = ""

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read_until(self, pattern: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"psql output never matched {pattern!r}:\n{self.out}")
            r, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
            if r:
                try:
                    self.out += os.read(self.master, 65536).decode(errors="replace").replace("\r\n", "\n")
                except OSError:
                    pass
        return self.out

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.mark.parametrize("route", ["both-target", "listen-target", "notify-target"])
def test_listen_notify(target, direct, route):
    listen_ep = direct if route == "notify-target" else target
    notify_ep = direct if route == "listen-target" else target
    chan = "pgmoat_it_" + uuid.uuid4().hex[:8]
    listener = PtyPsql(listen_ep, app=chan)
    try:
        listener.send(f"LISTEN {chan};")
        listener.read_until(r"(?m)^LISTEN$")
        r = run_psql(notify_ep, ["-c", f"NOTIFY {chan}, 'payload ✓ 1'",
                                 "-c", f"SELECT pg_notify('{chan}', 'payload 2')"], check_rc=0)
        assert "NOTIFY" in r.stdout
        # the notification arrives asynchronously: poke psql until it reports both
        deadline = time.monotonic() + 10
        pat = (rf'Asynchronous notification "{chan}" with payload "payload ✓ 1" received'
               rf'(?s:.*)Asynchronous notification "{chan}" with payload "payload 2" received')
        while not re.search(pat, listener.out):
            assert time.monotonic() < deadline, f"notifications never arrived:\n{listener.out}"
            listener.send("SELECT 'poke' AS poke;")
            try:
                listener.read_until(pat, timeout=0.5)
            except AssertionError:
                pass
        listener.send(f"UNLISTEN {chan};")
        listener.read_until(r"(?m)^UNLISTEN$")
    finally:
        listener.close()
    assert listener.proc.returncode == 0


@pytest.mark.parametrize("user", ["md5_user", "scram_user"])
def test_database_url(target, user):
    """The way applications use pgmoat: a postgresql:// URL with the password in it."""
    url = target.url(user=user, sslmode="disable", application_name="url-test")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    r = subprocess.run([tool("psql"), "-X", "-A", "-t", url, "-c",
                        "SELECT current_user || '/' || current_setting('application_name')"],
                       env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{user}/url-test"
