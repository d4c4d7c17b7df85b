"""The Flowise client against FakeFlowise over real sockets: answers, faults, retries, secrets."""

from __future__ import annotations

import asyncio
import base64
import socket
from contextlib import aclosing

import pytest

from aiclients import (
    Timeouts,
    UpstreamError,
    UpstreamRequest,
    abort_flowise,
    make_async_client,
    stream_flowise,
)
from aiclients.probe import probe_flowise
from aiclients.tests.calls import FAST, Result, call_run, result_fill
from tests.fakes import describe_image

FLOW = "7f3c1c0e-2b0a-4a52-9c1e-2f6a0c1d9b11"
KEY = "flowise-SECRET-key-0123456789"
DOCS = [{"pageContent": "Returns within 30 days.", "metadata": {"source": "faq.pdf"}}]


def make_request(url: str, **kw) -> UpstreamRequest:
    defaults = {
        "base_url": url,
        "api_key": "",
        "target": FLOW,
        "question": "Where is my order?",
        "session_id": "session-1",
        "chat_id": "chat-1",
    }
    return UpstreamRequest(**{**defaults, **kw})


async def _consume(client, req, result: Result, **kw) -> None:
    await result_fill(result, stream_flowise(client, req, stats=result.stats, **kw))


def stream(req: UpstreamRequest, **kw) -> Result:
    return call_run(stream_flowise, req, max_connections=10, **kw)


def test_it_streams_the_answer_without_repeating_the_start_token(flowise):
    result = stream(make_request(flowise.url))

    assert result.error is None
    assert result.text == "You asked: Where is my order?"
    assert result.of("token")[0].text == "You"
    meta = result.of("metadata")[0].data
    assert meta["chatId"] == "chat-1"
    assert meta["sessionId"] == "session-1"
    assert result.stats.tokens == 6
    assert result.stats.attempts == 1
    assert result.stats.first_token_at >= result.stats.headers_at >= result.stats.request_started


def test_it_sends_the_documented_request_body(flowise):
    req = make_request(
        flowise.url,
        override_config={"pineconeNamespace": "tenant-42"},
        history=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "system", "content": "dropped"},
        ],
    )
    stream(req)

    (sent,) = flowise.requests
    assert sent.path == f"/api/v1/prediction/{FLOW}"
    assert sent.json == {
        "question": "Where is my order?",
        "streaming": True,
        "chatId": "chat-1",
        "overrideConfig": {"pineconeNamespace": "tenant-42", "sessionId": "session-1"},
        "history": [
            {"role": "userMessage", "content": "Hi"},
            {"role": "apiMessage", "content": "Hello!"},
        ],
    }
    assert "authorization" not in sent.headers


def test_it_never_sends_an_empty_override_config(flowise):
    stream(make_request(flowise.url, session_id=""))

    assert "overrideConfig" not in flowise.requests[0].json


def test_the_key_is_sent_as_bearer_when_set(flowise):
    flowise.configure(api_key=KEY)
    result = stream(make_request(flowise.url, api_key=KEY))

    assert result.error is None
    assert flowise.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_images_are_uploaded_as_data_urls_and_seen_by_the_flow(flowise):
    png = b"\x89PNG\r\n\x1a\nfake image bytes"
    image = {"name": "photo", "mime": "image/png", "data_b64": base64.b64encode(png).decode()}
    result = stream(make_request(flowise.url, images=[image]))

    upload = flowise.requests[0].json["uploads"][0]
    assert upload["type"] == "file"
    assert upload["name"] == "photo.png"  # Flowise rejects names whose extension mismatches mime
    assert upload["data"] == f"data:image/png;base64,{image['data_b64']}"
    assert describe_image(png) in result.text


def test_source_documents_are_passed_on(flowise):
    flowise.configure(source_documents=DOCS)
    result = stream(make_request(flowise.url))

    assert result.of("source_documents")[0].data == DOCS
    assert result.text == "You asked: Where is my order?"


def test_a_json_answer_to_a_streaming_request_becomes_one_token(flowise):
    flowise.configure(json_fallback=True, source_documents=DOCS)
    result = stream(make_request(flowise.url))

    assert result.error is None
    assert [e.text for e in result.of("token")] == ["You asked: Where is my order?"]
    assert result.of("source_documents")[0].data == DOCS
    assert result.of("metadata")[0].data["chatId"] == "chat-1"


