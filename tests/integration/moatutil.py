"""Helpers for the refusal / audit / approval integration tests (test_refusal.py,
test_audit.py, test_approval.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import HERE, REPO, poll
from itutil import tool

DEFAULT_CONFIG = REPO / "config" / "pgmoat.toml"


def default_rules() -> str:
    """The [[rules]] of the shipped config/pgmoat.toml (the factory writes no rules of its
    own), so the tests judge the policy users actually get."""
    text = DEFAULT_CONFIG.read_text()
    i = text.find("\n[[rules]]")
    assert i >= 0, f"no [[rules]] in {DEFAULT_CONFIG}"
    return text[i + 1:]


def start(pgmoat_factory, extra_toml: str = "", rules: bool = True, **kw):
    """A pgmoat with the default policy's rules plus extra_toml."""
    toml = (default_rules() + "\n" if rules else "") + extra_toml
    # conftest's readiness probe connects and closes without a startup packet; some pgmoat
    # builds kept such a connection as a session until login_timeout, so SIGTERM at teardown
    # waited for it. A short login_timeout keeps teardown fast either way.
    kw.setdefault("limits", {"login_timeout": "2s"})
    # these tests assert enforcement; PGMOAT_IT_POLICY_MODE is for the compatibility suite
    kw.setdefault("policy_mode", "enforce")
    return pgmoat_factory(extra_toml=toml, **kw)


