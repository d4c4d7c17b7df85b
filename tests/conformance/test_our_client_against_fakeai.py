"""Our OpenAI-compatible client against an OpenAI-compatible server we did not write: `fakeai`
from PyPI, which answers without model weights (issue #25). It differs from the real API and
from our fake in ways a client must tolerate — e.g. usage on its finish chunk with null and
extra keys — and the answer must still arrive whole, with usage in our one shape."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from contextlib import aclosing
from pathlib import Path

import httpx
import pytest

from aiclients.openai_compat import stream_openai
from aiclients.types import CallStats, Timeouts, UpstreamRequest
from devstack.services import free_port

pytest.importorskip("fakeai", reason="fakeai is in requirements-dev.txt")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def fakeai(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("fakeai") / "fakeai.log"
    command = [
        str(Path(sys.executable).with_name("fakeai")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--response-delay",
        "0",
        "--no-random-delay",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FAKEAI_RESPONSE_DELAY": "0"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"fakeai exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"fakeai did not start in 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _stream(url: str, **kw) -> tuple[list, CallStats]:
    req = UpstreamRequest(
        base_url=url + "/v1",
        api_key="",
        target="openai/gpt-oss-120b",
        question="Where is my order 1001?",
        system_prompt="You are a shop's helpful assistant.",
        history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        **kw,
    )
    stats = CallStats()

    async def main():
        events = []
        async with httpx.AsyncClient() as client:
            stream = stream_openai(
                client, req, stats=stats, timeouts=Timeouts(connect=5, read_idle=30, total=60)
            )
            async with aclosing(stream) as events_in:
                async for event in events_in:
                    events.append(event)
        return events

    return asyncio.run(main()), stats


def test_our_client_streams_a_whole_answer_from_fakeai(fakeai):
    events, stats = _stream(fakeai)

    text = "".join(e.text for e in events if e.kind == "token")
    assert len(text.strip()) > 10
    assert stats.tokens > 1  # streamed, not one block
    assert stats.finish_reason in ("stop", "length")


def test_fakeais_usage_reaches_us_in_our_one_shape(fakeai):
    events, stats = _stream(fakeai)

    [usage] = [e.data for e in events if e.kind == "usage"]
    assert set(usage) <= {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert all(isinstance(v, int) and v >= 0 for v in usage.values())
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert stats.total_tokens == usage["total_tokens"]
