"""Fixtures for the pgmoat integration suite.

* `pg` (session): a real PostgreSQL 15 cluster in a temp dir, run as the unprivileged
  `postgres` user when the suite runs as root, with users for each auth method, TLS on,
  and log_statement = 'all' (log file at `pg.log_path`).
* `pgmoat_factory` (function): start `pgmoat serve --config FILE` with a generated config;
  every instance is SIGTERMed at teardown and must exit 0 without a sanitizer report.
* `pgmoat_shared` (module): one default pgmoat in front of `pg` for the compatibility tests.
* `target` (function, parametrised over PGMOAT_TARGETS, default "direct,pgmoat"): an
  Endpoint to talk to, either Postgres itself or pgmoat in front of it.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PG_BIN = Path(os.environ.get("PGMOAT_PG_BIN", "/usr/lib/postgresql/15/bin"))
PGMOAT_BIN = Path(os.environ.get("PGMOAT_BIN", str(REPO / "build" / "pgmoat")))
TARGETS = [t.strip() for t in os.environ.get("PGMOAT_TARGETS", "direct,pgmoat").split(",") if t.strip()]
POLICY_MODE = os.environ.get("PGMOAT_IT_POLICY_MODE", "enforce")
KEEP_TMP = os.environ.get("PGMOAT_IT_KEEP", "") == "1"

PASSWORDS = {
    "md5_user": "md5-secret-1",
    "scram_user": "scram-secret-2",
    "plain_user": "plain-secret-3",
    "trust_user": None,
    "postgres": None,
}

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "runtime error:", "ThreadSanitizer")


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


_raise_nofile()  # inherited by pgmoat and client tools started from here


def nofile_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"'{name}' not found on PATH: run scripts/install-deps.sh as root")
    return path


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def poll(pred, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Call pred() until it returns a truthy value; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last value {last!r})")


# ---------------------------------------------------------------------------- endpoints

@dataclass
class Endpoint:
    """Somewhere a client can connect: Postgres directly or pgmoat."""

    name: str
    host: str
    port: int
    ca_file: str | None = None  # CA that signs the certificate this endpoint presents, if any

    def conninfo(self, user: str = "postgres", dbname: str = "postgres", password: str | None = None,
                 **kw) -> str:
        if password is None:
            password = PASSWORDS.get(user)
        parts = {"host": self.host, "port": str(self.port), "user": user, "dbname": dbname,
                 "connect_timeout": "10", "application_name": "pgmoat-it"}
        if password is not None:
            parts["password"] = password
        parts.update({k: str(v) for k, v in kw.items()})

        def q(v: str) -> str:
            return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"

        return " ".join(f"{k}={q(v)}" for k, v in parts.items())

    def url(self, user: str = "postgres", dbname: str = "postgres", password: str | None = None,
            **params) -> str:
        if password is None:
            password = PASSWORDS.get(user)
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        qs = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}" + (f"?{qs}" if qs else "")

    def env(self, user: str = "postgres", dbname: str = "postgres", **extra: str) -> dict[str, str]:
        """Environment for libpq tools (psql, pgbench)."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        e.update(PGHOST=self.host, PGPORT=str(self.port), PGUSER=user, PGDATABASE=dbname,
                 PGCONNECT_TIMEOUT="10", PGAPPNAME="pgmoat-it")
        pw = PASSWORDS.get(user)
        if pw is not None:
            e["PGPASSWORD"] = pw
        e.update(extra)
        return e

    def connect(self, user: str = "postgres", dbname: str = "postgres", autocommit: bool = True, **kw):
        import psycopg
        return psycopg.connect(self.conninfo(user=user, dbname=dbname, **kw), autocommit=autocommit)


# ---------------------------------------------------------------------------- postgres

def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", subprocess.DEVNULL)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def make_ca(dirpath: Path, name: str) -> tuple[Path, Path]:
    key, crt = dirpath / f"{name}.key", dirpath / f"{name}.crt"
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(crt),
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return key, crt