def fresh_db(pg, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with pg.admin() as c:
        c.execute(f"CREATE DATABASE {name}")
    return name


def count(pg, sql: str, db: str = "postgres") -> int:
    with pg.admin(db) as c:
        return c.execute(sql).fetchone()[0]


# ------------------------------------------------------------------ pgmoat CLI

def cli(moat_bin, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(moat_bin), *args], capture_output=True, text=True, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def verify(p, *extra: str) -> subprocess.CompletedProcess:
    return cli(p.binary, "audit", "verify", "--config", str(p.config_path), *extra)


def search(p, *filters: str, fmt: str = "table") -> subprocess.CompletedProcess:
    r = cli(p.binary, "audit", "search", "--config", str(p.config_path), *filters, "--format", fmt)
    assert r.returncode == 0, f"audit search {filters} exited {r.returncode}:\n{r.stderr}\n{r.stdout}"
    return r


def search_jsonl(p, *filters: str) -> list[dict]:
    out = search(p, *filters, fmt="jsonl").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# ------------------------------------------------------------------ audit trail

def audit_records(path: Path) -> list[dict]:
    """Every complete record of one audit file (a torn last line is skipped)."""
    if not Path(path).exists():
        return []
    recs = []
    data = Path(path).read_bytes()
    for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")[:-1]:
        if line.strip():
            recs.append(json.loads(line))
    return recs


def wait_records(p, pred, timeout: float = 10, what: str = "audit records"):
    """Poll the audit file until pred(records) is truthy; returns its value."""
    return poll(lambda: pred(audit_records(p.audit_path)), timeout, what=what)


def records_for(p, *, type: str | None = None, statement_re: str | None = None,
                **fields) -> list[dict]:
    out = []
    for r in audit_records(p.audit_path):
        if type is not None and r.get("type") != type:
            continue
        if statement_re is not None and not re.search(statement_re, r.get("statement", "")):
            continue
        if any(r.get(k) != v for k, v in fields.items()):
            continue
        out.append(r)
    return out


# ------------------------------------------------------------------ approval tokens

class Approver:
    """An approver key pair made with `pgmoat token keygen`, and a helper to issue tokens."""

    def __init__(self, moat_bin, dirpath: Path, name: str = "alice"):
        self.bin = moat_bin
        self.dir = Path(dirpath)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        r = cli(moat_bin, "token", "keygen", "--name", name, "--out", str(self.dir))
        assert r.returncode == 0, f"token keygen failed:\n{r.stderr}\n{r.stdout}"
        self.key = self.dir / f"{name}.key"
        self.pub = self.dir / f"{name}.pub"
        assert self.key.exists() and self.pub.exists(), list(self.dir.iterdir())

    def issue(self, *, database: str = "postgres", user: str | None = "postgres",
              classes: str = "drop", reason: str = "integration test", extra: tuple = ()) -> str:
        args = ["token", "issue", "--key", str(self.key), "--database", database,
                "--classes", classes, "--reason", reason]
        args += ["--user", user] if user is not None else ["--any-user"]
        r = cli(self.bin, *args, *extra)
        assert r.returncode == 0, f"token issue {extra} failed:\n{r.stderr}\n{r.stdout}"
        tok = r.stdout.strip()
        assert tok and "\n" not in tok, r.stdout
        return tok

    def issue_result(self, *args: str) -> subprocess.CompletedProcess:
        return cli(self.bin, "token", "issue", "--key", str(self.key), *args)

    def toml(self) -> str:
        return f'[[approvers]]\nname = "{self.name}"\npublic_key = "{self.pub}"\n'


def token_id(moat_bin, token: str) -> str:
    r = cli(moat_bin, "token", "inspect", "-", input=token + "\n")
    m = re.search(r"^\s*(?:id|token id|token)\s*:\s*(\S+)", r.stdout, re.M | re.I)
    assert m, f"no id in token inspect output (rc {r.returncode}):\n{r.stdout}\n{r.stderr}"
    return m.group(1)


# ------------------------------------------------------------------ clients

def psql(endpoint, sql: str, *, dbname: str = "postgres", user: str = "postgres",
         extra_env: dict | None = None, args: tuple = (), timeout: float = 60) -> subprocess.CompletedProcess:
    """psql -X -v VERBOSITY=verbose -c SQL (ON_ERROR_STOP off: every -c runs as one Query)."""
    env = endpoint.env(user=user, dbname=dbname, **(extra_env or {}))
    return subprocess.run([tool("psql"), "-X", "-At", "-v", "VERBOSITY=verbose", *args, "-c", sql],
                          env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def psql_script(endpoint, script: str, *, dbname: str = "postgres", user: str = "postgres",
                extra_env: dict | None = None, args: tuple = (), timeout: float = 60
                ) -> subprocess.CompletedProcess:
    """psql -X -At -v VERBOSITY=verbose -f - (statements sent one by one, errors do not stop)."""
    env = endpoint.env(user=user, dbname=dbname, **(extra_env or {}))
    return subprocess.run([tool("psql"), "-X", "-At", "-v", "VERBOSITY=verbose", *args, "-f", "-"],
                          env=env, input=script, capture_output=True, text=True, timeout=timeout)


NODE_DIR = HERE / "node"


def run_node(script: str, endpoint, *, user: str = "postgres", dbname: str = "postgres",
             extra_env: dict | None = None) -> dict:
    node = tool("node")
    if not (NODE_DIR / "node_modules" / "pg").is_dir():
        pytest.skip(f"node 'pg' module not installed in {NODE_DIR}: run scripts/install-deps.sh "
                    "(npm ci there)")
    env = endpoint.env(user=user, dbname=dbname, **(extra_env or {}))
    r = subprocess.run([node, str(NODE_DIR / script)], cwd=NODE_DIR, env=env, capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"node {script} failed:\n{r.stderr[-4000:]}\n{r.stdout[-2000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def pid_of(p) -> int:
    assert p.proc is not None
    return p.proc.pid


def prlimit_fsize(pid: int, limit: str) -> None:
    # soft limit only ("N:"): lowering the hard limit could not be undone without
    # CAP_SYS_RESOURCE
    r = subprocess.run([tool("prlimit"), "--pid", str(pid), f"--fsize={limit}:"], capture_output=True,
                       text=True)
    assert r.returncode == 0, f"prlimit failed: {r.stderr}"


def env_without_pg() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def pgmoat_binary_path():
    from conftest import pgmoat_binary
    return pgmoat_binary()
