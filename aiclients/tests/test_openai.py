"""The OpenAI-compatible client against FakeOpenAI over real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import gc
import ipaddress
import socket
import ssl
import threading
import time
import warnings
from contextlib import aclosing

import httpx
import pytest

from aiclients import (
    Timeouts,
    UpstreamError,
    UpstreamRequest,
    make_async_client,
    stream_openai,
)
from aiclients.probe import probe_openai
from aiclients.tests.calls import FAST, QUICK_RETRY, Result, call_run, result_fill
from aiclients.transport import LeanTransport
from tests.fakes import FakeOpenAI, describe_image

KEY = "sk-proj-SECRETSECRET0123456789abcd"
ANSWER = "You asked: Is it in stock?"


@pytest.fixture
def openai():
    with FakeOpenAI(api_key=KEY) as srv:
        yield srv


def make_request(url: str, **kw) -> UpstreamRequest:
    defaults = {
        "base_url": url + "/v1",
        "api_key": KEY,
        "target": "gpt-4o-mini",
        "question": "Is it in stock?",
    }
    return UpstreamRequest(**{**defaults, **kw})


def stream(req: UpstreamRequest, **kw) -> Result:
    return call_run(stream_openai, req, max_connections=5, **kw)


def test_it_streams_content_and_reports_usage(openai):
    result = stream(make_request(openai.url))

    assert result.error is None
    assert result.text == ANSWER
    (usage,) = result.of("usage")
    assert usage.data["completion_tokens"] == 6
    assert result.stats.completion_tokens == 6
    assert result.stats.prompt_tokens == usage.data["prompt_tokens"] > 0
    assert result.stats.total_tokens == usage.data["total_tokens"]
    assert result.stats.model == "gpt-4o-mini"
    assert result.stats.finish_reason == "stop"
    assert result.events[-1].kind == "usage"


def test_it_sends_system_prompt_context_history_and_the_question(openai):
    req = make_request(
        openai.url,
        system_prompt="You are the shop assistant.",
        extra_context="Product: red shoes, 3 in stock.",
        history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    )
    stream(req)

    (sent,) = openai.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["messages"] == [
        {
            "role": "system",
            "content": "You are the shop assistant.\n\nProduct: red shoes, 3 in stock.",
        },
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Is it in stock?"},
    ]


def test_images_are_sent_as_image_url_parts(openai):
    jpeg = b"\xff\xd8\xff\xe0 pretend jpeg"
    image = {"name": "a.jpg", "mime": "image/jpeg", "data_b64": base64.b64encode(jpeg).decode()}
    result = stream(make_request(openai.url, images=[image]))

    content = openai.requests[0].json["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "Is it in stock?"}
    assert content[1]["image_url"]["url"] == f"data:image/jpeg;base64,{image['data_b64']}"
    assert describe_image(jpeg) in result.text


def test_a_wrong_key_is_auth_not_retried_and_never_echoed(openai):
    wrong = "sk-proj-WRONGWRONG9876543210zyxw"
    result = stream(make_request(openai.url, api_key=wrong))

    err = result.error
    assert err.code == "UPSTREAM_AUTH"
    assert err.status == 401
    assert len(openai.requests) == 1
    for text in (err.message, err.detail, str(err), repr(err)):
        assert wrong not in text
        assert wrong[:8] + "*" not in text  # not even the masked echo OpenAI sends back


def test_a_mid_stream_error_frame_is_a_stream_error(openai):
    openai.configure(error_after_tokens=2, error_message=f"overloaded for key {KEY}")
    result = stream(make_request(openai.url))

    assert result.text == "You asked:"
    assert result.error.code == "UPSTREAM_STREAM_ERROR"
    assert result.error.tokens_emitted == 2
    assert KEY not in result.error.detail
    assert len(openai.requests) == 1


def test_rate_limit_then_success_honours_retry_after_ms(openai):
    openai.configure(status=429, retry_after_ms=300, fail_times=1)
    result = stream(make_request(openai.url))

    assert result.error is None
    assert result.text == ANSWER
    first, second = openai.requests
    assert second.time - first.time >= 0.3
    assert result.stats.retries == 1


def test_insufficient_quota_is_not_retried(openai):
    openai.configure(status=429, error_code="insufficient_quota", retry_after=0)
    result = stream(make_request(openai.url))

    assert result.error.code == "UPSTREAM_RATE_LIMITED"
    assert result.error.retryable is False
    assert "insufficient_quota" in result.error.detail
    assert len(openai.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(openai, status):
    openai.configure(status=status, fail_times=1)
    result = stream(make_request(openai.url))

    assert result.error is None
    assert len(openai.requests) == 2


def test_server_errors_every_time_end_as_unavailable(openai):
    openai.configure(status=503, retry_after=0)
    result = stream(make_request(openai.url))

    assert result.error.code == "UPSTREAM_UNAVAILABLE"
    assert result.error.category == "upstream_ai"
    assert len(openai.requests) == 3


def test_x_should_retry_false_stops_retries(openai):
    openai.configure(status=503, x_should_retry=False)
    result = stream(make_request(openai.url))

    assert result.error.code == "UPSTREAM_UNAVAILABLE"
    assert len(openai.requests) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "UPSTREAM_BAD_REQUEST"), (403, "UPSTREAM_AUTH"), (404, "UPSTREAM_BAD_REQUEST")],
)
def test_client_errors_are_not_retried(openai, status, code):
    openai.configure(status=status)
    result = stream(make_request(openai.url))

    assert result.error.code == code
    assert len(openai.requests) == 1


def test_a_connection_cut_mid_stream_is_truncated_and_not_retried(openai):
    openai.configure(reset_after_tokens=3)
    result = stream(make_request(openai.url))

    assert result.error.code == "UPSTREAM_TRUNCATED"
    assert result.error.tokens_emitted == 3
    assert result.stats.completion_tokens is None  # the usage chunk never came
    assert len(openai.requests) == 1


def test_a_malformed_chunk_is_a_bad_response(openai):
    openai.configure(malformed_after_tokens=1)
    result = stream(make_request(openai.url))

    assert result.error.code == "UPSTREAM_BAD_RESPONSE"


def test_no_headers_times_out(openai):
    openai.configure(hang_without_headers=True)
    result = stream(make_request(openai.url), timeouts=Timeouts(connect=1, read_idle=0.3, total=5))

    assert result.error.code == "UPSTREAM_TIMEOUT"
    assert result.elapsed < 1.5
    assert len(openai.requests) == 1


def test_a_stall_mid_stream_times_out(openai):
    openai.configure(stall_after_tokens=1)
    result = stream(make_request(openai.url), timeouts=Timeouts(connect=1, read_idle=0.3, total=5))

    assert result.error.code == "UPSTREAM_TIMEOUT"
    assert result.error.tokens_emitted == 1
    assert result.elapsed < 1.5


def test_an_empty_completion_is_an_empty_answer(openai):
    openai.configure(empty_answer=True)
    result = stream(make_request(openai.url))

    assert result.error.code == "UPSTREAM_EMPTY"


def test_chunks_cut_into_tiny_segments_are_reassembled(openai):
    answer = "Ja, die Größe 42 ist verfügbar 👟 — 还有三双."
    openai.configure(answer=answer, split_bytes=4)
    result = stream(make_request(openai.url))

    assert result.error is None
    assert result.text == answer


def test_a_missing_usage_chunk_is_not_an_error(openai):
    openai.configure(omit_usage=True)
    result = stream(make_request(openai.url))

    assert result.error is None
    assert result.text == ANSWER
    assert result.of("usage") == []


def test_a_server_that_ignores_stream_and_answers_json_still_works(openai):
    openai.configure(json_fallback=True)
    result = stream(make_request(openai.url))

    assert result.error is None
    assert [e.text for e in result.of("token")] == [ANSWER]
    assert result.stats.completion_tokens == 6


# -- "Test connection" -------------------------------------------------------------------------


def test_probe_openai_ok(openai):
    ok, message = probe_openai(openai.url + "/v1", KEY, "gpt-4o-mini", timeout=2)

    assert ok is True
    assert message == "Connected: model 'gpt-4o-mini' is available."
    assert openai.requests[0].path == "/v1/models"


def test_probe_openai_with_a_model_the_key_cannot_use(openai):
    openai.configure(models=["gpt-4o-mini", "gpt-4o"])
    ok, message = probe_openai(openai.url + "/v1", KEY, "gpt-5-turbo", timeout=2)

    assert ok is False
    assert message == (
        "Connected, but model 'gpt-5-turbo' is not offered with this key. "
        "Available: gpt-4o-mini, gpt-4o."
    )


def test_probe_openai_with_a_wrong_key(openai):
    wrong = "sk-proj-WRONGWRONG9876543210zyxw"
    ok, message = probe_openai(openai.url + "/v1", wrong, "gpt-4o-mini", timeout=2)

    assert ok is False
    assert message == "The API key was rejected. Check that it is complete and still active."


def test_probe_openai_without_v1_in_the_address(openai):
    ok, message = probe_openai(openai.url, KEY, "gpt-4o-mini", timeout=2)

    assert ok is False
    assert "The address usually ends with /v1." in message


# -- the lean HTTP/1.1 transport -----------------------------------------------------------------


def run_streams(reqs, *, client_factory=None, timeouts=FAST, pause: float = 0.0) -> list[Result]:
    """Run several calls on ONE client: concurrently, or one after another when pause is set."""
    results = [Result() for _ in reqs]

    async def one(client, req, result: Result) -> None:
        gen = stream_openai(client, req, stats=result.stats, timeouts=timeouts, retry=QUICK_RETRY)
        await result_fill(result, gen)

    async def main() -> None:
        factory = client_factory or (
            lambda: make_async_client(
                max_connections=5, connect_timeout=1, read_timeout=5, trust_env=False
            )
        )
        async with factory() as client:
            if pause:
                for req, result in zip(reqs, results, strict=True):
                    await one(client, req, result)
                    await asyncio.sleep(pause)
            else:
                await asyncio.gather(
                    *(one(client, r, res) for r, res in zip(reqs, results, strict=True))
                )

    asyncio.run(main())
    return results


def test_keep_alive_reuses_one_connection(openai):
    results = run_streams([make_request(openai.url)] * 3, pause=0.01)

    assert [r.text for r in results] == [ANSWER] * 3
    assert {r.connection for r in openai.requests} == {openai.requests[0].connection}


def test_an_idle_connection_the_server_dropped_is_replaced(openai):
    openai.configure(close_idle_after=0.05)
    results = run_streams([make_request(openai.url)] * 2, pause=0.2)

    assert [r.error for r in results] == [None, None]
    assert [r.stats.attempts for r in results] == [1, 1]
    first, second = openai.requests
    assert first.connection != second.connection


def test_the_connection_limit_holds_and_queued_calls_wait(openai):
    openai.configure(tokens_per_second=100)

    def client():
        return make_async_client(
            max_connections=2, connect_timeout=1, read_timeout=5, trust_env=False
        )

    results = run_streams([make_request(openai.url)] * 6, client_factory=client)

    assert [r.text for r in results] == [ANSWER] * 6
    assert len({r.connection for r in openai.requests}) == 2
    assert max(r.stats.pool_wait_seconds for r in results) >= 0.04


def test_waiting_too_long_for_a_connection_is_a_connect_timeout(openai):
    openai.configure(stall_after_tokens=1, fail_times=1)

    def client():
        return make_async_client(
            max_connections=1, connect_timeout=1, read_timeout=5, trust_env=False
        )

    timeouts = Timeouts(connect=1, read_idle=0.4, total=5, pool=0.2)

    async def main() -> list[Result]:
        out = [Result(), Result()]
        async with client() as c:

            async def one(result: Result, delay: float) -> None:
                await asyncio.sleep(delay)
                try:
                    gen = stream_openai(
                        c, make_request(openai.url), stats=result.stats, timeouts=timeouts
                    )
                    async with aclosing(gen) as events:
                        async for event in events:
                            result.events.append(event)
                except UpstreamError as exc:
                    result.error = exc

            await asyncio.gather(one(out[0], 0), one(out[1], 0.05))
        return out

    stalled, queued = asyncio.run(main())

    assert stalled.error.code == "UPSTREAM_TIMEOUT"
    assert queued.error.code == "UPSTREAM_CONNECT_TIMEOUT"
    assert "pooled connection" in queued.error.detail


def _read_request(conn: socket.socket) -> None:
    """Read one request: its head, then as many body bytes as its Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