def make_leaf(dirpath: Path, name: str, ca_key: Path, ca_crt: Path) -> tuple[Path, Path]:
    key, csr, crt = dirpath / f"{name}.key", dirpath / f"{name}.csr", dirpath / f"{name}.crt"
    ext = dirpath / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                   "basicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    _run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
          "-keyout", str(key), "-out", str(csr)])
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt)])
    os.chmod(key, 0o600)
    return key, crt


class PgCluster:
    def __init__(self, base: Path):
        self.base = base
        self.data = base / "data"
        self.sockdir = base / "sock"
        self.log_path = base / "postgres.log"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.certs = base / "certs"
        self.started = False

    # certificate paths (filled by setup)
    ca_crt: Path
    ca_key: Path
    server_crt: Path
    server_key: Path
    proxy_crt: Path
    proxy_key: Path
    other_ca_crt: Path

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint("direct", self.host, self.port, ca_file=str(self.ca_crt))

    def setup(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                pytest.skip(f"{PG_BIN / tool} missing: install postgresql-15 (scripts/install-deps.sh)")
        require_tool("openssl")
        if os.geteuid() == 0:
            require_tool("runuser")
            try:
                import pwd
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root but there is no 'postgres' system user to run the "
                            "cluster as (install postgresql-15)")
        self.certs.mkdir()
        self.sockdir.mkdir()
        self.ca_key, self.ca_crt = make_ca(self.certs, "pgmoat-it-ca")
        self.server_key, self.server_crt = make_leaf(self.certs, "server", self.ca_key, self.ca_crt)
        # pgmoat's own certificate for client TLS: same CA, different key than Postgres's
        self.proxy_key, self.proxy_crt = make_leaf(self.certs, "proxy", self.ca_key, self.ca_crt)
        # A CA that signed nothing, for verify-ca/verify-full negative tests.
        _, self.other_ca_crt = make_ca(self.certs, "unrelated-ca")
        if os.geteuid() == 0:
            _run(["chown", "-R", "postgres:postgres", str(self.base)])
        os.chmod(self.base, 0o755)

        pwfile = self.base / "pw"
        pwfile.write_text("postgres-super\n")
        if os.geteuid() == 0:
            _run(["chown", "postgres:postgres", str(pwfile)])
        _run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                           "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                           "--locale=C", "--no-sync"]))
        conf = f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.sockdir}'
