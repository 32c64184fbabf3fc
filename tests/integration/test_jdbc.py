"""pgJDBC through the target: compiles jdbc/PgmoatJdbc.java at test time and compares its
output with a direct run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import HERE, PASSWORDS
from itutil import tool

JAR = Path(os.environ.get("PGMOAT_JDBC_JAR", "/usr/share/java/postgresql.jar"))


@pytest.fixture(scope="module")
def jdbc_classes(tmp_path_factory):
    javac = tool("javac")
    tool("java")
    if not JAR.exists():
        pytest.skip(f"{JAR} missing: install libpostgresql-jdbc-java (scripts/install-deps.sh)")
    out = tmp_path_factory.mktemp("jdbc")
    r = subprocess.run([javac, "-encoding", "UTF-8", "-cp", str(JAR), "-d", str(out),
                        str(HERE / "jdbc" / "PgmoatJdbc.java")], capture_output=True, text=True,
                       timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"javac failed:\n{r.stderr}"
    return out


def run_jdbc(classes: Path, endpoint, user: str = "md5_user") -> list[str]:
    url = f"jdbc:postgresql://{endpoint.host}:{endpoint.port}/postgres?sslmode=disable"
    r = subprocess.run([tool("java"), "-Dfile.encoding=UTF-8", "-cp", f"{classes}:{JAR}", "PgmoatJdbc",
                        url, user, PASSWORDS[user]], capture_output=True, text=True, timeout=180,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"JDBC program on {endpoint.name} failed:\n{r.stderr[-4000:]}\n{r.stdout[-2000:]}"
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == "OK", r.stdout
    return lines


def test_jdbc(jdbc_classes, target, direct):
    got = run_jdbc(jdbc_classes, target)
    d = dict(l.split("=", 1) for l in got[:-1])
    assert d["batch"] == "5000/124975.00"
    assert d["fetch"].startswith("20000/200010000/")
    assert d["rollback"] == "90002,90003/23505/22012/25P02"
    assert got == run_jdbc(jdbc_classes, direct)
