"""`./run` (start the product), `./run test` (run the suite): the supervisor behind the run script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from devstack.asgi import asgi_processes, daphne_command, listen_sockets
from devstack.services import ensure_services

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
PY = sys.executable


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def celery_worker_cmd(name: str, queues: str, pool: str, concurrency: int) -> list[str]:
    return [
        PY,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-n",
        f"{name}@%h",
        "-Q",
        queues,
        "-P",
        pool,
        "-c",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-mingle",
        "--without-gossip",
    ]


def serve() -> int:
    services = ensure_services(DATA)
    try:
        for note in services.notes:
            print(f"run: {note}")
        manage("migrate", "--noinput", "-v", "0")
        fake_flowise = os.environ.get("DEMO_FAKE_FLOWISE", "true").lower() not in (
            "0",
            "false",
            "no",
        )
        fake_port = os.environ.get("FAKE_FLOWISE_PORT", "8101")
        fake_url = f"http://127.0.0.1:{fake_port}" if fake_flowise else ""
        port = os.environ.get("PORT", "8000")
        host = os.environ.get("HOST", "127.0.0.1")
        manage(
            "load_demo",
            "--origin",
            f"http://{host}:{port}",
            *(["--flowise-url", fake_url] if fake_flowise else []),
        )
        manage("ensure_admin")
        port = os.environ.get("PORT", "8000")
        host = os.environ.get("HOST", "127.0.0.1")
        turn_threads = os.environ.get("TURN_WORKER_CONCURRENCY", "50")
        flower_port = os.environ.get("FLOWER_PORT", "5555")
        procs: dict[str, subprocess.Popen] = {}
        # One or more Daphne processes sharing the port (devstack/asgi.py).
        sockets = listen_sockets(host, int(port), asgi_processes())
        listeners = {
            ("daphne" if len(sockets) == 1 else f"daphne-{n}"): sock
            for n, sock in enumerate(sockets, 1)
        }
        commands = {
            **{name: daphne_command(sock) for name, sock in listeners.items()},
            "worker-turns": celery_worker_cmd("turns", "turns", "threads", int(turn_threads)),
            "worker-background": celery_worker_cmd(
                "background", "analytics,maintenance,celery", "threads", 4
            ),
            "flower": [
                PY,
                "-m",
                "celery",
                "-A",
                "config",
                "flower",
                f"--address={host}",
                f"--port={flower_port}",
                "--loglevel=WARNING",
            ],
            "beat": [
                PY,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                # Schedules live in the database, editable in the admin (docs/operations.md).
                "-S",
                "monitoring.beat:DatabaseScheduler",
                "--loglevel",
                "INFO",
            ],
        }
        if fake_flowise:
            # A local stand-in for Flowise so `demo-flowise` streams with no AI service at all.
            commands["fake-flowise"] = [
                PY,
                "-m",
                "tests.fakes.flowise",
                "--port",
                fake_port,
                "--tokens-per-second",
                "15",
            ]
        for name, cmd in commands.items():
            procs[name] = subprocess.Popen(
                cmd,
                cwd=ROOT,
                start_new_session=True,
                pass_fds=[listeners[name].fileno()] if name in listeners else [],
            )
        for sock in sockets:  # the children hold them now
            sock.close()
        base = f"http://{host}:{port}"
        print(
            "\nrun: the product is up\n"
            f"  Demo chat:    {base}/chat/demo/  and  {base}/chat/demo-flowise/\n"
            f"  Admin:        {base}/admin/\n"
            f"  API docs:     {base}/api/docs/\n"
            f"  Demo config:  {base}/api/conversation-config/demo\n"
            f"  Health:       {base}/health\n"
            f"  Flower:       http://{host}:{flower_port}/  (Celery workers and tasks)\n"
            + (
                f"  Demo bots:    demo (builtin), demo-flowise (fake Flowise at {fake_url})\n"
                if fake_flowise
                else "  Demo bot:     demo (builtin)\n"
            )
            + "  Stop with Ctrl-C.\n",
            flush=True,
        )
        return supervise(procs)
    finally:
        services.stop()


def supervise(procs: dict[str, subprocess.Popen]) -> int:
    stopping = {"signal": None}

    def on_signal(signum, _frame):
        stopping["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    exit_code = 0
    while stopping["signal"] is None:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"run: {name} exited with {proc.returncode}; stopping everything", flush=True)
                stopping["signal"] = "child"
                exit_code = 1
                break
        time.sleep(0.3)
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for name, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"run: {name} did not stop in time; killing it", flush=True)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print("run: stopped", flush=True)
    return exit_code


def redis_test_url(url: str, db: int) -> str:
    """The same Redis server, another database: the suite flushes 15, so never the live data."""
    parsed = urllib.parse.urlparse(url)
    return urllib.parse.urlunparse(parsed._replace(path=f"/{db}"))


def test(args: list[str]) -> int:
    services = ensure_services(DATA, private_redis=True)
    # A test database of this run's own, so parallel runs on one server do not collide.
    os.environ.setdefault("TEST_DATABASE_NAME", f"test_chatbot_{os.getpid()}")
    # The Celery broker gets its own database: kombu caches queue bindings it has declared,
    # so flushing them between tests would make later tasks vanish.
    os.environ["CELERY_BROKER_URL"] = redis_test_url(os.environ["REDIS_URL"], 14)
    os.environ["REDIS_URL"] = redis_test_url(os.environ["REDIS_URL"], 15)
    os.environ["TESTING"] = "1"
    try:
        for note in services.notes:
            print(f"run test: {note}", flush=True)
        result = subprocess.run([PY, "-m", "pytest", *args], cwd=ROOT)
        return result.returncode
    finally:
        services.stop()


def main(argv: list[str]) -> int:
    if not argv:
        return serve()
    command, rest = argv[0], argv[1:]
    if command == "test":
        return test(rest)
    if command == "manage":
        services = ensure_services(DATA)
        try:
            return subprocess.run([PY, "manage.py", *rest], cwd=ROOT).returncode
        finally:
            services.stop()
    if command == "bench":
        # The benchmark starts its own embedded PostgreSQL and Redis (bench/stack.py).
        return subprocess.run([PY, "-m", "bench", *rest], cwd=ROOT).returncode
    print(
        f"usage: ./run [test [pytest args] | manage <command> | bench [scenarios] [options]]; "
        f"unknown: {command}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
