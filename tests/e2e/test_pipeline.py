"""End to end: a real Daphne, a real Celery worker, real Redis and PostgreSQL, a real WS client."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from chatbots.models import AIEndpoint, TextRule
from chatbots.tests.factories import (
    create_chatbot,
    create_endpoint,
    create_entry,
    create_flow,
    create_kb,
)
from conversations.models import AICall, Message, Turn
from tests.e2e.client import answer_text, assert_gapless, poll_events, post_message, ws_events

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def flowise_bot(server, *, public_id: str = "vinhuset", **chatbot) -> tuple:
    chatbot.setdefault("with_main_flow", False)
    bot = create_chatbot(public_id=public_id, **chatbot)
    endpoint = create_endpoint(
        kind=AIEndpoint.Kind.FLOWISE,
        base_url=server.url,
        api_key="fw-key-0123456789",
        read_timeout=2.0,
        total_timeout=20,
    )
    flow = create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    return bot, flow


def stored_answer(turn_id: str) -> str:
    turn = Turn.objects.select_related("assistant_message").get(pk=turn_id)
    return turn.assistant_message.content if turn.assistant_message else ""


def test_demo_bot_streams_an_answer_equal_to_the_stored_message(stack):
    bot = create_chatbot(public_id="demo-e2e", with_main_flow=False, language="en")
    kb = create_kb(chatbot=bot, name="faq")
    create_entry(knowledge_base=kb, title="Shipping", text="We ship within two days to Denmark.")
    create_flow(chatbot=bot, name="main", is_main=True, knowledge_base=kb)
    reply = post_message(stack.base_url, "demo-e2e", "How fast do you ship?")
    events = asyncio.run(ws_events(reply))
    assert_gapless(events)
    assert [e["event"] for e in events][:2] == ["start", "metadata"]
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "completed"
    text = answer_text(events)
    assert "We ship within two days to Denmark." in text
    assert text == stored_answer(reply["turn_id"])
    assert events[-1]["data"]["message_id"] == str(
        Turn.objects.get(pk=reply["turn_id"]).assistant_message_id
    )


def test_flowise_answer_streams_through_text_rules_and_is_logged(stack, flowise):
    bot, _flow = flowise_bot(flowise)
    TextRule.objects.create(chatbot=bot, kind=TextRule.Kind.EXCLAMATION, replace=".")
    TextRule.objects.create(
        chatbot=bot, kind=TextRule.Kind.REPLACE, find="red wine", replace="rødvin"
    )
    flowise.scenario.tokens = [
        "Try",
        " our",
        " red",
        " wi",
        "ne",
        "!",
        " It",
        " is",
        " great",
        "!!",
    ]
    flowise.scenario.source_documents = [
        {"pageContent": "Wine list", "metadata": {"source": "wines.pdf"}}
    ]
    reply = post_message(stack.base_url, "vinhuset", "Which wine?")
    events = asyncio.run(ws_events(reply))
    assert_gapless(events)
    text = answer_text(events)
    assert text == "Try our rødvin. It is great.."
    assert text == stored_answer(reply["turn_id"])
    assert any(e["event"] == "source_documents" for e in events)
    request = flowise.requests[-1]
    assert request.headers["authorization"] == "Bearer fw-key-0123456789"
    assert request.json["streaming"] is True
    assert request.json["overrideConfig"]["sessionId"] == reply["session_id"]
    call = AICall.objects.get(turn_id=reply["turn_id"])
    assert call.status == "ok" and call.answer == "Try our red wine! It is great!!"
    assert call.question == "Which wine?" and call.endpoint_kind == "flowise"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_dropping_the_connection_mid_answer_loses_nothing(stack, flowise, transport):
    flowise_bot(flowise)
    answer = " ".join(f"word{i}" for i in range(60))
    flowise.scenario.answer = answer
    flowise.scenario.tokens_per_second = 150
    rng = random.Random(7)
    for _ in range(3):
        reply = post_message(stack.base_url, "vinhuset", "Tell me a long story")
        seen: list[dict] = []
        while not seen or seen[-1].get("event") != "end":
            assert "error" not in seen[-1:][0] if seen else True, seen[-1]
            after = seen[-1]["id"] if seen else 0
            cut = after + rng.randint(1, 6)
            if transport == "websocket":
                seen += asyncio.run(ws_events(reply, after=after, stop_after_id=cut))
            else:
                batch = poll_events(stack.base_url, reply, after=after)
                seen += batch[: cut - after] if len(batch) > cut - after else batch
        assert_gapless(seen)
        assert answer_text(seen) == answer
        assert answer_text(seen) == stored_answer(reply["turn_id"])


def test_resume_after_the_turn_finished_replays_from_postgresql(stack, flowise):
    from config.redis import get_redis
    from conversations.streaming import stream_key

    flowise_bot(flowise)
    flowise.scenario.answer = "A short answer for later."
    reply = post_message(stack.base_url, "vinhuset", "Hi")
    first = asyncio.run(ws_events(reply))
    # Last week's turn: its Redis log has expired; PostgreSQL still has every event.
    get_redis().delete(stream_key(reply["turn_id"]))
    again = asyncio.run(ws_events(reply, after=2))
    assert [e["id"] for e in again] == [e["id"] for e in first[2:]]
    assert answer_text(again) == "A short answer for later."


@pytest.mark.parametrize(
    ("knobs", "code"),
    [
        ({"status": 503, "fail_times": None}, "UPSTREAM_UNAVAILABLE"),
        ({"reset_after_tokens": 3}, "UPSTREAM_TRUNCATED"),
        ({"stall_after_tokens": 2}, "UPSTREAM_TIMEOUT"),
        ({"hang_without_headers": True}, "UPSTREAM_TIMEOUT"),
        ({"malformed_after_tokens": 2}, "UPSTREAM_BAD_RESPONSE"),
        ({"error_after_tokens": 2, "error_message": "Pinecone said no"}, "UPSTREAM_STREAM_ERROR"),
        ({"empty_answer": True}, "UPSTREAM_EMPTY"),
        ({"no_end": True}, "UPSTREAM_TIMEOUT"),
    ],
)
def test_every_upstream_failure_ends_the_turn_with_an_error_event(stack, flowise, knobs, code):
    flowise_bot(flowise)
    flowise.scenario.update(knobs)
    reply = post_message(stack.base_url, "vinhuset", "Hello?")
    events = asyncio.run(ws_events(reply, timeout=40))
    assert_gapless(events)
    kinds = [e["event"] for e in events]
    assert kinds[-2:] == ["error", "end"], kinds
    assert events[-2]["data"]["code"] == code
    assert events[-2]["data"]["message"]
    assert "fw-key-0123456789" not in str(events)
    turn = Turn.objects.get(pk=reply["turn_id"])
    assert turn.status == Turn.Status.FAILED and turn.error_code == code
    # Whatever the customer saw before the failure is kept, marked incomplete.
    if answer_text(events):
        assert stored_answer(reply["turn_id"]) == answer_text(events)


def test_rate_limited_upstream_is_retried_before_the_first_token(stack, flowise):
    flowise_bot(flowise)
    flowise.scenario.update(
        {"status": 429, "fail_times": 1, "retry_after": "1", "answer": "Finally here."}
    )
    reply = post_message(stack.base_url, "vinhuset", "Anyone?")
    events = asyncio.run(ws_events(reply))
    assert answer_text(events) == "Finally here."
    assert len([r for r in flowise.requests if "/prediction/" in r.path]) == 2
    assert AICall.objects.get(turn_id=reply["turn_id"]).attempts == 2


def test_cancel_stops_the_answer_and_aborts_flowise(stack, flowise):
    import json

    import websockets

    flowise_bot(flowise)
    flowise.scenario.answer = " ".join(["slow"] * 200)
    flowise.scenario.tokens_per_second = 20
    reply = post_message(stack.base_url, "vinhuset", "Go on")

    async def scenario():
        url = reply["websocket_url"] + "?token=" + reply["conversation_token"]
        async with websockets.connect(url) as ws:
            await ws.recv()
            await ws.send(
                json.dumps({"type": "resume", "turn_id": reply["turn_id"], "last_event_id": 0})
            )
            events = []
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if msg.get("type") != "event":
                    continue
                events.append(msg)
                if msg["event"] == "token" and len(events) == 5:
                    await ws.send(json.dumps({"type": "cancel", "turn_id": reply["turn_id"]}))
                if msg["event"] == "end":
                    return events

    events = asyncio.run(scenario())
    assert events[-1]["data"]["status"] == "cancelled"
    assert Turn.objects.get(pk=reply["turn_id"]).status == Turn.Status.CANCELLED
    assert len(answer_text(events).split()) < 200
    assert any(chat_id for _flow, chat_id, _t in flowise.aborts)


def test_sequential_routing_picks_the_flow_for_the_routers_label(stack, flowise):
    bot, main = flowise_bot(flowise)
    product = create_flow(chatbot=bot, name="flow3", routing_key="product", endpoint=main.endpoint)
    create_flow(chatbot=bot, name="router", role="router", endpoint=main.endpoint)

    def answer_for(request):
        return None

    flowise.scenario.answer = "product"
    reply = post_message(stack.base_url, "vinhuset", "Do you have Barolo?")
    events = asyncio.run(ws_events(reply))
    meta = next(e for e in events if e["event"] == "metadata")
    assert meta["data"] == {"flow": "flow3", "route": "product", "routing_mode": "sequential"}
    targets = [r.path.rsplit("/", 1)[-1] for r in flowise.requests if "/prediction/" in r.path]
    router_flow = bot.flows.get(role="router")
    assert targets == [router_flow.target, product.target]
    assert Turn.objects.get(pk=reply["turn_id"]).flow == "flow3"


def test_parallel_routing_releases_main_when_the_router_picks_it(stack, flowise):
    bot, main = flowise_bot(flowise, routing_mode="parallel")
    create_flow(chatbot=bot, name="flow3", routing_key="product", endpoint=main.endpoint)
    create_flow(chatbot=bot, name="router", role="router", endpoint=main.endpoint)
    flowise.scenario.answer = "none of them"
    # Each answer starts this late: run one after the other, main's request would come at
    # least this long after the router's. (A fixed 0.5 s flaked on a loaded machine.)
    flowise.scenario.delay_before_first_token = answer_delay = 2.0
    # Silence of that length must not trip the endpoint's read timeout (2 s in flowise_bot).
    AIEndpoint.objects.filter(pk=main.endpoint_id).update(read_timeout=10.0)
    reply = post_message(stack.base_url, "vinhuset", "What are your opening hours?")
    events = asyncio.run(ws_events(reply))
    assert next(e for e in events if e["event"] == "metadata")["data"]["flow"] == "main"
    assert answer_text(events) == "none of them"
    # Both started at once: main's request arrived before the router could have answered.
    times = [r.time for r in flowise.requests if "/prediction/" in r.path]
    assert len(times) == 2 and abs(times[1] - times[0]) < answer_delay
    # Recorded for the execution statistics: the main flow's early start served the answer.
    assert Turn.objects.get(pk=reply["turn_id"]).route["parallel"] == "released"


def test_parallel_routing_stops_main_when_the_router_picks_another_flow(stack, flowise):
    bot, main = flowise_bot(flowise, routing_mode="parallel")
    create_flow(chatbot=bot, name="flow3", routing_key="product", endpoint=main.endpoint)
    create_flow(chatbot=bot, name="router", role="router", endpoint=main.endpoint)
    flowise.scenario.answer = "product"  # the router's label, and flow3's answer
    reply = post_message(stack.base_url, "vinhuset", "Do you have red wine?")
    events = asyncio.run(ws_events(reply))
    assert next(e for e in events if e["event"] == "metadata")["data"]["flow"] == "flow3"
    assert answer_text(events) == "product"
    # Recorded for the execution statistics: the main flow's call was wasted.
    assert Turn.objects.get(pk=reply["turn_id"]).route["parallel"] == "aborted"


def test_openai_compatible_endpoint_streams_with_usage(stack, openai_server):
    bot = create_chatbot(public_id="oa-shop", with_main_flow=False)
    endpoint = create_endpoint(
        kind=AIEndpoint.Kind.OPENAI,
        base_url=openai_server.url + "/v1",
        api_key="sk-test-abcdef123456",
    )
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint, target="gpt-4o-mini")
    openai_server.scenario.answer = "Hello from a model."
    reply = post_message(stack.base_url, "oa-shop", "Hi model")
    events = asyncio.run(ws_events(reply))
    assert answer_text(events) == "Hello from a model."
    assert events[-1]["data"]["usage"].get("total_tokens")
    call = AICall.objects.get(turn_id=reply["turn_id"])
    assert call.total_tokens and call.model == "gpt-4o-mini"


def test_reaper_fails_a_turn_whose_worker_died_and_clients_hear_it(stack, flowise, settings):
    from django.utils import timezone

    from conversations.services import turns_reap_stale

    flowise_bot(flowise)
    reply = post_message(stack.base_url, "vinhuset", "x", headers={})
    asyncio.run(ws_events(reply))
    # A turn left running by a worker that was killed: heartbeat long gone.
    turn = Turn.objects.get(pk=reply["turn_id"])
    message = Message.objects.create(
        conversation=turn.conversation, role="user", content="y", sequence=99
    )
    dead = Turn.objects.create(
        conversation=turn.conversation,
        user_message=message,
        status="running",
        heartbeat_at=timezone.now() - timezone.timedelta(minutes=5),
    )
    settings.TURN_STALE_SECONDS = 30
    assert turns_reap_stale() == 1
    dead_reply = {**reply, "turn_id": str(dead.pk)}
    events = asyncio.run(ws_events(dead_reply))
    assert [e["event"] for e in events] == ["error", "end"]
    assert events[0]["data"]["code"] == "WORKER_LOST"
    assert turns_reap_stale() == 0


def test_outsiders_cannot_read_or_resume_a_turn(stack, flowise):
    import httpx

    flowise_bot(flowise)
    reply = post_message(stack.base_url, "vinhuset", "private question")
    other = post_message(stack.base_url, "vinhuset", "someone else")
    url = f"{stack.base_url}/api/stream-events/{reply['turn_id']}"
    for headers in (
        {},
        {"Authorization": f"Bearer {other['conversation_token']}"},
        {"Authorization": "Bearer forged"},
    ):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 404
        assert "private" not in response.text
    events = asyncio.run(ws_events({**other, "turn_id": reply["turn_id"]}))
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["code"] == "TURN_NOT_FOUND"
    missing = httpx.get(
        f"{stack.base_url}/api/stream-events/{uuid.uuid4()}",
        headers={"Authorization": f"Bearer {reply['conversation_token']}"},
    )
    assert missing.status_code == 404
