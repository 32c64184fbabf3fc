"""Minimal PostgreSQL v3 wire-protocol client for raw-socket tests.

Only what the protocol tests need: build startup/SSL/GSSENC/cancel packets, read
typed backend messages with a deadline, and decode ErrorResponse fields.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

PROTOCOL_V3 = 196608  # 3.0
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102


def startup_packet(params: dict[str, str], version: int = PROTOCOL_V3) -> bytes:
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request() -> bytes:
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return struct.pack("!II", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid: int, key: int) -> bytes:
    return struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid & 0xFFFFFFFF, key & 0xFFFFFFFF)


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def query(sql: str) -> bytes:
    return message(b"Q", sql.encode() + b"\0")


def terminate() -> bytes:
    return message(b"X")


def cstr(s: str) -> bytes:
    return s.encode() + b"\0"


# Extended-protocol messages, text format, no parameters.
def parse(name: str, sql: str) -> bytes:
    return message(b"P", cstr(name) + cstr(sql) + b"\0\0")


def bind(portal: str, statement: str) -> bytes:
    return message(b"B", cstr(portal) + cstr(statement) + b"\0\0" + b"\0\0" + b"\0\0")


def execute(portal: str) -> bytes:
    return message(b"E", cstr(portal) + b"\0\0\0\0")


def close(kind: str, name: str) -> bytes:
    return message(b"C", kind.encode() + cstr(name))


SYNC = message(b"S")


def parse_error_fields(body: bytes) -> dict[str, str]:
    """Decode the fields of an ErrorResponse/NoticeResponse body ({'C': sqlstate, 'M': ...})."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(body) and body[i] != 0:
        code = chr(body[i])
        end = body.index(b"\0", i + 1)
        fields[code] = body[i + 1:end].decode("utf-8", "replace")
        i = end + 1
    return fields


class ConnectionClosed(Exception):
    pass


class RawConn:
    """A blocking socket with message framing and a deadline on every read."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_tolerant(self, data: bytes) -> bool:
        """Send; return False instead of raising if the peer already closed."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, n: int) -> None:
        deadline = time.monotonic() + self.timeout
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no data within {self.timeout}s (have {len(self.buf)} of {n} bytes)")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed(f"peer closed (have {len(self.buf)} of {n} bytes)")
            self.buf += chunk

    def recv_byte(self) -> bytes:
        self._fill(1)
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def recv_message(self) -> tuple[bytes, bytes]:
        self._fill(5)
        kind = self.buf[:1]
        (length,) = struct.unpack("!I", self.buf[1:5])
        if length < 4 or length > 1 << 30:
            raise ValueError(f"bad backend message length {length} for type {kind!r}")
        self._fill(1 + length)
        body = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return kind, body

    def read_until(self, kinds: bytes = b"Z") -> list[tuple[bytes, bytes]]:
        """Read messages until one whose type is in `kinds` (inclusive), or an ErrorResponse
        followed by close. Returns all messages read."""
        out = []
        while True:
            kind, body = self.recv_message()
            out.append((kind, body))
            if kind in kinds:
                return out

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True if the peer closes the connection (EOF/reset) within timeout, after
        draining any remaining bytes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def startup(self, user: str, database: str = "postgres", **extra: str) -> list[tuple[bytes, bytes]]:
        """Send a startup packet (trust auth expected) and read through ReadyForQuery or an
        ErrorResponse."""
        params = {"user": user, "database": database, **extra}
        self.send(startup_packet(params))
        return self.read_until(b"ZE")

    def simple_query(self, sql: str) -> list[tuple[bytes, bytes]]:
        self.send(query(sql))
        return self.read_until(b"Z")


def first_error(msgs: list[tuple[bytes, bytes]]) -> dict[str, str] | None:
    for kind, body in msgs:
        if kind == b"E":
            return parse_error_fields(body)
    return None


def data_rows(msgs: list[tuple[bytes, bytes]]) -> list[list[str | None]]:
    rows = []
    for kind, body in msgs:
        if kind != b"D":
            continue
        (n,) = struct.unpack("!H", body[:2])
        i = 2
        row: list[str | None] = []
        for _ in range(n):
            (ln,) = struct.unpack("!i", body[i:i + 4])
            i += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(body[i:i + ln].decode())
                i += ln
        rows.append(row)
    return rows


def backend_key(msgs: list[tuple[bytes, bytes]]) -> tuple[int, int] | None:
    for kind, body in msgs:
        if kind == b"K":
            return struct.unpack("!II", body[:8])
    return None


# ---------------------------------------------------------------- asyncio variant

async def async_read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    header = await reader.readexactly(5)
    kind = header[:1]
    (length,) = struct.unpack("!I", header[1:])
    body = await reader.readexactly(length - 4)
    return kind, body


async def async_read_until(reader: asyncio.StreamReader, kinds: bytes = b"Z") -> list[tuple[bytes, bytes]]:
    out = []
    while True:
        kind, body = await async_read_message(reader)
        out.append((kind, body))
        if kind in kinds:
            return out
