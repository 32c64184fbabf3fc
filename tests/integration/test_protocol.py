"""Protocol-level behaviour: cancel, many connections, upstream failures, malformed input,
TLS in both legs, channel binding, replication refusal, shutdown, bad config."""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid

import pytest

import pgwire
from conftest import free_port, nofile_limit, poll
from itutil import run_psql, tool

psycopg = pytest.importorskip("psycopg", reason="python3-psycopg missing: run scripts/install-deps.sh "
                                                 "and use /usr/bin/python3")


def active_pid(pg, marker: str) -> int | None:
    with pg.admin() as c:
        row = c.execute("SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                        "AND pid <> pg_backend_pid()", (f"%{marker}%",)).fetchone()
    return row[0] if row else None


class Runner(threading.Thread):
    """Run conn.execute(sql) in a thread, recording the outcome and when it ended."""

    def __init__(self, conn, sql: str):
        super().__init__(daemon=True)
        self.conn, self.sql = conn, sql
        self.result = None
        self.error: Exception | None = None
        self.ended = None

    def run(self):
        try:
            self.result = self.conn.execute(self.sql).fetchall()
        except Exception as e:  # noqa: BLE001 - recorded for the test to judge
            self.error = e
        self.ended = time.monotonic()


def start_sleep(conn, pg, seconds: float) -> tuple[Runner, int, str]:
    marker = "pgmoat_it_" + uuid.uuid4().hex[:10]
    r = Runner(conn, f"SELECT pg_sleep({seconds}) /* {marker} */")
    r.start()
    pid = poll(lambda: active_pid(pg, marker), 10, what=f"backend running {marker}")
    return r, pid, marker


# ------------------------------------------------------------------------------ cancel

def test_cancel_psycopg(target, pg):
    with target.connect() as conn:
        r, _, _ = start_sleep(conn, pg, 30)
        t0 = time.monotonic()
        conn.cancel()
        r.join(10)
        assert not r.is_alive(), "query still running 10s after cancel"
        assert isinstance(r.error, psycopg.errors.QueryCanceled), repr(r.error)
        assert r.ended - t0 < 5
        assert "canceling statement due to user request" in str(r.error)
        assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)


def test_cancel_psql(target, pg):
    marker = "pgmoat_it_" + uuid.uuid4().hex[:10]
    p = subprocess.Popen([tool("psql"), "-X", "-c", f"SELECT pg_sleep(30) /* {marker} */"],
                         env=target.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        poll(lambda: active_pid(pg, marker), 10, what="psql's query to start")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)  # psql sends a CancelRequest with the key it was given
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert time.monotonic() - t0 < 5
    assert p.returncode == 1, (p.returncode, out, err)
    assert "canceling statement due to user request" in err, err
    assert active_pid(pg, marker) is None


def test_cancel_reaches_only_its_own_session(target, pg):
    conns = [target.connect() for _ in range(3)]
    try:
        runners = [start_sleep(c, pg, 3)[0] for c in conns]
        conns[1].cancel()
        runners[1].join(5)
        assert isinstance(runners[1].error, psycopg.errors.QueryCanceled), repr(runners[1].error)
        for i in (0, 2):
            runners[i].join(10)
            assert runners[i].error is None, f"session {i} was cancelled too: {runners[i].error!r}"
            assert runners[i].result == [("",)]
    finally:
        for c in conns:
            c.close()


def test_bogus_cancel_key_cancels_nothing(target, pg):
    with target.connect() as conn:
        pid_seen = conn.info.backend_pid  # as announced to the client in BackendKeyData
        r, _, _ = start_sleep(conn, pg, 2)
        for bogus_pid, bogus_key in [(pid_seen, 0x12345678), (pid_seen ^ 0x5A5A, 0x1), (0, 0)]:
            with pgwire.RawConn(target.host, target.port) as c:
                c.send(pgwire.cancel_request(bogus_pid, bogus_key))
                assert c.wait_closed(5), "cancel connection not closed by the server"
                assert c.buf == b"", f"a CancelRequest must get no reply, got {c.buf!r}"
        r.join(10)
        assert r.error is None, f"bogus cancel key cancelled the query: {r.error!r}"
        assert r.result == [("",)]


# ------------------------------------------------------------------------------ many connections