def test_an_error_event_after_200_is_a_stream_error(flowise):
    flowise.configure(error_after_tokens=0, error_message="Error: model overloaded")
    result = stream(make_request(flowise.url))

    assert result.error.code == "UPSTREAM_STREAM_ERROR"
    assert result.error.tokens_emitted == 0
    assert "model overloaded" in result.error.detail
    assert len(flowise.requests) == 1


def test_tokens_then_error_keeps_the_tokens_and_reports_how_many(flowise):
    flowise.configure(error_after_tokens=2)
    result = stream(make_request(flowise.url))

    assert result.text == "You asked:"
    assert result.error.code == "UPSTREAM_STREAM_ERROR"
    assert result.error.tokens_emitted == 2
    assert len(flowise.requests) == 1


def test_a_wrong_key_in_streaming_mode_is_an_auth_error(flowise):
    flowise.configure(api_key="the-right-key")
    result = stream(make_request(flowise.url, api_key=KEY))

    assert result.error.code == "UPSTREAM_AUTH"
    assert result.error.retryable is False


def test_a_wrong_key_as_500_unauthorized_is_auth_and_not_retried(flowise):
    flowise.configure(api_key="the-right-key", json_fallback=True)
    result = stream(make_request(flowise.url, api_key=KEY))

    assert result.error.code == "UPSTREAM_AUTH"
    assert result.error.status == 500
    assert len(flowise.requests) == 1


def test_the_api_key_never_appears_in_error_text(flowise):
    flowise.configure(
        error_after_tokens=0, error_message=f"Error: upstream refused key {KEY} (Bearer {KEY})"
    )
    errors = [stream(make_request(flowise.url, api_key=KEY)).error]
    flowise.reset()
    flowise.configure(api_key="other", json_fallback=True)
    errors.append(stream(make_request(flowise.url, api_key=KEY)).error)

    for err in errors:
        assert err is not None
        for text in (err.message, err.detail, str(err), repr(err), str(err.as_dict())):
            assert KEY not in text
    assert "[redacted]" in errors[0].detail


def test_end_without_tokens_is_an_empty_answer(flowise):
    flowise.configure(empty_answer=True)
    result = stream(make_request(flowise.url))

    assert result.error.code == "UPSTREAM_EMPTY"
    assert result.of("token") == []


def test_a_connection_cut_after_tokens_is_truncated_and_not_retried(flowise):
    flowise.configure(reset_after_tokens=2)
    result = stream(make_request(flowise.url))

    assert result.text == "You asked:"
    assert result.error.code == "UPSTREAM_TRUNCATED"
    assert result.error.tokens_emitted == 2
    assert len(flowise.requests) == 1


def test_a_tcp_reset_after_tokens_is_truncated(flowise):
    flowise.configure(reset_after_tokens=1, reset_with_rst=True)
    result = stream(make_request(flowise.url))

    assert result.error.code == "UPSTREAM_TRUNCATED"
    assert len(flowise.requests) == 1


def test_rate_limit_then_success_waits_for_retry_after(flowise):
    flowise.configure(status=429, retry_after=0.3, fail_times=1)
    result = stream(make_request(flowise.url))

    assert result.error is None
    assert result.text == "You asked: Where is my order?"
    first, second = flowise.requests
    assert second.time - first.time >= 0.3
    assert result.stats.retries == 1
    assert result.stats.attempts == 2
    assert result.stats.retry_wait_seconds == pytest.approx(0.3)


def test_rate_limit_beyond_the_cap_fails_at_once_with_retry_after(flowise):
    flowise.configure(status=429, retry_after=120)
    result = stream(make_request(flowise.url))

    assert result.error.code == "UPSTREAM_RATE_LIMITED"
    assert result.error.retry_after == 120
    assert result.error.retryable is True
    assert len(flowise.requests) == 1
    assert result.elapsed < 2


def test_rate_limit_every_time_gives_up_after_max_retries(flowise):
    flowise.configure(status=429, retry_after=0)
    result = stream(make_request(flowise.url))

    assert result.error.code == "UPSTREAM_RATE_LIMITED"
    assert len(flowise.requests) == 3


def test_a_503_from_the_proxy_is_retried_with_backoff(flowise):
    flowise.configure(status=503, fail_times=2)
    result = stream(make_request(flowise.url))

    assert result.error is None
    assert len(flowise.requests) == 3
    assert result.stats.retries == 2


