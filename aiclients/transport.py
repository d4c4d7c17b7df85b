"""A lean HTTP/1.1 transport for httpx, built on asyncio protocols, for long token streams.

Each token of an AI answer arrives as its own small TCP segment. Through httpcore, anyio and h11 a
segment costs about twice the CPU of this transport (measured on the 2-core dev VM: ~110 vs ~55
µs per token), which decides whether one process can relay hundreds of concurrent answers.
It speaks only what the AI clients need: HTTP/1.1, keep-alive, Content-Length/chunked/close-
delimited bodies, TLS via asyncio, per-read timeouts, a global connection limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

MAX_HEAD_BYTES = 64 * 1024
# Stop reading from the socket while this much is buffered and not yet consumed.
READ_HIGH_WATER = 1024 * 1024

_NO_BODY_STATUSES = frozenset({204, 304})


class _Connection(asyncio.Protocol):
    """One socket: buffers what arrives and wakes the single reader waiting for it."""

    def __init__(self, origin: tuple[bytes, bytes, int]):
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        # Read timeouts without a timer per read (an asyncio.timeout per token was ~4% of a
        # worker at 200 streams): one watchdog per silence period checks when the current wait
        # began (_quiet_from) and fails it once `_read_timeout` has passed.
        self._quiet_from = 0.0
        self._read_timeout: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    # -- protocol callbacks (run by the event loop) --------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_HIGH_WATER and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- used by the transport -----------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not self.eof and self.transport is not None and not self.transport.is_closing()

    def consume(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        if self._paused and len(self.buffer) < READ_HIGH_WATER // 2 and self.transport:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def wait(self, timeout: float | None, request: httpx.Request) -> None:
        """Wait until more bytes (or EOF) arrive; ReadTimeout after `timeout` seconds of silence."""
        if self.eof:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._read_timeout = timeout
        if timeout is not None:
            self._quiet_from = time.monotonic()
            due = loop.time() + timeout
            if self._watchdog is not None and self._watchdog.when() > due:
                self._watchdog.cancel()  # a shorter timeout than the one it was set for
                self._watchdog = None
            if self._watchdog is None:
                self._watchdog = loop.call_at(due, self._watch)
        try:
            await waiter
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for data", request=request) from None
        finally:
            self._waiter = None

    def _watch(self) -> None:
        self._watchdog = None
        waiter, timeout = self._waiter, self._read_timeout
        if waiter is None or waiter.done() or timeout is None:
            return  # not waiting now: the next wait starts a watchdog if none is running
        left = self._quiet_from + timeout - time.monotonic()
        if left <= 0:
            waiter.set_exception(TimeoutError())
        else:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_at(loop.time() + left, self._watch)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        # abort, not close: nothing is left to flush, and a TLS close_notify handshake would
        # outlive the event loop when a worker shuts down.
        if self.transport is not None:
            self.transport.abort()


class _Body(httpx.AsyncByteStream):
    """The response body; gives the connection back to the pool once fully read and closed."""

    def __init__(
        self,
        pool: LeanTransport,
        conn: _Connection,
        request: httpx.Request,
        *,
        framing: str,
        length: int,
        read_timeout: float | None,
        keep_alive: bool,
    ):
        self._pool = pool
        self._conn = conn
        self._request = request
        self._framing = framing  # "none" | "length" | "chunked" | "close"
        self._left = length
        self._timeout = read_timeout
        self._keep_alive = keep_alive
        self._complete = framing == "none"
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._framing == "length":
            async for part in self._length_body():
                yield part
        elif self._framing == "chunked":
            async for part in self._chunked_body():
                yield part
        elif self._framing == "close":
            async for part in self._close_body():
                yield part

    async def _more(self) -> None:
        conn = self._conn
        if conn.eof:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body",
                request=self._request,
            )
        await conn.wait(self._timeout, self._request)

    async def _length_body(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while self._left > 0:
            if not conn.buffer:
                await self._more()
                continue
            data = conn.consume(min(self._left, len(conn.buffer)))
            self._left -= len(data)
            yield data
        self._complete = True

    async def _close_body(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.buffer:
                yield conn.consume(len(conn.buffer))
            elif conn.eof:
                self._complete = True
                return
            else:
                await conn.wait(self._timeout, self._request)

    async def _chunked_body(self) -> AsyncIterator[bytes]:
        # Everything complete in the buffer is decoded and yielded as one piece, so a burst of
        # small chunks costs one wake-up, not one per chunk.
        conn = self._conn
        buf = conn.buffer  # mutated in place by the protocol and by consume()
        left = 0  # data bytes still due in the current chunk
        crlf = False  # the CRLF that ends a chunk's data is due
        while True:
            out: list[bytes] = []
            while True:
                if left:
                    if not buf:
                        break
                    piece = conn.consume(min(left, len(buf)))
                    left -= len(piece)
                    out.append(piece)
                    crlf = not left
                elif crlf:
                    if len(buf) < 2:
                        break
                    if buf[:2] != b"\r\n":
                        raise httpx.RemoteProtocolError("malformed chunk", request=self._request)
                    del buf[:2]
                    crlf = False
                else:
                    end = buf.find(b"\r\n")
                    if end < 0:
                        if len(buf) > 4096:
                            raise httpx.RemoteProtocolError(
                                "chunk size line too long", request=self._request
                            )
                        break
                    try:
                        size = int(bytes(buf[:end]).split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        raise httpx.RemoteProtocolError(
                            "malformed chunk size", request=self._request
                        ) from None
                    if size == 0:
                        stop = buf.find(b"\r\n\r\n", end)  # after optional trailers
                        if stop < 0:
                            break
                        del buf[: stop + 4]
                        if out:
                            yield b"".join(out)
                        self._complete = True
                        return
                    del buf[: end + 2]
                    left = size
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
            else:
                await self._more()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        reusable = self._complete and self._keep_alive and self._conn.usable
        self._pool._release(self._conn, reusable)


async def _write_request(conn: _Connection, request: httpx.Request) -> None:
    """The request line, headers and body onto the socket (chunked when the request says so)."""
    # The event loop buffers writes, so they never block; a peer that stops reading is
    # caught by the read timeout while we wait for the response head.
    url = request.url
    lines = [request.method.encode("ascii") + b" " + url.raw_path + b" HTTP/1.1"]
    lines += [k + b": " + v for k, v in request.headers.raw]
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    transport = conn.transport
    if transport is None or not conn.usable:
        raise httpx.RemoteProtocolError("connection closed before the request", request=request)
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    try:
        transport.write(head)
        async for part in request.stream:  # type: ignore[union-attr]
            if part:
                transport.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if chunked:
            transport.write(b"0\r\n\r\n")
    except (OSError, RuntimeError) as exc:
        raise httpx.WriteError(str(exc), request=request) from None


async def _read_head(
    conn: _Connection, request: httpx.Request, timeout: float | None
) -> tuple[int, bytes, list[tuple[bytes, bytes]], bool]:
    """The response's status, reason, headers and whether it is HTTP/1.0, skipping any
    informational (1xx) heads before it; a head that is too large or malformed fails."""
    while True:
        end = conn.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.buffer) > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError("response head too large", request=request)
            if conn.eof:
                msg = (
                    "peer closed connection in the middle of the response head"
                    if conn.buffer
                    else "Server disconnected without sending a response."
                )
                raise httpx.RemoteProtocolError(msg, request=request)
            await conn.wait(timeout, request)
            continue
        head = conn.consume(end + 4)
        lines = head[:-4].split(b"\r\n")
        try:
            version, status_text, *rest = lines[0].split(b" ", 2)
            status = int(status_text)
        except ValueError:
            raise httpx.RemoteProtocolError("malformed status line", request=request) from None
        if not version.startswith(b"HTTP/1."):
            raise httpx.RemoteProtocolError("not an HTTP/1.x response", request=request)
        if 100 <= status < 200 and status != 101:
            continue  # informational (100 Continue): the real answer follows
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise httpx.RemoteProtocolError("malformed header line", request=request)
            headers.append((name.strip(), value.strip()))
        return status, rest[0] if rest else b"", headers, version == b"HTTP/1.0"


def _framing(
    request: httpx.Request, status: int, headers: list[tuple[bytes, bytes]], http10: bool
) -> tuple[str, int, bool]:
    """How the response body ends ("none", "chunked", "length" or "close"), its length when
    given, and whether the connection may serve another request afterwards."""

    def header(name: bytes) -> bytes:
        for k, v in headers:
            if k.lower() == name:
                return v.lower()
        return b""

    keep_alive = not http10 and b"close" not in header(b"connection")
    keep_alive = keep_alive and b"close" not in request.headers.get("connection", "").encode()
    if request.method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
        return "none", 0, keep_alive
    if b"chunked" in header(b"transfer-encoding"):
        return "chunked", 0, keep_alive
    if header(b"content-length"):
        try:
            length = int(header(b"content-length"))
        except ValueError:
            raise httpx.RemoteProtocolError("bad Content-Length", request=request) from None
        return ("length" if length else "none"), length, keep_alive
    return "close", 0, False


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 client transport with at most `max_connections` sockets (idle + in use)."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self._max = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[tuple[bytes, bytes, int], deque[_Connection]] = {}
        self._open = 0  # sockets connected or connecting, idle or in use
        self._slots: asyncio.Semaphore | None = None  # requests holding a socket
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def _ssl(self) -> ssl.SSLContext:
        # Created on first https use: loading the CA bundle takes tens of milliseconds.
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("transport is closed")
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Sockets and the semaphore belong to one event loop; a client reused from another
            # loop (a test calling asyncio.run twice) starts with a fresh pool.
            self._loop = loop
            for idle in self._idle.values():
                for conn in idle:
                    with contextlib.suppress(Exception):  # its loop may be closed already
                        conn.close()
            self._idle = {}
            self._open = 0
            self._slots = asyncio.Semaphore(self._max)
        assert self._slots is not None
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in the pool", request=request) from None
        try:
            return await self._send(request, timeouts)
        except BaseException:
            self._slots.release()
            raise

    async def _send(self, request: httpx.Request, timeouts: dict[str, Any]) -> httpx.Response:
        """Write the request on a pooled or new connection and read the response head; the body
        is streamed by _Body, framed as the head says."""
        conn = await self._checkout(request, timeouts)
        try:
            await _write_request(conn, request)
            status, reason, headers, http10 = await _read_head(conn, request, timeouts.get("read"))
            framing, length, keep_alive = _framing(request, status, headers, http10)
        except BaseException:
            self._discard(conn)
            raise
        body = _Body(
            self,
            conn,
            request,
            framing=framing,
            length=length,
            read_timeout=timeouts.get("read"),
            keep_alive=keep_alive,
        )
        return httpx.Response(
            status,
            headers=headers,
            stream=body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _checkout(self, request: httpx.Request, timeouts: dict[str, Any]) -> _Connection:
        """An idle connection to the request's origin, else a new one; the trace hears which
        (the address guard checks a new connection's address before any byte is written)."""
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
        trace = request.extensions.get("trace")
        conn = self._take_idle(origin)
        if trace is not None:
            name = (
                "http11.send_request_headers.started" if conn else "connection.connect_tcp.started"
            )
            await trace(name, {"request": request})
        if conn is None:
            conn = await self._connect(origin, timeouts.get("connect"), request)
            if trace is not None:
                # The address guard (outbound/guard.py) checks the address reached, here, before
                # a byte of the request is written.
                try:
                    await trace("connection.connect_tcp.complete", {"return_value": conn.transport})
                except BaseException:
                    self._discard(conn)
                    raise
        return conn

    def _take_idle(self, origin: tuple[bytes, bytes, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # most recently used first: the least likely to be stale
            if conn.usable and not conn.buffer and now - conn.idle_since < self._keepalive_expiry:
                return conn
            self._discard(conn)
        return None

    async def _connect(
        self, origin: tuple[bytes, bytes, int], timeout: float | None, request: httpx.Request
    ) -> _Connection:
        if self._open >= self._max:
            self._close_one_idle()
        scheme, host, port = origin
        hostname = host.decode("ascii")
        loop = asyncio.get_running_loop()
        tls = self._ssl() if scheme == b"https" else None
        self._open += 1
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(origin),
                    hostname,
                    port,
                    ssl=tls,
                    server_hostname=hostname if tls else None,
                )
        except TimeoutError:
            self._open -= 1
            raise httpx.ConnectTimeout("connect timed out", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            self._open -= 1
            raise httpx.ConnectError(str(exc) or repr(exc), request=request) from None
        except BaseException:
            self._open -= 1
            raise
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _release(self, conn: _Connection, reusable: bool) -> None:
        if self._slots is not None:
            self._slots.release()
        if reusable and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.origin, deque()).append(conn)
        else:
            self._discard(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open -= 1

    def _close_one_idle(self) -> None:
        for idle in self._idle.values():
            if idle:
                self._discard(idle.popleft())
                return

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                self._discard(idle.popleft())
        self._idle.clear()
        await asyncio.sleep(0)  # let the loop run the sockets' close callbacks