@pytest.mark.slow
@pytest.mark.timeout(300)
def test_1000_concurrent_connections(target, pg):
    n = 1000
    if nofile_limit() < 2 * n + 100:
        pytest.skip(f"open-file limit {nofile_limit()} too low for {n} connections (need {2 * n + 100})")

    async def main():
        setup_gate = asyncio.Semaphore(64)

        async def open_one(i):
            async with setup_gate:
                reader, writer = await asyncio.open_connection(target.host, target.port)
                writer.write(pgwire.startup_packet({"user": "trust_user", "database": "postgres",
                                                    "application_name": "pgmoat-it-many"}))
                msgs = await pgwire.async_read_until(reader, b"ZE")
                assert pgwire.first_error(msgs) is None, pgwire.first_error(msgs)
                writer.write(pgwire.query(f"SELECT {i}"))
                msgs = await pgwire.async_read_until(reader, b"Z")
                assert pgwire.data_rows(msgs) == [[str(i)]]
                return reader, writer

        conns = await asyncio.gather(*(open_one(i) for i in range(n)))
        with pg.admin() as c:
            open_backends = c.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'trust_user'"
                                      ).fetchone()[0]

        async def use(i, rw):
            reader, writer = rw
            writer.write(pgwire.query(f"SELECT {i} * 2"))
            msgs = await pgwire.async_read_until(reader, b"Z")
            assert pgwire.data_rows(msgs) == [[str(i * 2)]]
            writer.write(pgwire.terminate())
            await writer.drain()
            writer.close()

        await asyncio.gather(*(use(i, rw) for i, rw in enumerate(conns)))
        return open_backends

    t0 = time.monotonic()
    open_backends = asyncio.run(asyncio.wait_for(main(), 240))
    assert open_backends >= n, f"only {open_backends} backends open while {n} clients were connected"
    # every backend goes away once the clients have left
    poll(lambda: _count_user(pg, "trust_user") == 0, 60, what="backends to exit")
    assert time.monotonic() - t0 < 240


def _count_user(pg, user: str) -> int:
    with pg.admin() as c:
        return c.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (user,)).fetchone()[0]


# ------------------------------------------------------------------------------ upstream failures

def test_upstream_backend_terminated(target, pg):
    bystander = target.connect()
    victim = target.connect()
    try:
        r, pid, _ = start_sleep(victim, pg, 30)
        with pg.admin() as c:
            assert c.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        r.join(10)
        assert not r.is_alive(), "client still waiting 10s after its backend was terminated"
        assert isinstance(r.error, psycopg.OperationalError), repr(r.error)
        assert "terminating connection due to administrator command" in str(r.error), str(r.error)
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
        # others are unaffected and new sessions work
        assert bystander.execute("SELECT 'bystander'").fetchone() == ("bystander",)
        with target.connect() as fresh:
            assert fresh.execute("SELECT 'fresh'").fetchone() == ("fresh",)
    finally:
        victim.close()
        bystander.close()


def test_upstream_down_at_connect(pgmoat_factory):
    dead_port = free_port()
    p = pgmoat_factory(upstream_port=dead_port)
    with pgwire.RawConn(p.host, p.port) as c:
        msgs = c.startup("trust_user")
        err = pgwire.first_error(msgs)
        assert err is not None, f"expected ErrorResponse, got {[k for k, _ in msgs]}"
        assert err["C"] == "08006", err
        text = err.get("M", "") + " " + err.get("D", "")
        assert str(dead_port) in text, f"error does not name the upstream: {err}"
        assert c.wait_closed(5)
    t0 = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as ei:
        p.endpoint.connect(user="trust_user")
    assert time.monotonic() - t0 < 10
    assert str(dead_port) in str(ei.value)
    assert p.alive()


# ------------------------------------------------------------------------------ malformed input

