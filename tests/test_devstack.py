"""What `./run` tells a newcomer, and how it treats its parts (devstack/), without the product."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import install
from devstack.example import base_url, pick_origin
from devstack.services import free_port
from devstack.supervisor import (
    Part,
    StartProblem,
    Supervisor,
    env_port,
    health_problem,
    http_answers,
    port_problem,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def listening():
    """A port on 127.0.0.1 that something listens on, as another program would."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


# --- ports ---------------------------------------------------------------------------------------


def test_a_busy_port_is_one_line_naming_the_variable_and_a_free_port_to_set(listening):
    problem = port_problem("127.0.0.1", listening, "PORT")
    match = re.fullmatch(
        rf"port {listening} on 127\.0\.0\.1 is taken; set PORT=(\d+) \(or stop what uses it\)",
        problem or "",
    )
    assert match, problem
    suggested = int(match.group(1))
    assert suggested > listening
    with socket.socket() as sock:  # the suggestion can really be listened on
        sock.bind(("127.0.0.1", suggested))


def test_a_port_shared_with_so_reuseport_still_counts_as_taken():
    # Daphne's sockets set SO_REUSEPORT; a second ./run must not quietly share the first's port.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        port = sock.getsockname()[1]
        assert "is taken; set FLOWER_PORT=" in port_problem("127.0.0.1", port, "FLOWER_PORT")
    finally:
        sock.close()


def test_a_free_port_has_no_problem():
    assert port_problem("127.0.0.1", free_port(), "PORT") is None


def test_a_port_another_part_of_run_uses_counts_as_taken():
    port = free_port()
    problem = port_problem("127.0.0.1", port, "FLOWER_PORT", avoid=(port,))
    assert problem and problem.startswith(f"port {port} on 127.0.0.1 is taken; set FLOWER_PORT=")


def test_a_host_that_is_not_this_machine_says_which_host_to_set():
    # 192.0.2.0/24 is reserved for documentation: never an address of this machine.
    assert port_problem("192.0.2.1", 8000, "PORT") == (
        "HOST=192.0.2.1 is not an address of this machine; set HOST=127.0.0.1"
    )
    assert "set HOST=127.0.0.1" in port_problem("::1", 8000, "PORT")


@pytest.mark.parametrize("raw", ["eighty", "0", "70000", "80.5"])
def test_a_port_variable_that_is_no_port_number_is_named(monkeypatch, raw):
    monkeypatch.setenv("PORT", raw)
    with pytest.raises(StartProblem, match=rf"^PORT={re.escape(raw)} is not a port number; set"):
        env_port("PORT", 8000)


def test_an_unset_port_variable_takes_its_default(monkeypatch):
    monkeypatch.delenv("FLOWER_PORT", raising=False)
    assert env_port("FLOWER_PORT", 5555) == 5555


