"""The fakes speak the documented wire formats byte for byte, can be steered, and scale."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from aiclients.transport import LeanTransport
from tests.fakes import FakeFlowise, FakeOpenAI, tokenize

FLOW = "7f3c1c0e-2b0a-4a52-9c1e-2f6a0c1d9b11"
ROOT = Path(__file__).resolve().parents[2]


def raw_http(url: str, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes: what a real client would see on the wire."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def post_json(path: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload


def dechunk(body: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2


@pytest.fixture
def flowise():
    with FakeFlowise() as srv:
        yield srv


def test_tokenize_keeps_spaces_with_words():
    assert tokenize("Hello world") == ["Hello", " world"]
    assert "".join(tokenize("  a  b \n")) == "  a  b \n"


def test_flowise_stream_is_byte_exact(flowise):
    body = {
        "question": "Hi",
        "streaming": True,
        "chatId": "c-1",
        "overrideConfig": {"sessionId": "s-1"},
    }
    raw = raw_http(flowise.url, post_json(f"/api/v1/prediction/{FLOW}", body))
    head, _, chunked = raw.partition(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    for header in (
        b"Content-Type: text/event-stream",
        b"Cache-Control: no-cache",
        b"X-Accel-Buffering: no",
        b"Transfer-Encoding: chunked",
    ):
        assert header in head
    stream = dechunk(chunked).decode()
    frames = stream.split("\n\n")
    assert frames[:3] == [
        'message:\ndata:{"event":"start","data":""}',
        'message:\ndata:{"event":"token","data":"You"}',
        'message:\ndata:{"event":"token","data":" asked:"}',
    ]
    metadata = json.loads(frames[4].removeprefix("message:\ndata:"))
    assert metadata["event"] == "metadata"
    assert metadata["data"]["chatId"] == "c-1"
    assert metadata["data"]["sessionId"] == "s-1"
    assert stream.endswith('message:\ndata:{"event":"end","data":"[DONE]"}\n\n')


def test_flowise_old_end_frame_and_heartbeat(flowise):
    flowise.configure(old_end_frame=True, heartbeat_interval=0.02, tokens_per_second=40)
    body = {"question": "one two three", "streaming": True}
    raw = raw_http(flowise.url, post_json(f"/api/v1/prediction/{FLOW}", body))
    stream = dechunk(raw.partition(b"\r\n\r\n")[2]).decode()

    assert ":heartbeat\n\n" in stream
    assert stream.endswith('message\ndata:{"event":"end","data":"[DONE]"}\n\n')


def test_flowise_rate_limit_is_plain_html_with_retry_after(flowise):
    flowise.configure(status=429, retry_after=7)
    response = httpx.post(
        f"{flowise.url}/api/v1/prediction/{FLOW}", json={"question": "q", "streaming": True}
    )

    assert response.status_code == 429
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.text == "Too many requests, please try again later."


def test_flowise_error_envelopes(flowise):
    bad = httpx.post(f"{flowise.url}/api/v1/prediction/nope", json={"question": "q"})
    assert bad.status_code == 400
    assert bad.json() == {
        "statusCode": 400,
        "success": False,
        "message": "Invalid Chatflow ID",
        "stack": {},
    }

    flowise.configure(api_key="k")
    unauthorized = httpx.post(f"{flowise.url}/api/v1/prediction/{FLOW}", json={"question": "q"})
    assert unauthorized.status_code == 500
    assert unauthorized.json()["message"] == (
        "Error: predictionsServices.buildChatflow - Unauthorized"
    )

    empty_override = httpx.post(
        f"{flowise.url}/api/v1/prediction/{FLOW}",
        json={"question": "q", "overrideConfig": ""},
        headers={"Authorization": "Bearer k"},
    )
    assert empty_override.status_code == 500
    assert "startState" in empty_override.json()["message"]


def test_flowise_unauthorized_stream_is_an_error_event_after_200(flowise):
    flowise.configure(api_key="k")
    response = httpx.post(
        f"{flowise.url}/api/v1/prediction/{FLOW}", json={"question": "q", "streaming": True}
    )

    assert response.status_code == 200
    assert response.text == (
        'message:\ndata:{"event":"error","data":"Error: predictionsServices.buildChatflow - '
        'Unauthorized"}\n\nmessage:\ndata:{"event":"end","data":"[DONE]"}\n\n'
    )


def test_flowise_side_endpoints(flowise):
    ping = httpx.get(f"{flowise.url}/api/v1/ping")
    assert (ping.status_code, ping.text) == (200, "pong")
    assert ping.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{flowise.url}/api/v1/version").json() == {"version": "3.1.3"}
    ui = httpx.get(f"{flowise.url}/some/page")
    assert ui.status_code == 200
    assert "<title>Flowise</title>" in ui.text
    abort = httpx.put(f"{flowise.url}/api/v1/chatmessage/abort/{FLOW}/c-9")
    assert abort.json() == {"status": 200, "message": "Chat message aborted"}
    assert [(f, c) for f, c, _ in flowise.aborts] == [(FLOW, "c-9")]


def test_fail_times_limits_faults_to_the_first_requests(flowise):
    flowise.configure(status=503, fail_times=2)
    url = f"{flowise.url}/api/v1/prediction/{FLOW}"
    statuses = [httpx.post(url, json={"question": "q"}).status_code for _ in range(4)]

    assert statuses == [503, 503, 200, 200]


def test_a_fake_can_be_steered_over_http(flowise):
    control = f"{flowise.url}/__fake__"
    httpx.post(f"{control}/scenario", json={"answer": "Steered answer"})
    url = f"{flowise.url}/api/v1/prediction/{FLOW}"
    answer = httpx.post(url, json={"question": "q"}).json()["text"]
    recorded = httpx.get(f"{control}/requests").json()
    emissions = httpx.get(f"{control}/emissions").json()
    httpx.post(f"{control}/reset")

    assert answer == "Steered answer"
    assert recorded[0]["body"] == {"question": "q"}
    assert recorded[0]["path"] == f"/api/v1/prediction/{FLOW}"
    assert len(emissions) == 2
    assert flowise.requests == []
    assert flowise.scenario.answer is None


def test_the_openai_stream_has_role_content_finish_usage_and_done():
    with FakeOpenAI() as srv:
        response = httpx.post(
            f"{srv.url}/v1/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "Hi"}],
            },
        )
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    chunks = [json.loads(e) for e in events[:-1]]

    assert response.headers["content-type"].startswith("text/event-stream")
    assert "x-ratelimit-remaining-tokens" in response.headers
    assert events[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:4]] == ["You", " asked:", " Hi"]
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    assert chunks[5]["choices"] == []
    assert chunks[5]["usage"]["completion_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:5])


def test_openai_rate_limit_carries_retry_headers():
    with FakeOpenAI(status=429, retry_after=2, retry_after_ms=1500) as srv:
        response = httpx.post(
            f"{srv.url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        )

    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_hundreds_of_paced_streams_run_concurrently(flowise):
    # Each stream lasts (tokens - 1) / tps = 1.6 s, long enough for all 300 to have started on a
    # loaded 2-core machine (at 0.58 s, starting them took longer than that under load).
    streams, tokens, tps = 300, 50, 30
    flowise.configure(tokens=[f" t{i}" for i in range(tokens)], tokens_per_second=tps)

    async def one(client: httpx.AsyncClient, i: int) -> int:
        body = {"question": "q", "streaming": True, "chatId": f"c{i}"}
        async with client.stream("POST", f"{flowise.url}/api/v1/prediction/{FLOW}", json=body) as r:
            text = (await r.aread()).decode()
        return text.count('"event":"token"')

    async def main() -> list[int]:
        # httpx's default pool is quadratic in open connections (see aiclients/pool.py).
        transport = LeanTransport(max_connections=streams)
        async with httpx.AsyncClient(transport=transport, timeout=20, trust_env=False) as client:
            return await asyncio.gather(*(one(client, i) for i in range(streams)))

    counts = asyncio.run(main())

    assert counts == [tokens] * streams
    assert len(flowise.emissions) == streams * tokens
    # Served side by side, not one after another: every stream had started before any ended
    # (no wall-clock limit, which load would break).
    starts, ends = {}, {}
    for e in flowise.emissions:
        starts[e.key] = min(starts.get(e.key, e.mono), e.mono)
        ends[e.key] = max(ends.get(e.key, e.mono), e.mono)
    assert max(starts.values()) < min(ends.values())


def test_the_fakes_run_standalone():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.flowise", "--port", "0", "--tokens-per-second", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("FakeFlowise listening on http://127.0.0.1:")
        url = line.split()[-1]
        httpx.post(f"{url}/__fake__/scenario", json={"answer": "from another process"})
        answer = httpx.post(f"{url}/api/v1/prediction/{FLOW}", json={"question": "q"})
        assert answer.json()["text"] == "from another process"
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()
    assert proc.returncode == 0
