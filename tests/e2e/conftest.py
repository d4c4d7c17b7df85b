"""The real stack for end-to-end tests: Daphne and a Celery worker as separate processes.

Both point at pytest's test database and the test Redis database; tests use
`transactional_db` so what they create is committed and visible to those processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class Stack:
    base_url: str
    ws_url: str
    worker_log: Path
    daphne_log: Path
    env: dict


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker) -> Stack:
    ARTIFACTS.mkdir(exist_ok=True)
    env = os.environ.copy()
    env.update(
        {
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            "SECRET_KEY": settings.SECRET_KEY,
            "BUILTIN_TOKENS_PER_SECOND": "0",
            "TURN_HEARTBEAT_SECONDS": "1",
            "UPSTREAM_TRUST_ENV": "false",
            "DATABASE_CONN_MAX_AGE": "0",
            # Fuzzing sends hundreds of requests from one IP: lift the global limits (per-bot
            # message limits still apply, and the limits have their own tests).
            "SESSION_CREATE_RATE_LIMIT": "100000/minute",
            "AUTH_TOKEN_RATE_LIMIT": "100000/minute",
            "MESSAGE_RATE_LIMIT_PER_MINUTE": "100000",
            "CHAT_SYNC_TIMEOUT_SECONDS": "5",
            "IMAGE_UPLOAD_RATE_LIMIT": "100000/minute",
        }
    )
    port = _free_port()
    daphne_log = ARTIFACTS / "e2e-daphne.log"
    worker_log = ARTIFACTS / "e2e-worker.log"
    daphne = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-e",
            f"tcp:port={port}:interface=127.0.0.1:backlog=1024",
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=daphne_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "turns,celery,analytics",
            "-P",
            "threads",
            "-c",
            "40",
            "-n",
            f"e2e-{port}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=worker_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(lambda: _port_open(port), 30, "Daphne", daphne_log)
        _wait_for(lambda: b" ready." in worker_log.read_bytes(), 60, "Celery worker", worker_log)
        yield Stack(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", worker_log, daphne_log, env
        )
    finally:
        for proc in (daphne, worker):
            proc.terminate()
        for proc in (daphne, worker):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(autouse=True)
def _turns_settle(transactional_db):
    """Let the worker finish writing before the test database is truncated under it."""
    yield
    from conversations.models import Turn

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not Turn.objects.filter(status__in=["pending", "running"]).exists():
            break
        time.sleep(0.1)
    time.sleep(0.2)
