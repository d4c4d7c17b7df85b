"""The README's quick start, run as a newcomer runs it: `./run`, then the commands it shows.

`./run` itself serves here (on this test run's database and Redis, a free port, and a Flower
port that something else holds), and the README's `./run example` lines are executed exactly
as written; nothing in them is substituted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from devstack.services import free_port
from tests.e2e.conftest import ROOT, stack_env

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
PLACEHOLDER_KEY = "pk_…"
README_BASE = "http://127.0.0.1:8000"


def quick_start() -> str:
    text = README.read_text()
    start = text.index("## Quick start")
    return text[start : text.index("\n## ", start + 1)]


def shell_blocks(section: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def commands(block: str) -> list[str]:
    """The block's command lines, without their trailing comments."""
    return [
        re.sub(r"\s+#.*$", "", line).strip()
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


class RunningProduct:
    """`./run` as a child process; its output collected line by line."""

    def __init__(self, env: dict) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["./run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, f"./run exited:\n{self.output()[-5000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()[-5000:]}"
            time.sleep(0.2)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()
        finally:
            self.reader.join(5)


@pytest.fixture
def product(transactional_db):
    port = free_port()
    flower_blocker = socket.socket()  # Flower's port is taken: ./run must go on without it
    flower_blocker.bind(("127.0.0.1", 0))
    flower_blocker.listen(1)
    env = stack_env(
        HOST="127.0.0.1",
        PORT=str(port),
        FLOWER_PORT=str(flower_blocker.getsockname()[1]),
        FAKE_FLOWISE_PORT=str(free_port()),
        FAKE_OPENAI_PORT=str(free_port()),
        ASGI_PROCESSES="1",
        TURN_WORKER_CONCURRENCY="4",
    )
    run = RunningProduct(env)
    try:
        yield run, env, port
    finally:
        code = run.stop()
        flower_blocker.close()
        assert code == 0, run.output()[-3000:]
        assert run.lines[-1] == "run: stopped"


def test_the_readme_quick_start_works_as_written_against_run(product):
    run, env, port = product
    section = quick_start()
    blocks = shell_blocks(section)
    # The main block is still the two commands a newcomer needs.
    assert commands(blocks[0]) == ["./run", "./run test"]

    run.wait_for("run: the product is up", timeout=240)
    output = run.output()
    # The addresses come once everything answers, Flower's taken port is one line, not a crash.
    assert re.search(
        r"run: Flower skipped: port \d+ on 127\.0\.0\.1 is taken; set FLOWER_PORT=", output
    )
    assert "Traceback" not in output
    assert "Flower:" not in output.split("run: the product is up")[1]
    assert f"http://127.0.0.1:{port}/chat/demo-flowise/" in output  # the fake Flowise came up
    # The OpenAI-compatible stand-in the README's "Build a bot in the admin" points at.
    fake_openai = re.search(r"Fake OpenAI:\s+(http://127\.0\.0\.1:\d+/v1)", output)
    assert fake_openai, output[-2000:]
    assert b'"gpt-4o-mini"' in urllib.request.urlopen(f"{fake_openai[1]}/models").read()

    example_block = next(b for b in blocks if "./run example" in b)
    printing, running = commands(example_block)
    assert printing == "./run example"

    # `./run example` prints what the README shows, with this checkout's key and address.
    printed = subprocess.run(
        printing, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert printed.returncode == 0, printed.stderr
    from chatbots.models import Chatbot

    key = Chatbot.objects.get(public_id="demo").widget_key
    shown = next(b for b in blocks if "X-Widget-Key" in b)
    base = f"http://127.0.0.1:{port}"
    assert printed.stdout.replace(key, PLACEHOLDER_KEY).replace(base, README_BASE) == shown

    # `./run example | bash` runs them: a conversation starts, and its events can be followed.
    ran = subprocess.run(
        running, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    reply_line, events_line = ran.stdout.strip().splitlines()
    reply = json.loads(reply_line)
    assert reply["success"] is True and reply["status"] == "pending", reply
    events = json.loads(events_line)

    # "While it says "has_more":true … run the last line again", as the README tells the reader
    # (the shell variables it reads are the ones the lines before set).
    last_line = commands(printed.stdout)[-1]
    assert last_line.startswith("curl -s ")
    deadline = time.monotonic() + 60
    while events["has_more"]:
        assert time.monotonic() < deadline, events
        time.sleep(1)
        again = subprocess.run(
            ["bash", "-c", last_line],
            env={**env, "TURN": reply["turn_id"], "TOKEN": reply["conversation_token"]},
            capture_output=True,
            text=True,
            timeout=30,
        )
        events = json.loads(again.stdout)
    kinds = [event["event"] for event in events["events"]]
    assert kinds[0] == "start" and kinds[-1] == "end", kinds
    assert events["events"][-1]["data"]["status"] == "completed"
    text = "".join(e["data"]["text"] for e in events["events"] if e["event"] == "token")
    assert "1-3 working days" in text, text