class CannedServer:
    """Answers every request with fixed bytes and closes: for framings the fakes never use."""

    def __init__(self, response: bytes):
        self.response = response

    def __enter__(self) -> str:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    # Read the whole request first: closing a socket with unread bytes sends a
                    # reset, which may discard the response before the client reads it (seen in
                    # CI when the request body arrived in a second segment).
                    _read_request(conn)
                    for i in range(0, len(self.response), 7):  # tiny segments on purpose
                        conn.sendall(self.response[i : i + 7])
                        time.sleep(0.0005)
                    conn.shutdown(socket.SHUT_WR)
                    conn.settimeout(1)
                    with contextlib.suppress(OSError):
                        while conn.recv(65536):
                            pass

    def __exit__(self, *exc) -> None:
        self.sock.close()


SSE_BODY = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def chunked(body: bytes, size: int) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return (
        b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\nX-Trailer: y\r\n\r\n"
    )


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(SSE_BODY, 13),
        b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + SSE_BODY,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(SSE_BODY) + SSE_BODY,
    ],
    ids=["chunked-with-extensions-and-trailers", "http10-close-delimited", "100-continue"],
)
def test_the_transport_reads_every_http11_body_framing(response):
    with CannedServer(response) as url:
        result = stream(make_request(url))

    assert result.error is None
    assert result.text == "Hello"