def test_a_flowise_500_is_not_retried(flowise):
    flowise.configure(status=500)
    result = stream(make_request(flowise.url))

    assert result.error.code == "UPSTREAM_UNAVAILABLE"
    assert result.error.status == 500
    assert len(flowise.requests) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "UPSTREAM_BAD_REQUEST"),
        (403, "UPSTREAM_AUTH"),
        (404, "UPSTREAM_BAD_REQUEST"),
        (413, "UPSTREAM_TOO_LARGE"),
    ],
)
def test_client_errors_are_not_retried(flowise, status, code):
    flowise.configure(status=status)
    result = stream(make_request(flowise.url))

    assert result.error.code == code
    assert result.error.retryable is False
    assert len(flowise.requests) == 1


@pytest.mark.parametrize("target", ["not-a-uuid", "00000000-0000-0000-0000-000000000001"])
def test_an_id_flowise_would_not_take_is_refused_before_sending(flowise, target):
    # A real Flowise holds a streaming request with such an id unanswered (ai_protocols.md §6).
    result = stream(make_request(flowise.url, target=target))

    assert result.error.code == "UPSTREAM_BAD_REQUEST"
    assert "Invalid Chatflow ID" in result.error.detail
    assert flowise.requests == []


def test_an_unknown_chatflow_gets_no_answer_when_streaming_and_times_out(flowise):
    flowise.configure(known_chatflows=[])
    result = stream(make_request(flowise.url), timeouts=Timeouts(connect=1, read_idle=0.3, total=5))

    assert result.error.code == "UPSTREAM_TIMEOUT"
    assert len(flowise.requests) >= 1


def test_no_response_headers_times_out_within_the_idle_limit(flowise):
    flowise.configure(hang_without_headers=True)
    result = stream(make_request(flowise.url), timeouts=Timeouts(connect=1, read_idle=0.3, total=5))

    assert result.error.code == "UPSTREAM_TIMEOUT"
    assert result.elapsed < 1.5
    assert len(flowise.requests) == 1


def test_a_stall_mid_stream_times_out_without_retry(flowise):
    flowise.configure(stall_after_tokens=2)
    result = stream(make_request(flowise.url), timeouts=Timeouts(connect=1, read_idle=0.3, total=5))

    assert result.text == "You asked:"
    assert result.error.code == "UPSTREAM_TIMEOUT"
    assert result.error.tokens_emitted == 2
    assert result.elapsed < 1.5
    assert len(flowise.requests) == 1


# The rule for an answer whose end never comes (docs/streaming.md): real Flowise 3.1.4 was seen
# streaming every token, then only `:heartbeat` comments for minutes before metadata and end.


def _warnings(result) -> list[dict]:
    return [e.data for e in result.events if e.kind == "warning"]


def test_an_answer_followed_only_by_heartbeats_until_the_total_limit_is_kept_with_a_warning(
    flowise,
):
    flowise.configure(no_end=True, heartbeat_interval=0.05)
    result = stream(
        make_request(flowise.url), timeouts=Timeouts(connect=1, read_idle=0.2, total=0.6)
    )

    assert result.error is None
    assert result.text == "You asked: Where is my order?"
    [warning] = _warnings(result)
    assert warning["code"] == "UPSTREAM_END_MISSING"
    assert "total time limit" in warning["detail"]


def test_only_heartbeats_for_the_answer_tail_end_the_wait_before_the_total_limit(flowise):
    flowise.configure(no_end=True, heartbeat_interval=0.05)
    result = stream(
        make_request(flowise.url),
        timeouts=Timeouts(connect=1, read_idle=5, total=60, answer_tail=0.3),
    )

    assert result.error is None
    assert result.text == "You asked: Where is my order?"
    [warning] = _warnings(result)
    assert "heartbeats for 0.3 s" in warning["detail"]


def test_silence_after_the_tokens_with_no_heartbeat_is_still_a_timeout(flowise):
    flowise.configure(no_end=True)
    result = stream(make_request(flowise.url), timeouts=Timeouts(connect=1, read_idle=0.3, total=5))

    assert result.error.code == "UPSTREAM_TIMEOUT"
    assert _warnings(result) == []


