"""The real stack for end-to-end tests: Daphne and a Celery worker as separate processes.

Both point at pytest's test database and the test Redis database; tests use
`transactional_db` so what they create is committed and visible to those processes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from devstack.services import free_port, port_open
from devstack.workers import celery_worker_cmd

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class Stack:
    base_url: str
    ws_url: str
    worker_log: Path
    daphne_log: Path
    env: dict


def _database_url() -> str:
    db = connection.settings_dict
    host = db["HOST"] or "127.0.0.1"
    user = urllib.parse.quote(db["USER"] or "postgres")
    password = f":{urllib.parse.quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    if host.startswith("/"):
        return f"postgres://{user}{password}@/{db['NAME']}?host={urllib.parse.quote(host)}"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


def _wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start in {timeout}s; see {log}:\n{log.read_text()[-3000:]}")


def stack_env(**extra: str) -> dict[str, str]:
    """The environment of a test stack's processes: this run's test database, Redis and keys."""
    env = os.environ.copy()
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        {
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            "SECRET_KEY": settings.SECRET_KEY,
            "TURN_HEARTBEAT_SECONDS": "1",
            "UPSTREAM_TRUST_ENV": "false",
            **extra,
        }
    )
    return env


def spawn_daphne(port: int, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "config.daphne",
            "-e",
            f"tcp:port={port}:interface=127.0.0.1:backlog=1024",
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def spawn_worker(name: str, queues: str, concurrency: int, env: dict, log: Path):
    return subprocess.Popen(
        celery_worker_cmd(name, queues, "threads", concurrency),
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_ready(port: int, daphne_log: Path, worker_log: Path) -> None:
    _wait_for(lambda: port_open(port), 30, "Daphne", daphne_log)
    _wait_for(lambda: b" ready." in worker_log.read_bytes(), 60, "Celery worker", worker_log)


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def running_stack(env: dict, logs: Path, name: str, queues: str, concurrency: int):
    """Daphne and a Celery worker as separate processes, logging to <logs>/<name>-*-<port>.log."""
    port = free_port()
    daphne_log = logs / f"{name}-daphne-{port}.log"
    worker_log = logs / f"{name}-worker-{port}.log"
    daphne = spawn_daphne(port, env, daphne_log)
    worker = spawn_worker(f"{name}-{port}", queues, concurrency, env, worker_log)
    try:
        wait_ready(port, daphne_log, worker_log)
        yield Stack(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", worker_log, daphne_log, env
        )
    finally:
        stop(daphne, worker)


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker) -> Stack:
    ARTIFACTS.mkdir(exist_ok=True)
    env = stack_env(
        BUILTIN_TOKENS_PER_SECOND="0",
        # Fuzzing sends hundreds of requests from one IP: lift the global limits (per-bot
        # message limits still apply, and the limits have their own tests).
        SESSION_CREATE_RATE_LIMIT="100000/minute",
        AUTH_TOKEN_RATE_LIMIT="100000/minute",
        MESSAGE_RATE_LIMIT_PER_MINUTE="100000",
        CHAT_SYNC_TIMEOUT_SECONDS="5",
        IMAGE_UPLOAD_RATE_LIMIT="100000/minute",
    )
    with running_stack(env, ARTIFACTS, "e2e", "turns,celery,analytics", 40) as running:
        yield running


def turns_settle(timeout: float = 30) -> None:
    """Wait until no turn is pending or running (then a moment for the worker's last writes), so
    a transactional test's teardown does not truncate the tables under a worker still writing.
    The e2e, browser and reliability suites' settle fixtures all end with this."""
    from conversations.models import Turn

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Turn.objects.filter(status__in=["pending", "running"]).exists():
            break
        time.sleep(0.1)
    time.sleep(0.2)


@pytest.fixture(autouse=True)
def _turns_settle(transactional_db):
    """Let the worker finish writing before the test database is truncated under it."""
    yield
    turns_settle()
