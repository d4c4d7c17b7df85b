"""Minimal asyncio HTTP/1.1 server that the protocol fakes (Flowise, OpenAI, Pinecone) build on.

One event loop in a daemon thread serves every connection, so hundreds of slow streams cost no threads.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import random
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs

log = logging.getLogger("tests.fakes")

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
# Above this many buffered bytes a writer waits for the peer; below it writes never suspend, which
# keeps the per-token cost of hundreds of concurrent streams low.
WRITE_HIGH_WATER = 256 * 1024

# Knobs that simulate failures. `fail_times` limits them to the first N requests; knobs not listed
# here (answer, pacing, framing variants, api_key) always apply.
FAULT_KNOBS = frozenset(
    {
        "status",
        "delay_before_headers",
        "hang_without_headers",
        "reset_after_tokens",
        "malformed_after_tokens",
        "no_end",
        "stall_after_tokens",
        "error_after_tokens",
        "empty_answer",
    }
)

COMMON_DEFAULTS: dict[str, Any] = {
    "delay_before_headers": 0.0,
    "delay_before_first_token": 0.0,
    "tokens_per_second": 0.0,
    "tokens": None,
    "answer": None,
    "status": None,
    "retry_after": None,
    "fail_times": None,
    "reset_after_tokens": None,
    "reset_with_rst": False,
    "malformed_after_tokens": None,
    "no_end": False,
    "stall_after_tokens": None,
    "hang_without_headers": False,
    "heartbeat_interval": None,
    "split_bytes": None,
    "split_seed": 0,
    "error_after_tokens": None,
    "error_message": None,
    "empty_answer": False,
    "big_token_bytes": None,
    "api_key": None,
    "close_idle_after": None,  # seconds an idle keep-alive connection stays open
    "record_emissions": True,  # off for long standalone runs: the list grows by one per token
}

# Knobs that act at a token position (see FakeServer.run_tokens).
STOP_KNOBS = (
    "error_after_tokens",
    "malformed_after_tokens",
    "reset_after_tokens",
    "stall_after_tokens",
)

_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def tokenize(text: str) -> list[str]:
    """Split text into word tokens that keep their leading spaces: "Hello world" -> ["Hello", " world"]."""
    return _TOKEN_RE.findall(text)


def describe_image(data: bytes) -> str:
    """The deterministic 'vision' answer the fakes give for an image, so tests can tell images apart."""
    return f"Image {hashlib.sha256(data).hexdigest()[:12]}"


def decode_data_url(url: str) -> bytes | None:
    """Bytes of a `data:<mime>;base64,<b64>` URL, or None when it is not one."""
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        return None
    head, _, payload = url.partition(",")
    if not head.endswith(";base64"):
        return payload.encode()
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return None


class Scenario(dict):
    """Fault knobs; a dict that also allows attribute access (`srv.scenario.status = 503`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


@dataclass
class RecordedRequest:
    index: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw bytes when the body is not JSON
    raw: bytes
    time: float
    connection: int = 0  # serial number of the TCP connection it came on (keep-alive checks)

    @property
    def json(self) -> Any:
        return None if isinstance(self.body, bytes) else self.body

    def as_dict(self) -> dict[str, Any]:
        body = self.body
        if isinstance(body, bytes):
            body = body.decode("latin-1")
        return {
            "index": self.index,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": body,
            "time": self.time,
            "connection": self.connection,
        }


class Emission(NamedTuple):
    """One token leaving a fake: key is the chatId (Flowise) or the request index (OpenAI)."""

    key: Any
    index: int
    wall: float  # time.time()
    mono: float  # time.monotonic(); CLOCK_MONOTONIC is shared by processes on one host


class ClientGone(Exception):
    """The peer closed the connection while we were still writing."""


class Request:
    __slots__ = (
        "body",
        "connection",
        "headers",
        "index",
        "json",
        "keep_alive",
        "method",
        "path",
        "query",
        "time",
    )

    def __init__(
        self, method: str, target: str, version: str, headers: dict[str, str], body: bytes
    ):
        self.method = method
        self.path, _, self.query = target.partition("?")
        self.headers = headers
        self.body = body
        self.time = time.time()
        self.index = -1
        self.connection = 0
        conn = headers.get("connection", "").lower()
        self.keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        self.json: Any = None
        if body:
            with contextlib.suppress(ValueError):
                self.json = json.loads(body)


class Responder:
    """Writes one HTTP response: either whole (`send`) or chunked (`start`/`write`/`finish`)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        keep_alive: bool,
        split_bytes: int | None = None,
        split_seed: int = 0,
    ):
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.keep_alive = keep_alive
        self.started = False
        self.closed = False  # connection must not be reused
        self._split = int(split_bytes) if split_bytes else 0
        self._rng = random.Random(split_seed) if self._split else None
        self._lock = asyncio.Lock()

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Unknown"
        lines = [f"HTTP/1.1 {status} {reason}"]
        names = {k.lower() for k, _ in headers}
        lines += [f"{k}: {v}" for k, v in headers]
        if "date" not in names:
            lines.append("Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
        if "connection" not in names:
            lines.append("Connection: " + ("keep-alive" if self.keep_alive else "close"))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(
        self,
        status: int,
        body: bytes | str | dict | list = b"",
        *,
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        if isinstance(body, dict | list):
            body = json.dumps(body, separators=(",", ":")).encode()
            content_type = content_type or "application/json; charset=utf-8"
        elif isinstance(body, str):
            body = body.encode()
        hdrs = list(headers or [])
        if content_type:
            hdrs.insert(0, ("Content-Type", content_type))
        hdrs.append(("Content-Length", str(len(body))))
        self.started = True
        await self._raw(self._head(status, hdrs) + body)
        if not self.keep_alive:
            self.closed = True

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.started = True
        await self._raw(self._head(status, [*headers, ("Transfer-Encoding", "chunked")]))

    async def write(self, data: bytes) -> None:
        """One HTTP chunk (one `res.write` on a Node server)."""
        if data:
            await self._raw(b"%x\r\n%s\r\n" % (len(data), data))

    async def finish(self) -> None:
        await self._raw(b"0\r\n\r\n")
        if not self.keep_alive:
            self.closed = True

    async def _raw(self, data: bytes) -> None:
        if self.transport.is_closing():
            raise ClientGone
        if not self._split:
            self.transport.write(data)
            if self.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                await self.writer.drain()
            return
        # Random small TCP segments (TCP_NODELAY is on) so client parsers see frames cut anywhere.
        async with self._lock:
            pos = 0
            while pos < len(data):
                n = self._rng.randint(1, self._split)
                if self.transport.is_closing():
                    raise ClientGone
                self.transport.write(data[pos : pos + n])
                pos += n
                await self.writer.drain()
                await asyncio.sleep(0)

    def abort(self, rst: bool = False) -> None:
        """Drop the connection without finishing the response (FIN, or RST when asked)."""
        self.closed = True
        sock = self.writer.get_extra_info("socket")
        if rst and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        else:
            self.transport.close()

    async def wait_peer_closed(self) -> None:
        """Keep the socket open, sending nothing, until the client goes away."""
        self.closed = True
        with contextlib.suppress(Exception):
            while await self.reader.read(65536):
                pass


class FakeServer:
    """Base class: connection handling, request recording, scenario knobs, control endpoints, CLI."""

    name = "fake"
    DEFAULTS: dict[str, Any] = COMMON_DEFAULTS
    fault_knobs: frozenset[str] = FAULT_KNOBS

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        **scenario: Any,
    ):
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._connections_seen = 0
        self.scenario = Scenario(self._defaults())
        self.scenario.update(scenario)
        self.emissions: list[Emission] = []
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._init_state()

    def _init_state(self) -> None:
        """Make a fake's own stores (orders, tokens, rate windows); its `_on_reset` empties them.

        Called last in `__init__`, when the knobs are set, so no fake repeats the constructor.
        """

    def _defaults(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.DEFAULTS))  # deep copy so tests cannot mutate defaults

    # -- public API ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def configure(self, **knobs: Any) -> Self:
        self.scenario.update(knobs)
        return self

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self.emissions.clear()
            self.scenario.clear()
            self.scenario.update(self._defaults())
        self._on_reset()

    def _on_reset(self) -> None:
        pass

    def start(self) -> Self:
        """Serve from a daemon thread; returns once the port is bound."""
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # surface bind errors to start()
                error.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.name}-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if error:
            raise error[0]
        return self

    def stop(self) -> None:
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the current thread until SIGINT/SIGTERM (standalone mode)."""

        async def main() -> None:
            await self._listen()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            print(f"{type(self).__name__} listening on {self.url}", flush=True)
            await stop.wait()
            await self._shutdown()

        asyncio.run(main())

    @classmethod
    def main(cls, argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(description=f"Run {cls.__name__} standalone.")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0)
        parser.add_argument("--api-key", default=None, help="require this key")
        parser.add_argument("--tokens-per-second", type=float, default=None)
        parser.add_argument("--scenario", default=None, help="JSON object merged into the scenario")
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        srv = cls(host=args.host, port=args.port)
        if args.api_key:
            srv.scenario["api_key"] = args.api_key
        if args.tokens_per_second is not None:
            srv.scenario["tokens_per_second"] = args.tokens_per_second
        if args.scenario:
            srv.scenario.update(json.loads(args.scenario))
        srv.serve_forever()

    # -- helpers for subclasses ------------------------------------------------------------------

    def take_scenario(self) -> Scenario:
        """Snapshot the knobs for one request, consuming one `fail_times` credit."""
        with self._lock:
            sc = Scenario(self.scenario)
            n = sc.get("fail_times")
            if n is not None:
                if n > 0:
                    self.scenario["fail_times"] = n - 1
                else:
                    for key in self.fault_knobs:
                        sc[key] = self.DEFAULTS.get(key)
        return sc

    @staticmethod
    async def before_headers(sc: Scenario, resp: Responder) -> bool:
        """Apply the knobs that act before the status line; True when the request is over.

        `delay_before_headers` waits, then `hang_without_headers` holds the request until the
        client gives up: one place, so every fake makes a client's connect/read timeout fire alike.
        """
        if sc.delay_before_headers:
            await asyncio.sleep(sc.delay_before_headers)
        if sc.hang_without_headers:
            await resp.wait_peer_closed()
            return True
        return False

    @staticmethod
    async def wait_whole_answer(sc: Scenario, resp: Responder, n_tokens: int) -> bool:
        """Pace a non-streamed answer; True when the request is over.

        It waits as long as streaming its tokens would have taken, then a `reset_after_tokens` at
        any position drops the connection, since a whole answer has no token to break after.
        """
        delay = (sc.delay_before_first_token or 0) + (
            n_tokens / sc.tokens_per_second if sc.tokens_per_second else 0
        )
        if delay:
            await asyncio.sleep(delay)
        if sc.reset_after_tokens is not None:
            resp.abort(rst=bool(sc.reset_with_rst))
            return True
        return False

    @staticmethod
    async def break_stream(sc: Scenario, resp: Responder, i: int, malformed: bytes) -> bool:
        """Break a stream before token i as the knobs say; True when the stream is over.

        `malformed_after_tokens` writes the protocol's unparsable frame and the stream goes on;
        `reset_after_tokens` drops the connection; `stall_after_tokens` goes silent until the
        client leaves. Each protocol's fault knobs that end with its own frames stay in the fake.
        """
        if sc.malformed_after_tokens == i:
            await resp.write(malformed)
        if sc.reset_after_tokens == i:
            resp.abort(rst=bool(sc.reset_with_rst))
            return True
        if sc.stall_after_tokens == i:
            await resp.wait_peer_closed()
            return True
        return False

    def emit(self, key: Any, index: int) -> None:
        # list.append is atomic under the GIL, so emissions need no lock.
        if self.scenario.get("record_emissions", True):
            self.emissions.append(
                tuple.__new__(Emission, (key, index, time.time(), time.monotonic()))
            )

    def answer_tokens(self, sc: Scenario, default_answer: str) -> list[str]:
        if sc.get("tokens") is not None:
            tokens = [str(t) for t in sc["tokens"]]
        else:
            answer = sc.get("answer")
            tokens = tokenize(default_answer if answer is None else str(answer))
        if sc.get("big_token_bytes"):
            tokens.insert(min(1, len(tokens)), "B" * int(sc["big_token_bytes"]))
        return tokens

    async def run_tokens(
        self,
        resp: Responder,
        sc: Scenario,
        key: Any,
        frames: list[bytes],
        interrupt: Callable[[int], Awaitable[bool]],
        *,
        first: bytes | None = None,
        aborted: asyncio.Event | None = None,
    ) -> bool:
        """Write one pre-encoded frame per token at the scenario's pace.

        `interrupt(i)` applies the fault knobs due before token i (i == -1: aborted); it returns
        True when it ended the stream, and then so does this (returning False). This loop runs
        25k times a second in benchmarks, so it avoids per-token lookups and allocations.
        """
        stops = {int(v) for v in (sc.get(k) for k in STOP_KNOBS) if v is not None}
        tps = float(sc.get("tokens_per_second") or 0)
        write = resp.write
        record = bool(sc.get("record_emissions", True))
        append = self.emissions.append
        now, wall = time.monotonic, time.time
        count = len(frames)
        t0 = now()
        for i in range(count + 1):
            if (i in stops or (aborted is not None and aborted.is_set())) and await interrupt(i):
                return False
            if i == count:
                return True
            if tps and i:
                # Scheduled from t0, so a late wake-up does not push every later token back.
                delay = t0 + i / tps - now()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if aborted is not None and aborted.is_set():
                        await interrupt(-1)
                        return False
            if i == 0 and first is not None:
                await write(first)
            await write(frames[i])
            if record:
                append(tuple.__new__(Emission, (key, i, wall(), now())))
        return True

    @staticmethod
    def heartbeat(resp: Responder, interval: float | None, frame: bytes) -> asyncio.Task | None:
        if not interval:
            return None

        async def beat() -> None:
            with contextlib.suppress(ClientGone, ConnectionError):
                while True:
                    await asyncio.sleep(interval)
                    await resp.write(frame)

        return asyncio.get_running_loop().create_task(beat())

    async def handle(self, req: Request, resp: Responder) -> None:
        raise NotImplementedError

    async def handle_control(self, req: Request, resp: Responder) -> bool:
        """Subclass hook for extra `/__fake__/...` endpoints; return True when handled."""
        return False

    # -- internals -------------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._connection,
            self.host,
            self.port,
            limit=MAX_HEADER_BYTES,
            backlog=2048,
            ssl=self.ssl_context,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        self._connections_seen += 1
        connection = self._connections_seen
        resp: Responder | None = None
        try:
            while True:
                idle_limit = self.scenario.get("close_idle_after")
                if resp is not None and idle_limit is not None:
                    # Servers drop idle keep-alive sockets without notice; clients must cope.
                    try:
                        req = await asyncio.wait_for(self._read_request(reader), idle_limit)
                    except TimeoutError:
                        break
                else:
                    req = await self._read_request(reader)
                if req is None:
                    break
                req.connection = connection
                sc = self.scenario
                resp = Responder(
                    reader,
                    writer,
                    keep_alive=req.keep_alive,
                    split_bytes=sc.get("split_bytes"),
                    split_seed=sc.get("split_seed") or 0,
                )
                if req.path.startswith("/__fake__/"):
                    await self._control(req, resp)
                else:
                    self._record(req)
                    await self.handle(req, resp)
                if resp.closed or not req.keep_alive:
                    break
        except (ClientGone, ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except _BadRequest as exc:
            with contextlib.suppress(Exception):
                await Responder(reader, writer, keep_alive=False).send(exc.status, exc.message)
        except Exception:
            log.exception("%s: handler failed", self.name)
            if resp is not None and not resp.started:
                with contextlib.suppress(Exception):
                    await resp.send(500, {"error": "fake server bug"})
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            raise _BadRequest(431, "Request Header Fields Too Large") from None
        lines = head.decode("latin-1").strip("\r\n").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise _BadRequest(400, "Bad Request") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        else:
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                raise _BadRequest(413, "Payload Too Large")
            body = await reader.readexactly(length) if length else b""
        return Request(method.upper(), target, version, headers, body)

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest(413, "Payload Too Large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def _record(self, req: Request) -> None:
        body: Any = req.json if req.json is not None else req.body
        with self._lock:
            req.index = len(self._requests)
            self._requests.append(
                RecordedRequest(
                    req.index,
                    req.method,
                    req.path,
                    req.query,
                    dict(req.headers),
                    body,
                    req.body,
                    req.time,
                    req.connection,
                )
            )

    async def _control(self, req: Request, resp: Responder) -> None:
        path = req.path.rstrip("/")
        if path == "/__fake__/scenario" and req.method == "POST":
            if not isinstance(req.json, dict):
                await resp.send(400, {"error": "JSON object expected"})
                return
            self.scenario.update(req.json)
            await resp.send(200, dict(self.scenario))
        elif path == "/__fake__/scenario":
            await resp.send(200, dict(self.scenario))
        elif path == "/__fake__/reset" and req.method == "POST":
            self.reset()
            await resp.send(200, {"ok": True})
        elif path == "/__fake__/requests":
            await resp.send(200, [r.as_dict() for r in self.requests])
        elif path == "/__fake__/emissions":
            # ?since=N returns emissions[N:], so a benchmark can poll without re-reading all.
            since = int(parse_qs(req.query).get("since", ["0"])[0])
            await resp.send(200, [list(e) for e in self.emissions[since:]])
        elif not await self.handle_control(req, resp):
            await resp.send(404, {"error": "unknown control endpoint"})


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
