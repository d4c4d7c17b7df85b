"""Server-Sent Events against a real Daphne and worker: live, dropped, resumed, replayed."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from aiclients.sse import SSEParser
from config.redis import get_redis
from conversations import streaming
from conversations.models import Turn
from tests.e2e.client import post_message
from tests.e2e.conftest import ARTIFACTS, running_stack, stack_env
from tests.e2e.test_pipeline import flowise_bot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HEARTBEAT = 0.3
STREAM_CAP = 2
ANSWER = " ".join(f"w{i}" for i in range(40))


@pytest.fixture(scope="module")
def sse_stack(django_db_setup, django_db_blocker):
    """A stack of its own, with heartbeats short enough to see in a test."""
    env = stack_env(
        SSE_HEARTBEAT_SECONDS=str(HEARTBEAT),
        SSE_MAX_STREAMS_PER_ADDRESS=str(STREAM_CAP),
        MESSAGE_RATE_LIMIT_PER_MINUTE="100000",
    )
    with running_stack(env, ARTIFACTS, "sse", "turns,celery", 8) as running:
        yield running


def sse_url(stack, reply: dict) -> str:
    return f"{stack.base_url}/api/stream-events/{reply['turn_id']}/sse"


def read_sse(url: str, *, headers=None, params=None, stop_after_tokens: int | None = None):
    """(events as parsed envelopes with their SSE id/event lines, raw bytes) until the server
    ends the stream, or until `stop_after_tokens` tokens when the client drops it."""
    parser = SSEParser()
    events: list[dict] = []
    raw = b""
    with httpx.stream(
        "GET",
        url,
        headers={"Accept": "text/event-stream", **(headers or {})},
        params=params,
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            raw += chunk
            for sse in parser.feed(chunk):
                env = json.loads(sse.data)
                assert sse.id == str(env["id"]) and sse.event == env["event"]
                events.append(env)
            tokens = sum(1 for e in events if e["event"] == "token")
            if stop_after_tokens is not None and tokens >= stop_after_tokens:
                return events, raw  # leaving the block closes the connection mid-answer
    return events, raw


def stored_answer(turn_id: str) -> str:
    turn = Turn.objects.select_related("assistant_message").get(pk=turn_id)
    return turn.assistant_message.content


def text_of(events: list[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "token")


def test_an_event_stream_follows_a_turn_live_to_its_end_with_heartbeats(sse_stack, flowise):
    flowise_bot(flowise)
    flowise.scenario.answer = "Slow and steady."
    flowise.scenario.tokens_per_second = 1.5  # pauses twice the heartbeat
    reply = post_message(sse_stack.base_url, "vinhuset", "Hello")
    events, raw = read_sse(
        sse_url(sse_stack, reply),
        headers={"Authorization": f"Bearer {reply['conversation_token']}"},
    )
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    assert text_of(events) == stored_answer(reply["turn_id"]) == "Slow and steady."
    assert all(e["data"]["token"] == e["data"]["text"] for e in events if e["event"] == "token")
    assert b"\n: ping\n\n" in raw or raw.startswith(b": ping\n\n")


def test_a_dropped_stream_resumes_by_last_event_id_with_nothing_missing_or_doubled(
    sse_stack, flowise
):
    flowise_bot(flowise)
    flowise.scenario.answer = ANSWER
    flowise.scenario.tokens_per_second = 30
    reply = post_message(sse_stack.base_url, "vinhuset", "Tell me everything")
    auth = {"Authorization": f"Bearer {reply['conversation_token']}"}
    first, _ = read_sse(sse_url(sse_stack, reply), headers=auth, stop_after_tokens=3)
    assert Turn.objects.get(pk=reply["turn_id"]).status == Turn.Status.RUNNING
    # The server lets go of the dropped stream: its subscription to the turn ends.
    channel = streaming.group_channel(reply["turn_id"])
    deadline = time.monotonic() + 10
    while get_redis().pubsub_numsub(channel)[0][1] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get_redis().pubsub_numsub(channel)[0][1] == 0
    rest, _ = read_sse(
        sse_url(sse_stack, reply), headers={**auth, "Last-Event-ID": str(first[-1]["id"])}
    )
    events = first + rest
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert text_of(events) == stored_answer(reply["turn_id"]) == ANSWER


def test_a_finished_turn_replays_with_the_token_and_last_event_id_in_the_query(sse_stack, flowise):
    flowise_bot(flowise)
    flowise.scenario.answer = "Done already."
    reply = post_message(sse_stack.base_url, "vinhuset", "Hi")
    deadline = time.monotonic() + 30
    while not Turn.objects.get(pk=reply["turn_id"]).is_finished and time.monotonic() < deadline:
        time.sleep(0.05)
    events, _ = read_sse(
        sse_url(sse_stack, reply), params={"token": reply["conversation_token"], "last_event_id": 1}
    )
    assert events[0]["id"] == 2 and events[-1]["event"] == "end"
    assert text_of(events) == "Done already."
    after_end = httpx.get(
        sse_url(sse_stack, reply),
        params={"token": reply["conversation_token"]},
        headers={"Last-Event-ID": str(events[-1]["id"])},
    )
    assert after_end.status_code == 204


def test_one_address_holds_at_most_the_cap_of_open_streams_and_a_closed_one_frees_its_place(
    sse_stack, flowise
):
    flowise_bot(flowise)
    flowise.scenario.answer = " ".join(["slow"] * 100)
    flowise.scenario.tokens_per_second = 10
    reply = post_message(sse_stack.base_url, "vinhuset", "Take your time")
    url = sse_url(sse_stack, reply)
    params = {"token": reply["conversation_token"]}
    with httpx.Client(timeout=30) as http:
        opened = []
        for _ in range(STREAM_CAP):
            response = http.send(http.build_request("GET", url, params=params), stream=True)
            assert response.status_code == 200
            chunks = response.iter_raw()  # kept: httpx closes the stream when it is collected
            next(chunks)  # the stream has started (and counts)
            opened.append((response, chunks))
        refused = http.get(url, params=params)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert refused.headers["Retry-After"] == "5"
        opened.pop()[0].close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            again = http.send(http.build_request("GET", url, params=params), stream=True)
            if again.status_code == 200:
                break
            again.close()
            time.sleep(0.1)
        assert again.status_code == 200
        again.close()
        for response, _ in opened:
            response.close()