def test_heartbeats_before_the_first_token_are_waited_through(flowise):
    flowise.configure(delay_before_first_token=0.6, heartbeat_interval=0.05)
    result = stream(
        make_request(flowise.url),
        timeouts=Timeouts(connect=1, read_idle=5, total=10, answer_tail=0.2),
    )

    assert result.error is None
    assert result.text == "You asked: Where is my order?"
    assert _warnings(result) == []


def test_heartbeats_and_the_old_end_frame_are_understood(flowise):
    flowise.configure(heartbeat_interval=0.01, tokens_per_second=200, old_end_frame=True)
    result = stream(make_request(flowise.url))

    assert result.error is None
    assert result.text == "You asked: Where is my order?"


def test_a_malformed_frame_is_a_bad_response(flowise):
    flowise.configure(malformed_after_tokens=1)
    result = stream(make_request(flowise.url))

    assert result.error.code == "UPSTREAM_BAD_RESPONSE"
    assert result.error.tokens_emitted == 1


def test_frames_cut_into_tiny_tcp_segments_are_reassembled(flowise):
    answer = "Grüße aus Köln 🎉, 你好!"
    flowise.configure(answer=answer, split_bytes=3, source_documents=DOCS)
    result = stream(make_request(flowise.url))

    assert result.error is None
    assert result.text == answer
    assert result.of("source_documents")[0].data == DOCS


def test_a_big_token_arrives_whole(flowise):
    flowise.configure(big_token_bytes=500_000)
    result = stream(make_request(flowise.url))

    assert result.error is None
    assert "B" * 500_000 in result.text


def test_an_event_over_the_size_cap_is_refused(flowise):
    flowise.configure(big_token_bytes=200_000)
    result = stream(make_request(flowise.url), max_event_bytes=100_000)

    assert result.error.code == "UPSTREAM_TOO_LARGE"


def test_an_html_page_instead_of_a_stream_is_a_bad_response(flowise):
    # A wrong base URL path lands on Flowise's UI, which answers 200 text/html.
    result = stream(make_request(flowise.url + "/ui"))

    assert result.error.code == "UPSTREAM_BAD_RESPONSE"


def test_the_total_time_limit_applies_while_tokens_flow(flowise):
    flowise.configure(tokens_per_second=10, answer="one two three four five six seven eight")
    result = stream(
        make_request(flowise.url), timeouts=Timeouts(connect=1, read_idle=2, total=0.35)
    )

    assert result.error.code == "UPSTREAM_TIMEOUT"
    assert 1 <= result.error.tokens_emitted < 8
    assert result.elapsed < 1.2


def test_a_refused_connection_is_retried_then_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = stream(make_request(f"http://127.0.0.1:{port}"))

    assert result.error.code == "UPSTREAM_UNAVAILABLE"
    assert result.error.category == "network"
    assert result.stats.attempts == 3


def _stream_and_abort_after_two_events(flowise) -> tuple[Result, list[bool]]:
    req = make_request(flowise.url, chat_id="chat-to-abort")
    result = Result()
    acknowledged: list[bool] = []

    async def main() -> None:
        async with make_async_client(
            max_connections=5, connect_timeout=1, read_timeout=5, trust_env=False
        ) as client:
            try:
                gen = stream_flowise(client, req, stats=result.stats, timeouts=FAST)
                async with aclosing(gen) as events:
                    async for event in events:
                        result.events.append(event)
                        if len(result.events) == 2:
                            acknowledged.append(
                                await abort_flowise(client, flowise.url, FLOW, "chat-to-abort")
                            )
            except UpstreamError as exc:
                result.error = exc

    asyncio.run(main())
    return result, acknowledged


def test_abort_stops_an_agent_flow_in_flight(flowise):
    flowise.configure(tokens_per_second=40, answer=" ".join(["word"] * 40), agent_flow=True)

    result, acknowledged = _stream_and_abort_after_two_events(flowise)

    assert acknowledged == [True]
    assert result.error.code == "UPSTREAM_ABORTED"
    assert 2 <= len(result.of("token")) < 10
    assert [(f, c) for f, c, _ in flowise.aborts] == [(FLOW, "chat-to-abort")]


def test_abort_of_a_plain_chatflow_is_acknowledged_and_the_answer_finishes(flowise):
    # As a real Flowise 3.1.4 did: 200, then the stream ends normally with no `abort` event.
    flowise.configure(tokens_per_second=200, answer=" ".join(["word"] * 20))

    result, acknowledged = _stream_and_abort_after_two_events(flowise)

    assert acknowledged == [True]
    assert result.error is None
    assert result.text == " ".join(["word"] * 20)


