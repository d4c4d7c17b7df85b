#!/usr/bin/env python3
"""The container's entry point: one role per container, the same processes `./run` starts
(devstack/__main__.py), each as a plain process that replaces this one (signals reach it).

    entrypoint.py web                 migrations (under a PostgreSQL lock), then Daphne
    entrypoint.py worker-turns        Celery worker for the `turns` queue (threads)
    entrypoint.py worker-background   Celery worker for analytics, maintenance, celery
    entrypoint.py beat                Celery beat with the database scheduler (run exactly one)
    entrypoint.py flower              Flower behind FLOWER_BASIC_AUTH (refuses to run open)
    entrypoint.py migrate             migrations only, then exit
    entrypoint.py healthcheck         the image's HEALTHCHECK: checks the role this container runs
    entrypoint.py <anything else>     run as given (e.g. `python manage.py shell`)

`--print` shows the command a role would run instead of running it. Settings come from the
environment as everywhere (README "Configuration"; docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import urllib.error
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().parent.parent
PY = sys.executable
ROLE_FILE = Path(os.environ.get("CONTAINER_ROLE_FILE", "/tmp/container-role"))
ROLES = ("web", "worker-turns", "worker-background", "beat", "flower", "migrate")
# PostgreSQL advisory lock key for migrations: several web containers starting at once run
# them one after the other (the later ones find nothing to do).
MIGRATE_LOCK = 0x43484154424F54  # "CHATBOT"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def celery_worker(name: str, queues: str, concurrency: str) -> list[str]:
    return [
        PY, "-m", "celery", "-A", "config", "worker",
        "-n", f"{name}@%h", "-Q", queues, "-P", "threads", "-c", concurrency,
        "--loglevel", _env("CELERY_LOG_LEVEL", "INFO"), "--without-mingle", "--without-gossip",
    ]  # fmt: skip


def command_for(role: str) -> list[str]:
    """The process a role runs (what `./run` starts for it)."""
    if role == "web":
        port = _env("PORT", "8000")
        backlog = _env("LISTEN_BACKLOG", "2048")
        return [
            PY, "-m", "config.daphne", "-e", f"tcp:port={port}:interface=0.0.0.0:backlog={backlog}",
            "config.asgi:application",
        ]  # fmt: skip
    if role == "worker-turns":
        return celery_worker("turns", "turns", _env("TURN_WORKER_CONCURRENCY", "50"))
    if role == "worker-background":
        return celery_worker(
            "background", "analytics,maintenance,celery", _env("BACKGROUND_WORKER_CONCURRENCY", "4")
        )
    if role == "beat":
        return [
            PY, "-m", "celery", "-A", "config", "beat", "-S", "monitoring.beat:DatabaseScheduler",
            "--loglevel", _env("CELERY_LOG_LEVEL", "INFO"), "--pidfile=",
        ]  # fmt: skip
    if role == "flower":
        return [
            PY, "-m", "celery", "-A", "config", "flower", "--address=0.0.0.0",
            f"--port={_env('FLOWER_PORT', '5555')}", "--loglevel=WARNING",
            *([f"--url_prefix={os.environ['FLOWER_URL_PREFIX']}"]
              if os.environ.get("FLOWER_URL_PREFIX") else []),
        ]  # fmt: skip
    if role == "migrate":
        return [PY, str(APP / "manage.py"), "migrate", "--noinput"]
    raise ValueError(role)


def migrate() -> None:
    """`migrate --noinput` under an advisory lock, in this process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(APP))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK])
    try:
        call_command("migrate", "--noinput", verbosity=1)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATE_LOCK])
        connection.close()


def healthcheck() -> int:
    """0 when this container's role answers: web and flower over HTTP, a worker to a ping."""
    role = ROLE_FILE.read_text().strip() if ROLE_FILE.exists() else "web"
    try:
        if role == "web":
            # As the proxy would ask: a host Django serves, over TLS (PRODUCTION redirects
            # plain http to https, and /health must not follow that).
            host = _env("ALLOWED_HOSTS", "localhost").split(",")[0].strip().lstrip(".*")
            request = urllib.request.Request(
                f"http://127.0.0.1:{_env('PORT', '8000')}/health",
                headers={"Host": host or "localhost", "X-Forwarded-Proto": "https"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return 0 if response.status == 200 else 1
            except urllib.error.HTTPError as exc:
                # 503: Django answers but a dependency is down. The container itself is fine
                # (restarting it would not help); /health and /metrics say which dependency.
                return 0 if exc.code == 503 else 1
        if role == "flower":
            url = f"http://127.0.0.1:{_env('FLOWER_PORT', '5555')}/healthcheck"
            with urllib.request.urlopen(url, timeout=5) as response:
                return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError):
        return 1
    if role in ("worker-turns", "worker-background"):
        import socket
        import subprocess

        name = f"{role.removeprefix('worker-')}@{socket.gethostname()}"
        ping = [PY, "-m", "celery", "-A", "config", "inspect", "ping", "-d", name, "-t", "5"]
        return subprocess.run(ping, cwd=APP, capture_output=True, timeout=30).returncode
    return 0  # beat: running is all there is to check (its job runs show in /metrics)


def main(argv: list[str]) -> int:
    args = list(argv)
    dry_run = "--print" in args
    if dry_run:
        args.remove("--print")
    role = args[0] if args else "web"
    if role == "healthcheck":
        return healthcheck()
    if role not in ROLES:
        if dry_run:
            print(shlex.join(args))
            return 0
        os.execvp(args[0], args)
    if role == "flower" and ":" not in os.environ.get("FLOWER_BASIC_AUTH", ""):
        print('FLOWER_BASIC_AUTH must be "user:password": Flower never runs open.', file=sys.stderr)
        return 2
    command = command_for(role)
    if dry_run:
        print(shlex.join(command))
        return 0
    if role == "migrate":
        migrate()
        return 0
    if role == "web" and _env("MIGRATE_ON_START", "true").lower() in ("1", "true", "yes", "on"):
        migrate()
    with contextlib.suppress(OSError):  # a read-only /tmp: the health check assumes web
        ROLE_FILE.write_text(role)
    os.chdir(APP)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