max_connections = 1200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 2GB
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '{self.server_crt}'
ssl_key_file = '{self.server_key}'
ssl_ca_file = '{self.ca_crt}'
log_statement = 'all'
log_connections = on
log_line_prefix = '%m [%p] %u@%d '
logging_collector = off
wal_level = logical
max_wal_senders = 10
"""
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(conf)
        (self.data / "pg_hba.conf").write_text(
            "# pgmoat integration suite\n"
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all trust_user 127.0.0.1/32 trust\n"
            "host all md5_user 127.0.0.1/32 md5\n"
            "host all scram_user 127.0.0.1/32 scram-sha-256\n"
            "host all plain_user 127.0.0.1/32 password\n"
            "host replication postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        if os.geteuid() == 0:
            _run(["chown", "-R", "postgres:postgres", str(self.data)])
        self.start()

        with self.admin() as c:
            c.execute("SET password_encryption = 'md5'")
            c.execute(f"CREATE ROLE md5_user LOGIN PASSWORD '{PASSWORDS['md5_user']}'")
            c.execute("SET password_encryption = 'scram-sha-256'")
            c.execute(f"CREATE ROLE scram_user LOGIN PASSWORD '{PASSWORDS['scram_user']}'")
            c.execute(f"CREATE ROLE plain_user LOGIN PASSWORD '{PASSWORDS['plain_user']}'")
            c.execute("CREATE ROLE trust_user LOGIN")
            for u in ("md5_user", "scram_user", "plain_user", "trust_user"):
                c.execute(f"GRANT ALL ON SCHEMA public TO {u}")
            roles = dict(c.execute("SELECT rolname, left(rolpassword, 6) FROM pg_authid "
                                   "WHERE rolname LIKE '%\\_user'").fetchall())
        assert roles["md5_user"].startswith("md5"), roles
        assert roles["scram_user"].startswith("SCRAM-"), roles

    def start(self) -> None:
        _run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
                           "-w", "-t", "60", "start"]))
        self.started = True

    def stop(self) -> None:
        if self.started:
            subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m",
                                         "immediate", "-w", "stop"]),
                           capture_output=True, stdin=subprocess.DEVNULL)
            self.started = False

    def admin(self, dbname: str = "postgres"):
        """Superuser connection straight to Postgres (autocommit)."""
        import psycopg
        return psycopg.connect(host=self.host, port=self.port, user="postgres", dbname=dbname,
                               autocommit=True, connect_timeout=10, sslmode="disable",
                               application_name="pgmoat-it-admin")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def pg():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("python3-psycopg is not importable: run the suite with /usr/bin/python3 "
                    "after scripts/install-deps.sh")
    base = Path(tempfile.mkdtemp(prefix="pgmoat-it-pg-"))
    cluster = PgCluster(base)
    try:
        cluster.setup()
        yield cluster
    finally:
        cluster.stop()
        if not KEEP_TMP:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def direct(pg) -> Endpoint:
    return pg.endpoint


# ---------------------------------------------------------------------------- pgmoat

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


class Pgmoat:
    """One running `pgmoat serve` process."""

    def __init__(self, binary: Path, workdir: Path, sections: dict[str, dict], extra_toml: str,
                 ca_file: str | None):
        self.binary = binary
        self.workdir = workdir
        self.sections = sections
        self.host = sections["listen"]["host"]
        self.port = int(sections["listen"]["port"])
        self.config_path = workdir / "pgmoat.toml"
        self.log_path = workdir / "pgmoat.stderr"
        self.audit_path = Path(sections["audit"]["path"]) if "audit" in sections else None
        self.ca_file = ca_file
        text = ""
        for name, kv in sections.items():
            text += f"[{name}]\n"
            for k, v in kv.items():
                if v is not None:
                    text += f"{k} = {_toml_value(v)}\n"
            text += "\n"
        if extra_toml:
            text += extra_toml.strip("\n") + "\n"
        self.config_path.write_text(text)
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.stopped = False

    @property
    def endpoint(self) -> Endpoint:
        tls = self.sections.get("tls", {})
        return Endpoint("pgmoat", self.host, self.port,
                        ca_file=self.ca_file if tls.get("cert_file") else None)

    def dsn(self, **kw) -> str:
        """libpq key=value conninfo through this pgmoat (see Endpoint.conninfo)."""
        return self.endpoint.conninfo(**kw)

    def url(self, **kw) -> str:
        """postgresql:// URL through this pgmoat, as an app's DATABASE_URL."""
        return self.endpoint.url(**kw)

    def connect(self, **kw):
        return self.endpoint.connect(**kw)

    def start(self, ready_timeout: float = 20.0) -> None:
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self._logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(self.binary), "serve", "--config", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT,
                                     env=env)
        if not wait_port(self.host, self.port, ready_timeout, self.proc):
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait()
            pytest.fail(f"pgmoat did not accept on {self.host}:{self.port} within {ready_timeout}s "
                        f"(exit code {rc})\nconfig:\n{self.config_path.read_text()}\n"
                        f"stderr:\n{self.log_text()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 35.0) -> int | None:
        """Send sig and wait for exit; returns the exit code, or None if it did not exit
        (it is then killed)."""
        if self.proc is None:
            return None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.returncode = None
                self._logf.close()
                return None
        self.returncode = self.proc.returncode
        self._logf.close()
        return self.returncode

    def sanitizer_report(self) -> str | None:
        log = self.log_text()
        for m in SANITIZER_MARKERS:
            if m in log:
                return log
        return None

    def assert_clean_exit(self, timeout: float = 35.0) -> None:
        was_alive = self.alive()
        rc = self.stop(timeout=timeout)
        report = self.sanitizer_report()
        assert report is None, f"sanitizer report in pgmoat stderr:\n{report[-8000:]}"
        assert was_alive, (f"pgmoat died during the test (exit code {rc})\nstderr tail:\n"
                           f"{self.log_text()[-4000:]}")
        assert rc is not None, f"pgmoat did not exit within {timeout}s of SIGTERM"
        assert rc == 0, f"pgmoat exited {rc} after SIGTERM\nstderr tail:\n{self.log_text()[-4000:]}"


def pgmoat_binary() -> Path:
    if not PGMOAT_BIN.exists():
        pytest.skip(f"pgmoat binary not found at {PGMOAT_BIN} (build it, or set PGMOAT_BIN)")
    if not os.access(PGMOAT_BIN, os.X_OK):
        pytest.skip(f"{PGMOAT_BIN} is not executable")
    return PGMOAT_BIN


class PgmoatFactory:
    def __init__(self, pg: PgCluster, tmp: Path):
        self.pg = pg
        self.tmp = tmp
        self.instances: list[Pgmoat] = []

    def __call__(self, *, extra_toml: str = "", tls: bool = False, upstream_port: int | None = None,
                 upstream_host: str | None = None, upstream_tls_mode: str = "disable",
                 upstream_ca: str | None = None, limits: dict | None = None, log_level: str = "info",
                 policy_mode: str | None = None, audit: dict | None = None,
                 policy: dict | None = None, start: bool = True) -> Pgmoat:
        """Write a config and start pgmoat. `extra_toml` is appended after the generated
        sections (start it with a table header such as [[rules]]); an `[audit]` table in it
        replaces the generated one, which otherwise writes to <workdir>/audit.jsonl."""
        binary = pgmoat_binary()
        workdir = Path(tempfile.mkdtemp(prefix="pgmoat-it-proxy-", dir=self.tmp))
        sections: dict[str, dict] = {
            "listen": {"host": "127.0.0.1", "port": free_port()},
            "upstream": {"host": upstream_host or self.pg.host,
                         "port": upstream_port if upstream_port is not None else self.pg.port,
                         "tls_mode": upstream_tls_mode,
                         "tls_ca_file": upstream_ca},
        }
        if tls:
            sections["tls"] = {"cert_file": str(self.pg.proxy_crt), "key_file": str(self.pg.proxy_key)}
        lim = {"max_client_connections": 10000, "max_message_bytes": 1048576,
               "login_timeout": "15s", "idle_timeout": "0s", "shutdown_timeout": "30s"}
        lim.update(limits or {})
        sections["limits"] = lim
        sections["log"] = {"level": log_level}
        sections["policy"] = {"mode": policy_mode or POLICY_MODE, **(policy or {})}
        if not re.search(r"^\s*\[audit\]", extra_toml, re.M):
            sections["audit"] = {"path": str(workdir / "audit.jsonl"), **(audit or {})}
        p = Pgmoat(binary, workdir, sections, extra_toml, str(self.pg.ca_crt))
        self.instances.append(p)
        if start:
            p.start()
        return p

    def finish(self) -> None:
        errors = []
        for p in self.instances:
            if p.proc is None:
                continue
            if p.stopped:
                # The test stopped it itself (and checked what it wanted); still look for
                # sanitizer output.
                rep = p.sanitizer_report()
                if rep:
                    errors.append(f"sanitizer report in pgmoat stderr:\n{rep[-8000:]}")
                continue
            try:
                p.assert_clean_exit()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            pytest.fail("\n\n".join(errors))


@pytest.fixture
def pgmoat_factory(pg, tmp_path):
    f = PgmoatFactory(pg, tmp_path)
    yield f
    f.finish()


SHARED_GUARD_RULE = """
[[rules]]
name = "compat-row-guard"
action = "require_approval"
classes = ["delete", "update", "merge"]
max_rows = 10000000
"""


@pytest.fixture(scope="module")
def pgmoat_shared(pg, tmp_path_factory):
    f = PgmoatFactory(pg, tmp_path_factory.mktemp("pgmoat"))
    # Every DELETE, UPDATE and MERGE of the compatibility tests runs under the row guard
    # (with a limit none of them reaches), so each client is checked through it too.
    p = f(extra_toml=SHARED_GUARD_RULE)
    yield p
    f.finish()


@pytest.fixture(params=TARGETS)
def target(request, pg) -> Endpoint:
    if request.param == "direct":
        return pg.endpoint
    if request.param == "pgmoat":
        return request.getfixturevalue("pgmoat_shared").endpoint
    pytest.fail(f"unknown target {request.param!r} in PGMOAT_TARGETS")
