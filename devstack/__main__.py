"""`./run` (start the product), `./run test` (run the suite), `./run example` (the README's
first API calls with this checkout's widget key): what the run script hands over to."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from devstack.asgi import asgi_processes, daphne_command, listen_sockets
from devstack.example import base_url
from devstack.services import ensure_services
from devstack.supervisor import (
    Part,
    StartProblem,
    Supervisor,
    env_port,
    health_problem,
    http_answers,
    port_problem,
    say,
)
from devstack.workers import celery_worker_cmd

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
LOGS = DATA / "logs"
PY = sys.executable


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def flower_address() -> str:
    """Flower shows every task's arguments: loopback unless FLOWER_HOST says otherwise, whatever
    HOST is (a HOST=0.0.0.0 that opens the widget to a network must not publish Flower too)."""
    return os.environ.get("FLOWER_HOST", "").strip() or "127.0.0.1"


def flower_part(*, host: str, port: int) -> Part:
    """Flower behind a login: FLOWER_BASIC_AUTH ("user:password"; ./run generates one into
    .data/local.env) reaches Flower through its environment, where Flower reads it itself, so
    the password is not in the command line every local user can list."""
    basic_auth = os.environ.get("FLOWER_BASIC_AUTH", "").strip()
    if ":" not in basic_auth:
        raise StartProblem('FLOWER_BASIC_AUTH must be "user:password"; Flower never runs open.')
    url = f"{base_url(host, port)}/"
    return Part(
        "flower",
        [
            PY,
            "-m",
            "celery",
            "-A",
            "config",
            "flower",
            f"--address={host}",
            f"--port={port}",
            "--loglevel=WARNING",
        ],
        essential=False,
        label="Flower",
        log=LOGS / "flower.log",
        ready=lambda: http_answers(f"{url}healthcheck"),
        env={"FLOWER_BASIC_AUTH": basic_auth},
    )


def flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    return default if not raw else raw not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class PortPlan:
    """Where each part listens, decided before anything starts; a `*_problem` says why that
    optional part is left out (its port is taken), so the run goes on without it."""

    host: str
    port: int
    flower_host: str
    flower_port: int
    flower_problem: str | None
    fake_flowise: bool
    fake_port: int
    fake_problem: str | None
    fake_openai: bool
    openai_port: int
    openai_problem: str | None

    @property
    def base(self) -> str:
        return base_url(self.host, self.port)

    @property
    def flower_url(self) -> str:
        return f"{base_url(self.flower_host, self.flower_port)}/"

    @property
    def fake_url(self) -> str:
        return f"http://127.0.0.1:{self.fake_port}" if self.fake_flowise else ""

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.openai_port}/v1"


def plan_ports() -> PortPlan:
    """Before anything starts: a busy web port ends the run in one line; a busy port of an
    optional part only skips that part (said once, here)."""
    host = os.environ.get("HOST", "127.0.0.1").strip() or "127.0.0.1"
    port = env_port("PORT", 8000)
    flower_port = env_port("FLOWER_PORT", 5555)
    flower_host = flower_address()
    fake_port = env_port("FAKE_FLOWISE_PORT", 8101)
    fake_flowise = flag("DEMO_FAKE_FLOWISE", True)
    problem = port_problem(host, port, "PORT")
    if problem:
        raise StartProblem(problem)
    flower_problem = port_problem(flower_host, flower_port, "FLOWER_PORT", avoid=(port,))
    if flower_problem:
        say(f"Flower skipped: {flower_problem}. The product runs on without it.")
    fake_problem = None
    if fake_flowise:
        fake_problem = port_problem(
            "127.0.0.1", fake_port, "FAKE_FLOWISE_PORT", avoid=(port, flower_port)
        )
        if fake_problem:
            say(
                f"the fake Flowise skipped: {fake_problem}. The demo-flowise bot needs it; "
                "the rest runs on without it."
            )
    # An OpenAI-compatible stand-in, so a newcomer can build a bot in the admin with no AI
    # service at all (README, "Build a bot in the admin"). It takes any API key.
    openai_port = env_port("FAKE_OPENAI_PORT", 8102)
    fake_openai = flag("DEMO_FAKE_OPENAI", True)
    openai_problem = None
    if fake_openai:
        openai_problem = port_problem(
            "127.0.0.1",
            openai_port,
            "FAKE_OPENAI_PORT",
            avoid=(port, flower_port, *((fake_port,) if fake_flowise else ())),
        )
        if openai_problem:
            say(f"the fake OpenAI server skipped: {openai_problem}. The rest runs on without it.")
    return PortPlan(
        host=host,
        port=port,
        flower_host=flower_host,
        flower_port=flower_port,
        flower_problem=flower_problem,
        fake_flowise=fake_flowise,
        fake_port=fake_port,
        fake_problem=fake_problem,
        fake_openai=fake_openai,
        openai_port=openai_port,
        openai_problem=openai_problem,
    )


def prepare_database(plan: PortPlan) -> None:
    """Migrations, then the demo bots (their origin and the fake Flowise's address are this
    run's), then the admin user: the product answers usefully as soon as Daphne does."""
    manage("migrate", "--noinput", "-v", "0")
    manage(
        "load_demo",
        "--origin",
        f"http://{plan.host}:{plan.port}",
        *(["--flowise-url", plan.fake_url] if plan.fake_flowise else []),
    )
    manage("ensure_admin")


def listen(plan: PortPlan) -> list[socket.socket]:
    """One or more Daphne processes share the port (devstack/asgi.py); the port may have been
    taken since plan_ports looked, which is the same one-line problem."""
    try:
        return listen_sockets(plan.host, plan.port, asgi_processes())
    except OSError:
        raise StartProblem(
            port_problem(plan.host, plan.port, "PORT")
            or f"cannot listen on {plan.host}:{plan.port}"
        ) from None


def daphne_parts(sockets: list[socket.socket], base: str) -> list[Part]:
    """A Daphne per socket; only the first is asked for /health: every process serves the
    same application on the same port."""
    single = len(sockets) == 1
    return [
        Part(
            "daphne" if single else f"daphne-{n}",
            daphne_command(sock),
            label="Daphne" if single else f"Daphne {n}",
            pass_fds=(sock.fileno(),),
            ready=(lambda: health_problem(f"{base}/health")) if n == 1 else None,
        )
        for n, sock in enumerate(sockets, 1)
    ]


def celery_parts() -> list[Part]:
    """The turns worker (many threads: each turn mostly waits on its AI service), the
    background worker, and beat."""
    turn_threads = os.environ.get("TURN_WORKER_CONCURRENCY", "50")
    return [
        Part(
            "worker-turns",
            celery_worker_cmd("turns", "turns", "threads", int(turn_threads)),
            label="the turns worker",
        ),
        Part(
            "worker-background",
            celery_worker_cmd("background", "analytics,maintenance,celery", "threads", 4),
            label="the background worker",
        ),
        Part(
            "beat",
            [
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
            label="Celery beat",
        ),
    ]


def fake_server_part(*, name: str, module: str, port: int, label: str, ready_url: str) -> Part:
    """A stand-in AI server from tests/fakes/, optional, logging to its own file."""
    return Part(
        name,
        [PY, "-m", module, "--port", str(port), "--tokens-per-second", "15"],
        essential=False,
        label=label,
        log=LOGS / f"{name}.log",
        ready=lambda: http_answers(ready_url),
    )


def optional_parts(plan: PortPlan) -> list[Part]:
    """Flower and the fake AI servers, each unless its port is taken (or, for Flower, its
    login is missing): the product runs on without any of them."""
    parts = []
    if not plan.flower_problem:
        try:
            parts.append(flower_part(host=plan.flower_host, port=plan.flower_port))
        except StartProblem as exc:
            say(f"Flower skipped: {exc} The product runs on without it.")
    if plan.fake_flowise and not plan.fake_problem:
        # A local stand-in for Flowise so `demo-flowise` streams with no AI service at all.
        parts.append(
            fake_server_part(
                name="fake-flowise",
                module="tests.fakes.flowise",
                port=plan.fake_port,
                label="the fake Flowise",
                ready_url=f"{plan.fake_url}/",
            )
        )
    if plan.fake_openai and not plan.openai_problem:
        parts.append(
            fake_server_part(
                name="fake-openai",
                module="tests.fakes.openai",
                port=plan.openai_port,
                label="the fake OpenAI server",
                ready_url=f"{plan.openai_url}/models",
            )
        )
    return parts


def print_addresses(plan: PortPlan, parts: list[Part]) -> None:
    """The addresses a person opens, naming only the optional parts that did come up."""
    base = plan.base
    up = {part.name for part in parts if not part.skipped}
    flowise_up = "fake-flowise" in up
    lines = [
        "",
        "run: the product is up",
        f"  Demo chat:    {base}/chat/demo/"
        + (f"  and  {base}/chat/demo-flowise/" if flowise_up else ""),
        f"  Admin:        {base}/admin/",
        f"  API docs:     {base}/api/docs/  and  {base}/api/redoc/",
        "  Try the API:  ./run example  (prints curl calls with the demo bot's widget key)",
        f"  Health:       {base}/health",
    ]
    if "flower" in up:
        lines.append(
            f"  Flower:       {plan.flower_url}  (Celery workers and tasks; sign in with "
            "FLOWER_BASIC_AUTH from .data/local.env)"
        )
    lines.append(
        f"  Demo bots:    demo (builtin), demo-flowise (fake Flowise at {plan.fake_url})"
        if flowise_up
        else "  Demo bot:     demo (builtin)"
    )
    if "fake-openai" in up:
        lines.append(
            f"  Fake OpenAI:  {plan.openai_url}  (build a bot against it in the admin; any API key)"
        )
    lines.append("  Stop with Ctrl-C.\n")
    print("\n".join(lines), flush=True)


def serve() -> int:
    """`./run`: decide the ports, start PostgreSQL and Redis, ready the database, then run
    every part under one supervisor and print the addresses once everything answers."""
    # The demo bots talk to fake AI servers on 127.0.0.1 (outbound/guard.py).
    os.environ.setdefault("ALLOW_PRIVATE_NETWORK_URLS", "true")
    plan = plan_ports()
    services = ensure_services(DATA)
    try:
        for note in services.notes:
            say(note)
        prepare_database(plan)
        sockets = listen(plan)
        parts = [*daphne_parts(sockets, plan.base), *celery_parts(), *optional_parts(plan)]
        supervisor = Supervisor(parts, ROOT)
        supervisor.install_signal_handlers()
        try:
            supervisor.start()
        finally:
            for sock in sockets:  # the children hold them now
                sock.close()
        say("starting; the addresses follow once everything answers")
        if supervisor.wait_ready():
            print_addresses(plan, parts)
        return supervisor.watch()
    finally:
        services.stop()


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
    # The fakes in tests/fakes/ listen on 127.0.0.1; guard tests turn it off where they test it.
    os.environ.setdefault("ALLOW_PRIVATE_NETWORK_URLS", "true")
    try:
        for note in services.notes:
            print(f"run test: {note}", flush=True)
        result = subprocess.run([PY, "-m", "pytest", *args], cwd=ROOT)
        return result.returncode
    finally:
        services.stop()


def example() -> int:
    services = ensure_services(DATA)
    try:
        from devstack.example import main as print_example

        return print_example()
    finally:
        services.stop()


def main(argv: list[str]) -> int:
    try:
        return dispatch(argv)
    except StartProblem as problem:
        print(f"run: {problem}", file=sys.stderr, flush=True)
        return 1
    except subprocess.CalledProcessError as exc:
        command = " ".join(str(part) for part in exc.cmd[1:])
        print(f"run: `{command}` failed (exit {exc.returncode}; see above)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("run: stopped", file=sys.stderr)
        return 130


def dispatch(argv: list[str]) -> int:
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
    if command == "example":
        return example()
    if command == "bench":
        # The benchmark starts its own embedded PostgreSQL and Redis (bench/stack.py).
        return subprocess.run([PY, "-m", "bench", *rest], cwd=ROOT).returncode
    print(
        "usage: ./run [test [pytest args] | manage <command> | example | bench [scenarios] "
        f"[options]]; "
        f"unknown: {command}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