def test_a_chunked_body_cut_short_is_truncated():
    body = chunked(SSE_BODY, 13)
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body[:60]
    )
    with CannedServer(response) as url:
        result = stream(make_request(url))

    assert result.error.code == "UPSTREAM_TRUNCATED"


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_streaming_over_tls(tmp_path):
    cert_file, key_file = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))

    with FakeOpenAI(ssl_context=server_ctx, api_key=KEY, split_bytes=5) as srv:
        assert srv.url.startswith("https://")
        ok = run_streams(
            [make_request(srv.url)] * 2,
            pause=0.01,
            client_factory=lambda: httpx.AsyncClient(
                transport=LeanTransport(max_connections=2, ssl_context=trusting)
            ),
        )
        untrusted = run_streams([make_request(srv.url)])

    assert [r.text for r in ok] == [ANSWER] * 2
    assert untrusted[0].error.code == "UPSTREAM_UNAVAILABLE"
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted[0].error.detail


def test_the_httpcore_transport_option_behaves_the_same(openai):
    def client():
        return make_async_client(
            max_connections=40, connect_timeout=1, read_timeout=5, trust_env=False, lean=False
        )

    openai.configure(split_bytes=3)
    results = run_streams([make_request(openai.url)] * 3, client_factory=client)

    assert [r.text for r in results] == [ANSWER] * 3


def test_one_client_works_from_a_second_event_loop(openai):
    client = make_async_client(
        max_connections=2, connect_timeout=1, read_timeout=5, trust_env=False
    )

    async def once(close: bool) -> str:
        gen = stream_openai(client, make_request(openai.url), timeouts=FAST, retry=QUICK_RETRY)
        async with aclosing(gen) as events:
            text = "".join([e.text async for e in events if e.kind == "token"])
        if close:
            await client.aclose()
        return text

    with warnings.catch_warnings():
        # The first loop's idle socket cannot be closed once that loop is gone.
        warnings.simplefilter("ignore", ResourceWarning)
        assert asyncio.run(once(close=False)) == ANSWER
        assert asyncio.run(once(close=True)) == ANSWER
        gc.collect()