def test_waiting_for_a_pooled_connection_is_measured(flowise):
    flowise.configure(tokens_per_second=50, answer="a b c d e f")
    results = [Result(), Result()]

    async def main() -> None:
        async with make_async_client(
            max_connections=1, connect_timeout=1, read_timeout=5, trust_env=False
        ) as client:
            await asyncio.gather(
                *(
                    _consume(client, make_request(flowise.url, chat_id=f"c{i}"), r, timeouts=FAST)
                    for i, r in enumerate(results)
                )
            )

    asyncio.run(main())

    assert all(r.error is None for r in results)
    waits = sorted(r.stats.pool_wait_seconds for r in results)
    assert waits[1] >= 0.05  # the second call waited for the first answer to finish


def test_the_fake_records_each_emitted_token(flowise):
    stream(make_request(flowise.url, chat_id="chat-timed"))

    assert [(e.key, e.index) for e in flowise.emissions] == [("chat-timed", i) for i in range(6)]


# -- "Test connection" -------------------------------------------------------------------------


def test_probe_flowise_ok(flowise):
    flowise.configure(api_key=KEY)
    ok, message = probe_flowise(flowise.url, KEY, FLOW, timeout=2)

    assert ok is True
    assert message == "Connected: the chatflow answered a test question."
    ping, prediction = flowise.requests
    assert ping.path == "/api/v1/ping"
    assert prediction.json["question"] == "ping"
    assert prediction.json["streaming"] is False


@pytest.mark.parametrize(
    ("knobs", "key", "flow", "expected"),
    [
        ({"api_key": "right"}, KEY, FLOW, "Flowise refused the API key for this chatflow."),
        ({"api_key": "right"}, "", FLOW, "This chatflow needs an API key."),
        ({}, "", "my-chatflow", "The chatflow ID should look like"),
        ({"known_chatflows": []}, "", FLOW, "Flowise has no chatflow with this ID."),
        ({"status": 429}, "", FLOW, "Flowise is limiting requests right now."),
        (
            {"status": 500, "error_message": "Error: x - Pinecone index missing"},
            "",
            FLOW,
            "The chatflow failed to answer the test question: Error: x - Pinecone index missing",
        ),
    ],
)
def test_probe_flowise_failures_explain_themselves(flowise, knobs, key, flow, expected):
    flowise.configure(**knobs)
    ok, message = probe_flowise(flowise.url, key, flow, timeout=2)

    assert ok is False
    assert expected in message


def test_probe_flowise_rejects_a_server_that_is_not_flowise():
    from tests.fakes import FakeOpenAI

    with FakeOpenAI() as other:
        ok, message = probe_flowise(other.url, "", FLOW, timeout=2)

    assert ok is False
    assert "not like a Flowise server" in message


def test_probe_flowise_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ok, message = probe_flowise(f"http://127.0.0.1:{port}/secret-path?token=abc", KEY, FLOW)

    assert ok is False
    assert message == "Could not reach the service at 127.0.0.1: no answer in a form we understand."
    assert "secret-path" not in message
    assert "abc" not in message


def test_probe_flowise_never_shows_the_key(flowise):
    flowise.configure(status=500, error_message=f"LLM rejected key {KEY}")
    ok, message = probe_flowise(flowise.url, KEY, FLOW, timeout=2)

    assert ok is False
    assert KEY not in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42},
            {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
            id="flowise-usage-metadata",
        ),
        pytest.param(
            # An OpenAI-compatible server (fakeai) on its finish chunk: nulls and extra keys.
            {
                "prompt_tokens": 9,
                "completion_tokens": 4,
                "total_tokens": None,
                "input_tokens": None,
                "output_tokens": None,
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
            {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
            id="nulls-and-extra-keys",
        ),
        pytest.param(
            {"prompt_tokens": -1, "completion_tokens": 2.5, "total_tokens": float("inf")},
            {},
            id="nonsense",
        ),
        pytest.param({"prompt_tokens": True}, {}, id="a-boolean-is-no-count"),
        pytest.param(None, {}, id="not-a-dict"),
    ],
)
def test_usage_reaches_the_turn_in_one_shape(raw, expected):
    from aiclients.types import normalise_usage

    assert normalise_usage(raw) == expected
