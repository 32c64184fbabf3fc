"""pgbench through the target: initialisation and the TPC-B-like run in every query mode."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from itutil import tool

CLIENTS, TXNS = 4, 200


def pgbench(endpoint, args: list[str], dbname: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([tool("pgbench"), *args], env=endpoint.env(dbname=dbname), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def fresh_db(pg, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with pg.admin() as c:
        c.execute(f"CREATE DATABASE {name}")
    return name


def balances(pg, db: str) -> tuple[int, int, int, int, int]:
    with pg.admin(db) as c:
        return c.execute(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM pgbench_branches),"
            " (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT sum(delta) FROM pgbench_history),"
            " (SELECT count(*) FROM pgbench_history)").fetchone()


def test_pgbench_init(target, pg):
    db = fresh_db(pg, f"bench_init_{target.name}")
    r = pgbench(target, ["-i", "-s", "1", "-q", "-I", "dtgvp"], db)
    assert r.returncode == 0, f"pgbench -i through {target.name} failed:\n{r.stderr[-3000:]}"
    assert "done in" in r.stderr, r.stderr
    with pg.admin(db) as c:
        n = c.execute("SELECT count(*) FROM pgbench_accounts").fetchone()[0]
        pk = c.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'pgbench_accounts_pkey'").fetchone()[0]
    assert n == 100000
    assert pk == 1


_inited: dict[str, str] = {}


@pytest.fixture
def bench_db(pg, target):
    """A database initialised by pgbench -i straight against Postgres (once per target), so
    the run tests do not depend on the init path through the proxy."""
    if target.name not in _inited:
        db = fresh_db(pg, f"bench_run_{target.name}")
        r = pgbench(pg.endpoint, ["-i", "-s", "1", "-q"], db)
        assert r.returncode == 0, r.stderr
        _inited[target.name] = db
    return _inited[target.name]


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_run(target, pg, bench_db, mode):
    before = balances(pg, bench_db)
    r = pgbench(target, ["-n", "-M", mode, "-c", str(CLIENTS), "-j", "2", "-t", str(TXNS)], bench_db)
    assert r.returncode == 0, f"pgbench -M {mode} through {target.name} exited {r.returncode}:\n{r.stderr[-3000:]}\n{r.stdout[-2000:]}"
    out = r.stdout
    assert f"query mode: {mode}" in out
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    assert m and m.group(1) == m.group(2) == str(CLIENTS * TXNS), out
    m = re.search(r"number of failed transactions: (\d+)", out)
    assert m and m.group(1) == "0", out
    assert "ERROR" not in r.stderr, r.stderr
    a, b, t, h, n = balances(pg, bench_db)
    # TPC-B invariant: every transaction adds the same delta to account, teller, branch and history
    assert a == b == t == h, (a, b, t, h)
    assert n - before[4] == CLIENTS * TXNS