MALFORMED = {
    "length-too-small": struct.pack("!I", 3) + b"\0" * 8,
    "length-huge": struct.pack("!II", 0x7FFFFFF0, pgwire.PROTOCOL_V3),
    "http-request": b"GET / HTTP/1.1\r\nHost: pgmoat\r\n\r\n",
    "params-unterminated": (lambda body: struct.pack("!I", len(body) + 4) + body)(
        struct.pack("!I", pgwire.PROTOCOL_V3) + b"user\0trust_user"),
    "key-without-value": (lambda body: struct.pack("!I", len(body) + 4) + body)(
        struct.pack("!I", pgwire.PROTOCOL_V3) + b"user\0trust_user\0database\0"),
    "random-bytes": bytes((i * 73 + 41) % 256 for i in range(200)),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_startup(pgmoat_shared, case):
    p = pgmoat_shared
    with pgwire.RawConn(p.host, p.port) as c:
        c.send_tolerant(MALFORMED[case])
        kind, body = c.recv_message()
        assert kind == b"E", f"expected ErrorResponse, got {kind!r} {body[:100]!r}"
        err = pgwire.parse_error_fields(body)
        assert err["C"] == "08P01", err
        assert c.wait_closed(5), "connection not closed after the protocol error"
    _still_serving(p.endpoint)


def _still_serving(endpoint):
    with endpoint.connect(user="trust_user") as conn:
        assert conn.execute("SELECT 'still serving'").fetchone() == ("still serving",)


@pytest.mark.parametrize("garbage", [b"\x00\x00\x00\x00\x08abcd", b"Z\x00\x00\x00\x04"],
                         ids=["type-0", "type-Z"])
def test_garbage_after_startup(target, garbage):
    with pgwire.RawConn(target.host, target.port) as c:
        msgs = c.startup("trust_user")
        assert msgs[-1][0] == b"Z"
        c.send(garbage)
        kind, body = c.recv_message()
        while kind in (b"N", b"S"):
            kind, body = c.recv_message()
        assert kind == b"E", (kind, body)
        assert pgwire.parse_error_fields(body)["C"] == "08P01"
        assert c.wait_closed(5)
    _still_serving(target)


def test_oversized_message(pgmoat_shared):
    p = pgmoat_shared
    limit = int(p.sections["limits"]["max_message_bytes"])
    with pgwire.RawConn(p.host, p.port) as c:
        assert c.startup("trust_user")[-1][0] == b"Z"
        # just under the limit is fine
        sql = "SELECT length('" + "x" * (limit - 100) + "')"
        msgs = c.simple_query(sql)
        assert pgwire.data_rows(msgs) == [[str(limit - 100)]], pgwire.first_error(msgs)
        # over the limit: refused from the header alone
        c.send_tolerant(b"Q" + struct.pack("!I", 2 * limit + 4) + b"x" * 65536)
        kind, body = c.recv_message()
        assert kind == b"E", (kind, body[:200])
        err = pgwire.parse_error_fields(body)
        assert err["C"] == "08P01", err
        assert c.wait_closed(5)
    _still_serving(p.endpoint)


def test_large_copydata_and_datarow_pass(target):
    """The size cap applies to what is buffered (Query/Parse), not to streamed CopyData and
    DataRow messages."""
    big = 3 * 1024 * 1024
    with pgwire.RawConn(target.host, target.port, timeout=30) as c:
        assert c.startup("trust_user")[-1][0] == b"Z"
        assert c.simple_query("CREATE TEMP TABLE bigcopy(t text)")[-1][0] == b"Z"
        c.send(pgwire.query("COPY bigcopy FROM STDIN"))
        kind, _ = c.recv_message()
        assert kind == b"G", kind
        c.send(pgwire.message(b"d", b"y" * big + b"\n") + pgwire.message(b"c"))
        msgs = c.read_until(b"Z")
        assert pgwire.first_error(msgs) is None, pgwire.first_error(msgs)
        assert (b"C", b"COPY 1\0") in msgs
        msgs = c.simple_query("SELECT t FROM bigcopy")
        rows = pgwire.data_rows(msgs)
        assert len(rows) == 1 and len(rows[0][0]) == big


def test_pipelined_extended_copy_then_guarded_delete(target, pg, request):
    """A client may send an extended COPY FROM STDIN, its data, CopyDone and both Syncs in one
    write, before the server's CopyInResponse. The server ignores the Sync that arrives during
    the copy and answers the one after CopyDone. A guarded DELETE pipelined behind it must get
    its own answers, and the guard's counts none of the client's (pgmoat once took both Syncs
    as ignored and was one answer out of step from then on)."""
    t = f"pipecopy_{request.node.callspec.id}".replace("-", "_")
    with pg.admin() as a:
        a.execute(f"DROP TABLE IF EXISTS {t}")
        a.execute(f"CREATE TABLE {t} (n int)")
        a.execute(f"GRANT ALL ON {t} TO PUBLIC")
    with pgwire.RawConn(target.host, target.port) as c:
        assert c.startup("trust_user")[-1][0] == b"Z"
        c.send(pgwire.parse("", f"COPY {t} FROM STDIN") + pgwire.bind("", "") +
               pgwire.execute("") + pgwire.SYNC +
               pgwire.message(b"d", b"1\n2\n3\n") + pgwire.message(b"c") + pgwire.SYNC +
               pgwire.parse("", f"DELETE FROM {t} WHERE n <= 2") + pgwire.bind("", "") +
               pgwire.execute("") + pgwire.SYNC)
        first = c.read_until(b"Z")
        second = c.read_until(b"Z")
        assert [k for k, _ in first] == [b"1", b"2", b"G", b"C", b"Z"], first
        assert (b"C", b"COPY 3\0") in first
        assert [k for k, _ in second] == [b"1", b"2", b"C", b"Z"], second
        assert (b"C", b"DELETE 2\0") in second
        rows = pgwire.data_rows(c.simple_query(f"SELECT n FROM {t}"))
        assert rows == [["3"]], rows


def test_slow_reader_gets_every_byte_in_order(target):
    """About 9 MB of rows while the client does not read for a second: pgmoat's writes to the
    client fill the socket and continue where they stopped, nothing lost or reordered."""
    n = 150000
    with pgwire.RawConn(target.host, target.port, timeout=60) as c:
        assert c.startup("trust_user")[-1][0] == b"Z"
        c.send(pgwire.query(f"SELECT g, md5(g::text) FROM generate_series(1, {n}) g"))
        time.sleep(1.0)
        msgs = c.read_until(b"Z")
    assert pgwire.first_error(msgs) is None, pgwire.first_error(msgs)
    rows = pgwire.data_rows(msgs)
    assert len(rows) == n
    for i, (g, digest) in enumerate(rows, start=1):
        assert g == str(i), (i, g)
        assert digest == hashlib.md5(g.encode()).hexdigest(), (i, digest)


def test_large_bind_parameter(target):
    """A Bind carrying a parameter larger than max_message_bytes (3 MiB) works as it does
    against Postgres."""
    with target.connect() as conn:
        v = "z" * (3 * 1024 * 1024)
        assert conn.execute("SELECT length(%s::text)", (v,)).fetchone() == (len(v),)


# ------------------------------------------------------------------------------ negotiation

def test_gssenc_request_answered_n(pgmoat_shared):
    p = pgmoat_shared
    with pgwire.RawConn(p.host, p.port) as c:
        c.send(pgwire.gssenc_request())
        assert c.recv_byte() == b"N"
        msgs = c.startup("trust_user")  # the same connection goes on with a plain startup
        assert msgs[-1][0] == b"Z", pgwire.first_error(msgs)
        assert pgwire.data_rows(c.simple_query("SELECT 'after gss'")) == [["after gss"]]
    # libpq's default gssencmode=prefer goes through the same dance
    with p.endpoint.connect(user="trust_user", gssencmode="prefer") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_ssl_request_answered_n_without_tls(pgmoat_shared):
    p = pgmoat_shared
    with pgwire.RawConn(p.host, p.port) as c:
        c.send(pgwire.ssl_request())
        assert c.recv_byte() == b"N"
        msgs = c.startup("trust_user")
        assert msgs[-1][0] == b"Z", pgwire.first_error(msgs)
    r = run_psql(p.endpoint, ["-c", "SELECT 1"], extra_env={"PGSSLMODE": "require"})
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "server does not support SSL, but SSL was required" in r.stderr
    with p.endpoint.connect(user="trust_user", sslmode="prefer") as conn:
        assert not conn.pgconn.ssl_in_use


def test_tls_client_to_pgmoat(pgmoat_factory, pg):
    p = pgmoat_factory(tls=True)
    ep = p.endpoint
    # pgmoat terminates TLS itself: the certificate presented is its own, not Postgres's
    raw = socket.create_connection((p.host, p.port), timeout=10)
    try:
        raw.sendall(pgwire.ssl_request())
        assert raw.recv(1) == b"S"
        ctx = ssl.create_default_context(cafile=str(pg.ca_crt))
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der == ssl.PEM_cert_to_DER_cert(pg.proxy_crt.read_text()), \
                "client-facing certificate is not the configured [tls] cert_file"
            tls.sendall(pgwire.startup_packet({"user": "trust_user", "database": "postgres"}))
            hdr = tls.recv(1)
            assert hdr == b"R", hdr
    finally:
        raw.close()
    # psql, sslmode=require and verify-full against the generated CA
    for mode in ("require", "verify-full"):
        r = run_psql(ep, ["-A", "-t", "-c", "\\conninfo", "-c", "SELECT 'over tls'"],
                     extra_env={"PGSSLMODE": mode, "PGSSLROOTCERT": str(pg.ca_crt)})
        assert r.returncode == 0, r.stderr
        assert "SSL connection (protocol: TLSv1." in r.stdout, r.stdout
        assert "over tls" in r.stdout
    # psycopg, verify-full: the certificate is pgmoat's, signed by the test CA
    with ep.connect(user="scram_user", sslmode="verify-full", sslrootcert=str(pg.ca_crt)) as conn:
        assert conn.pgconn.ssl_in_use
        rows = conn.execute("SELECT g, repeat('t', 1000) FROM generate_series(1, 5000) g").fetchall()
        assert len(rows) == 5000 and rows[-1][0] == 5000
        conn.execute("CREATE TEMP TABLE tl(x int)")
        with conn.cursor().copy("COPY tl FROM STDIN") as cp:
            for i in range(1000):
                cp.write_row((i,))
        assert conn.execute("SELECT sum(x) FROM tl").fetchone() == (sum(range(1000)),)
    # a client that does not trust the CA refuses the certificate
    with pytest.raises(psycopg.OperationalError) as ei:
        ep.connect(user="trust_user", sslmode="verify-full", sslrootcert=str(pg.other_ca_crt))
    assert "certificate verify failed" in str(ei.value)
    assert p.alive()


@pytest.mark.parametrize("leg", ["plain", "tls"])
def test_channel_binding_required_fails_clearly(pgmoat_factory, pg, leg):
    if leg == "tls":
        p = pgmoat_factory(tls=True, upstream_tls_mode="verify-full", upstream_ca=str(pg.ca_crt))
        kw = {"sslmode": "require"}
    else:
        p = pgmoat_factory()
        kw = {"sslmode": "disable"}
    t0 = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as ei:
        p.endpoint.connect(user="scram_user", channel_binding="require", **kw)
    assert time.monotonic() - t0 < 15, "channel binding failure took too long (hang?)"
    assert "channel binding" in str(ei.value), str(ei.value)
    assert p.alive()
    _still_serving(p.endpoint)


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
def test_upstream_tls(pgmoat_factory, pg, mode):
    p = pgmoat_factory(upstream_tls_mode=mode, upstream_ca=str(pg.ca_crt))
    with p.endpoint.connect(user="md5_user") as conn:
        ssl, version = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert ssl is True and version.startswith("TLSv1.")
        assert not conn.pgconn.ssl_in_use  # the client leg is plain
        assert conn.execute("SELECT count(*) FROM generate_series(1, 100000)").fetchone() == (100000,)


def test_upstream_tls_disable_is_plain(pgmoat_shared):
    with pgmoat_shared.endpoint.connect() as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (False,)


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_upstream_tls_untrusted_ca_refused(pgmoat_factory, pg, mode):
    p = pgmoat_factory(upstream_tls_mode=mode, upstream_ca=str(pg.other_ca_crt))
    t0 = time.monotonic()
    with pgwire.RawConn(p.host, p.port, timeout=20) as c:
        err = pgwire.first_error(c.startup("trust_user"))
    assert time.monotonic() - t0 < 15
    assert err is not None and err["C"] == "08006", err
    assert p.alive()


# ------------------------------------------------------------------------------ refusals

@pytest.mark.parametrize("value", ["database", "true"])
def test_replication_connection_refused(pgmoat_shared, pg, value):
    # Postgres itself accepts it (so the refusal is pgmoat's own)
    with pgwire.RawConn(pg.host, pg.port) as c:
        msgs = c.startup("postgres", replication=value)
        assert msgs[-1][0] == b"Z", pgwire.first_error(msgs)
    p = pgmoat_shared
    with pgwire.RawConn(p.host, p.port) as c:
        msgs = c.startup("postgres", replication=value)
        err = pgwire.first_error(msgs)
        assert err is not None, f"replication={value} was accepted: {[k for k, _ in msgs]}"
        assert "replication" in err.get("M", "").lower(), err
        assert not any(k == b"Z" for k, _ in msgs)
        assert c.wait_closed(5)
    _still_serving(p.endpoint)


# ------------------------------------------------------------------------------ lifecycle

def test_sigterm_with_idle_session(pgmoat_factory):
    p = pgmoat_factory(limits={"shutdown_timeout": "3s"})
    conn = p.endpoint.connect(user="trust_user")
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        t0 = time.monotonic()
        rc = p.stop(signal.SIGTERM, timeout=10)
        elapsed = time.monotonic() - t0
        assert rc is not None, "pgmoat still running 10s after SIGTERM (deadline 3s)"
        assert elapsed < 3 + 2, f"exit took {elapsed:.1f}s with a 3s shutdown deadline"
        assert rc == 0, f"exit code {rc}\n{p.log_text()[-3000:]}"
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    assert p.sanitizer_report() is None


def test_sigterm_after_sessions_closed_is_prompt(pgmoat_factory, pg):
    """With every client gone, SIGTERM has nothing to wait for: exit at once, not after
    login_timeout or shutdown_timeout."""
    p = pgmoat_factory()  # login_timeout 15s, shutdown_timeout 30s
    with p.endpoint.connect(user="trust_user") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # a connection that never sends a startup packet, closed by the client
    socket.create_connection((p.host, p.port), timeout=5).close()
    # a failed login (wrong password) and a client that gives up in the middle of SCRAM
    with pytest.raises(psycopg.OperationalError):
        p.endpoint.connect(user="md5_user", password="wrong", sslmode="disable")
    with pytest.raises(psycopg.OperationalError):
        p.endpoint.connect(user="scram_user", channel_binding="require", sslmode="disable")
    poll(lambda: sum(_count_user(pg, u) for u in ("trust_user", "md5_user", "scram_user")) == 0, 10,
         what="the sessions' backends to go away")
    t0 = time.monotonic()
    rc = p.stop(signal.SIGTERM, timeout=35)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"exit code {rc}\n{p.log_text()[-3000:]}"
    assert elapsed < 3, (f"pgmoat took {elapsed:.1f}s to exit after SIGTERM with no open session\n"
                         f"{p.log_text()[-3000:]}")


def test_abandoned_login_is_noticed(pgmoat_factory):
    """A client that hangs up in the middle of authentication (here libpq, which drops the
    connection on AuthenticationSASL because it requires channel binding) is gone: pgmoat
    must not keep that session until login_timeout, so SIGTERM right after exits at once."""
    p = pgmoat_factory()  # login_timeout 15s
    with pytest.raises(psycopg.OperationalError) as ei:
        p.endpoint.connect(user="scram_user", channel_binding="require", sslmode="disable")
    assert "channel binding" in str(ei.value)
    t0 = time.monotonic()
    rc = p.stop(signal.SIGTERM, timeout=35)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"exit code {rc}\n{p.log_text()[-3000:]}"
    assert elapsed < 3, (f"pgmoat took {elapsed:.1f}s to exit after SIGTERM; the abandoned login "
                         f"was still counted as a session\n{p.log_text()[-3000:]}")


BAD_CONFIGS = {
    "syntax": ('[listen]\nhost = "127.0.0.1"\nport = \n', 3),
    "wrong-type": ('[listen]\nhost = "127.0.0.1"\nport = "six"\n[upstream]\nhost = "127.0.0.1"\nport = 5432\n', 3),
    "bad-tls-mode": ('[listen]\nhost = "127.0.0.1"\nport = 6432\n[upstream]\nhost = "127.0.0.1"\n'
                     'port = 5432\ntls_mode = "sometimes"\n', 7),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_reports_location(pg, tmp_path, case):
    from conftest import pgmoat_binary
    binary = pgmoat_binary()
    text, line = BAD_CONFIGS[case]
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    r = subprocess.run([str(binary), "serve", "--config", str(cfg)], capture_output=True, text=True,
                       timeout=15, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    m = re.search(re.escape(str(cfg)) + r":(\d+):(\d+): \S", r.stderr)
    assert m, f"no file:line:column in stderr:\n{r.stderr}"
    assert int(m.group(1)) == line, r.stderr