def test_run_with_a_busy_port_prints_one_line_and_exits_before_starting_anything(listening):
    env = {**os.environ, "PORT": str(listening), "HOST": "127.0.0.1"}
    started = time.monotonic()
    result = subprocess.run(
        ["./run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""  # nothing started, no migrations, no URLs
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(
        rf"run: port {listening} on 127\.0\.0\.1 is taken; set PORT=\d+ \(or stop what uses it\)",
        lines[0],
    )
    assert time.monotonic() - started < 60


# --- parts: optional ones are skipped, essential ones stop everything ------------------------------


def _part(name: str, code: str, *, essential: bool = True, tmp_path: Path, **kw) -> Part:
    return Part(
        name,
        [sys.executable, "-c", code],
        essential=essential,
        label=name,
        log=(tmp_path / f"{name}.log") if not essential else None,
        **kw,
    )


SLEEPER = "import time; time.sleep(60)"
BROKEN = "import sys; print('OSError: [Errno 98] Address already in use'); sys.exit(3)"


def test_an_optional_part_that_exits_early_is_reported_in_one_line_and_skipped(tmp_path, capsys):
    web = _part("web", SLEEPER, tmp_path=tmp_path)
    flower = _part("flower", BROKEN, essential=False, tmp_path=tmp_path)
    supervisor = Supervisor([web, flower], tmp_path)
    supervisor.start()
    try:
        time.sleep(1.0)
        assert supervisor.wait_ready(timeout=10, interval=0.05)
        assert web.running
        assert flower.skipped
        out = capsys.readouterr().out.strip().splitlines()
        assert out == [
            "run: flower skipped: it exited with 3 (OSError: [Errno 98] Address already in use); "
            f"see {flower.log}. The product runs on without it."
        ]
    finally:
        supervisor.stop_all(grace=5)


def test_an_essential_part_that_exits_stops_every_other_part(tmp_path, capsys):
    web = _part("web", SLEEPER, tmp_path=tmp_path)
    worker = _part("worker", "import time, sys; time.sleep(0.5); sys.exit(2)", tmp_path=tmp_path)
    helper = _part("helper", SLEEPER, essential=False, tmp_path=tmp_path)
    supervisor = Supervisor([web, worker, helper], tmp_path)
    supervisor.start()
    assert supervisor.watch(interval=0.05) == 1
    assert not web.running and not helper.running
    out = capsys.readouterr().out
    assert "run: worker exited with 2; stopping everything" in out
    assert out.rstrip().endswith("run: stopped")


def test_wait_ready_waits_until_every_part_answers(tmp_path):
    answers = iter(["starting", "starting", None])
    web = _part("web", SLEEPER, tmp_path=tmp_path, ready=lambda: next(answers, None))
    supervisor = Supervisor([web], tmp_path)
    supervisor.start()
    try:
        assert supervisor.wait_ready(timeout=10, interval=0.05)
        assert next(answers, "done") == "done"  # it asked until the part answered
    finally:
        supervisor.stop_all(grace=5)


def test_a_part_that_never_answers_is_named_optional_ones_skipped_essential_ones_awaited(
    tmp_path, capsys
):
    calls = {"n": 0}

    def web_ready():
        calls["n"] += 1
        return None if calls["n"] > 8 else "no answer at http://127.0.0.1:1/health"

    web = _part("web", SLEEPER, tmp_path=tmp_path, ready=web_ready)
    flower = _part("flower", SLEEPER, essential=False, tmp_path=tmp_path, ready=lambda: "no answer")
    supervisor = Supervisor([web, flower], tmp_path)
    supervisor.start()
    try:
        assert supervisor.wait_ready(timeout=0.2, interval=0.05)
        assert flower.skipped and not web.skipped
        time.sleep(0.5)
        assert not flower.running and web.running
        out = capsys.readouterr().out
        assert "run: flower skipped: it did not answer in 0 s: no answer" in out
        assert out.count("still waiting for web") == 1
    finally:
        supervisor.stop_all(grace=5)


def test_an_essential_part_exiting_while_others_start_ends_the_wait(tmp_path):
    web = _part("web", "import sys; sys.exit(1)", tmp_path=tmp_path, ready=lambda: "not yet")
    supervisor = Supervisor([web], tmp_path)
    supervisor.start()
    assert supervisor.wait_ready(timeout=10, interval=0.05) is False
    assert supervisor.watch() == 1


@pytest.fixture
def health_server():
    """A stand-in /health answering 503 with the product's body, then 200."""
    import http.server
    import json
    import threading

    state = {"status": 503}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(
                {
                    "status": "degraded",
                    "dependencies": {
                        "database": {"status": "connected"},
                        "redis": {"status": "connected"},
                        "celery": {"status": "down", "workers": 0},
                    },
                }
            ).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health", state
    server.shutdown()


def test_a_degraded_health_names_the_dependency_that_is_down(health_server):
    url, state = health_server
    assert health_problem(url) == f"{url} answers 503: celery: down"
    assert http_answers(url) is None  # it does answer HTTP
    state["status"] = 200
    assert health_problem(url) is None


def test_health_and_http_checks_name_what_does_not_answer():
    port = free_port()
    assert http_answers(f"http://127.0.0.1:{port}/").startswith(
        f"no answer at http://127.0.0.1:{port}/"
    )
    assert health_problem(f"http://127.0.0.1:{port}/health").startswith("no answer at")


# --- example and install helpers ---------------------------------------------------------------


def test_the_example_uses_the_server_s_own_origin_when_the_bot_allows_it():
    base = base_url("0.0.0.0", 8000)
    assert base == "http://127.0.0.1:8000"
    assert pick_origin(["http://localhost:8000", base], base) == base
    assert pick_origin(["https://*.shop.dk", "https://shop.dk"], base) == "https://shop.dk"
    assert pick_origin([], base) is None


def test_each_requirements_file_has_its_own_stamp_covering_the_files_it_includes(tmp_path):
    (tmp_path / "requirements.txt").write_text("Django==5.2.19\n")
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\npytest==9.2.0\n")
    venv = tmp_path / ".venv"
    venv.mkdir()
    assert install.requirements_file("") == "requirements.txt"
    assert install.requirements_file("test") == "requirements-dev.txt"
    assert install.chain(tmp_path, "requirements-dev.txt") == [
        "requirements-dev.txt",
        "requirements.txt",
    ]
    assert install.pins(tmp_path, "requirements-dev.txt") == {
        "django": "5.2.19",
        "pytest": "9.2.0",
    }
    # Installing the tests' file installs the product's: `./run` after `./run test` does nothing.
    install.write_stamps(tmp_path, venv, "requirements-dev.txt")
    assert install.is_installed(tmp_path, venv, "requirements.txt")
    assert install.is_installed(tmp_path, venv, "requirements-dev.txt")
    # A change to the product's file is a change to the tests' too, not the other way round.
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\npytest==9.2.1\n")
    assert install.is_installed(tmp_path, venv, "requirements.txt")
    assert not install.is_installed(tmp_path, venv, "requirements-dev.txt")
    (tmp_path / "requirements.txt").write_text("Django==5.2.20\n")
    assert not install.is_installed(tmp_path, venv, "requirements.txt")


def test_the_product_s_requirements_hold_no_test_or_benchmark_tool():
    product = install.pins(ROOT, "requirements.txt")
    for tool in ("pytest", "playwright", "schemathesis", "hypothesis", "ruff", "matplotlib"):
        assert tool not in product, tool
    assert "drf-spectacular-sidecar" in product
    tests = install.pins(ROOT, "requirements-dev.txt")
    assert {"pytest", "playwright", "websockets"} <= set(tests)
    assert "matplotlib" not in tests
    assert {"matplotlib", "uvicorn", "py-spy"} <= set(install.pins(ROOT, "requirements-bench.txt"))
