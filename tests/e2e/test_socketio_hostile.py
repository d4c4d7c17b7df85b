"""Hostile Socket.IO clients over the real stack (#18 items 5 and 6 for #22's Socket.IO server).

Every event name the server knows, the reserved ones (`connect`, `disconnect`) and unknown
ones, each with hostile payloads in every field (NUL, lone surrogates, huge and negative
numbers, deep nesting, wrong types): each event is answered (its ack, or an `error` event), the
socket stays connected and keeps answering, and no handler raises. A switched-off chatbot
answers nothing on a socket opened before the switch-off either, and images sent with a
Socket.IO message count against the image limit like every other path (#18 item 3).
"""

from __future__ import annotations

import asyncio

import pytest
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbots.tests.factories import create_chatbot
from conversations.models import Turn
from images.models import ImageUpload
from images.tests.conftest import b64
from images.tests.samples import image_bytes
from tests.e2e.client import post_message
from tests.e2e.conftest import ARTIFACTS, running_stack, stack_env
from tests.hostile import NUL, SURROGATE, nested

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


HOSTILE = st.one_of(
    st.sampled_from(
        [
            NUL,
            SURROGATE,
            "\udfff",
            10**20,
            -(10**20),
            -1,
            0,
            2**63,
            1e308,
            True,
            None,
            [],
            {},
            "",
            "0001-01-01",
            nested(40),
            {"a": {"b": [NUL]}},
            {NUL: 1},
            "x" * 5000,
        ]
    ),
    st.text(max_size=12),
    st.integers(),
)
EVENTS = [
    "chat:message",
    "chat:history",
    "chat:resume",
    "chat:cancel",
    # Reserved for the server's own handlers: a client sending them must not reach those.
    "connect",
    "disconnect",
    "message",
    "no:such:event",
    NUL,
    SURROGATE,
]
FIELDS = [
    "sessionId",
    "content",
    "message",
    "message_text",
    "idempotencyKey",
    "turnId",
    "lastEventId",
    "limit",
    "token",
]
EXAMPLES = 80


def hostile_events(session_id: str, turn_id: str) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []

    @given(
        event=st.sampled_from(EVENTS),
        payload=st.one_of(
            HOSTILE, st.dictionaries(st.sampled_from(FIELDS), HOSTILE, min_size=1, max_size=3)
        ),
    )
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def collect(event, payload):
        found.append((event, payload))

    collect()
    # Every event name once with each of the worst values, besides the random mix.
    for event in EVENTS:
        for value in (NUL, SURROGATE, 10**20, nested(40), "just text", [1, 2]):
            found.append((event, {"sessionId": session_id, "content": value, "turnId": value}))
        found.append((event, {"sessionId": session_id, "turnId": turn_id, "lastEventId": 10**20}))
        found.append((event, {"token": "forged", "sessionId": session_id}))
    return found


def test_hostile_socketio_events_are_answered_and_the_socket_stays(stack):
    bot = create_chatbot(public_id="sio-fuzz")
    reply = post_message(stack.base_url, bot.public_id, "Hello")
    events = hostile_events(reply["session_id"], reply["turn_id"])
    log_before = stack.daphne_log.stat().st_size
    problems: list[tuple] = []
    answered = {"ack": 0, "error": 0}

    async def scenario():
        sio = socketio.AsyncClient(reconnection=False)
        errors: list[dict] = []
        sio.on("error", lambda data=None: errors.append(data))
        await sio.connect(
            stack.base_url, auth={"token": reply["conversation_token"]}, wait_timeout=10
        )
        for event, payload in events:
            try:
                ack = await sio.call(event, payload, timeout=10)
                answered["error" if isinstance(ack, dict) and "error" in ack else "ack"] += 1
                alive = await sio.call("chat:history", {"limit": 1}, timeout=10)
                if not (isinstance(alive, dict) and "messages" in alive):
                    problems.append((event, repr(payload)[:120], f"then history gave {alive!r}"))
            except (TimeoutError, socketio.exceptions.TimeoutError):
                problems.append((event, repr(payload)[:120], "no answer in 10 s"))
            if not sio.connected:
                problems.append((event, repr(payload)[:120], "disconnected"))
                sio = socketio.AsyncClient(reconnection=False)
                await sio.connect(
                    stack.base_url, auth={"token": reply["conversation_token"]}, wait_timeout=10
                )
        await sio.disconnect()

    asyncio.run(scenario())
    with stack.daphne_log.open("rb") as log:
        log.seek(log_before)
        new_log = log.read().decode(errors="replace")
    assert problems == [], "\n".join(map(repr, problems[:30]))
    assert "Traceback" not in new_log, new_log[-3000:]
    assert answered["ack"] + answered["error"] == len(events)


def test_a_switched_off_chatbot_answers_nothing_on_an_open_socketio_connection(stack):
    bot = create_chatbot(public_id="sio-closing")
    reply = post_message(stack.base_url, bot.public_id, "Hello")

    def switch_off():
        # As staff do it (the admin saves the bot): the save drops the bot's cached records.
        bot.active = False
        bot.save(update_fields=["active"])

    async def scenario():
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(
            stack.base_url, auth={"token": reply["conversation_token"]}, wait_timeout=10
        )
        before = await sio.call("chat:history", {}, timeout=10)
        await asyncio.to_thread(switch_off)
        answers = {
            "message": await sio.call("chat:message", {"content": "Still there?"}, timeout=10),
            "history": await sio.call("chat:history", {}, timeout=10),
            "resume": await sio.call(
                "chat:resume", {"turnId": reply["turn_id"], "lastEventId": 0}, timeout=10
            ),
            "cancel": await sio.call("chat:cancel", {"turnId": reply["turn_id"]}, timeout=10),
        }
        await sio.disconnect()
        late = socketio.AsyncClient(reconnection=False)
        refused: list[dict] = []
        late.on("connect_error", lambda data=None: refused.append(data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            await late.connect(
                stack.base_url, auth={"token": reply["conversation_token"]}, wait_timeout=10
            )
        return before, answers, refused

    before, answers, refused = asyncio.run(scenario())
    assert before["messages"]  # the history was there while the bot was on
    assert {name: a["error"]["code"] for name, a in answers.items()} == {
        "message": "CHATBOT_INACTIVE",
        "history": "CHATBOT_INACTIVE",
        "resume": "CHATBOT_INACTIVE",
        "cancel": "CHATBOT_INACTIVE",
    }
    assert [r["data"]["error"]["code"] for r in refused] == ["CHATBOT_INACTIVE"]
    assert Turn.objects.filter(conversation_id=reply["session_id"]).count() == 1


@pytest.fixture(scope="module")
def image_limited_stack(django_db_setup, django_db_blocker):
    env = stack_env(IMAGE_UPLOAD_RATE_LIMIT="1/minute")
    with running_stack(env, ARTIFACTS, "sio-images", "turns,celery", 4) as running:
        yield running


def test_images_sent_with_a_socketio_message_count_against_the_image_limit(image_limited_stack):
    stack = image_limited_stack
    bot = create_chatbot(public_id="sio-images", image_upload_enabled=True)
    reply = post_message(stack.base_url, bot.public_id, "Hello")

    def message(color) -> dict:
        image = {"name": "p", "data": b64(image_bytes("PNG", color=color)), "mime": "image/png"}
        return {"content": "Is this damaged?", "image_data": image}

    async def scenario():
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(
            stack.base_url, auth={"token": reply["conversation_token"]}, wait_timeout=10
        )
        first = await sio.call("chat:message", message((1, 1, 1)), timeout=15)
        second = await sio.call("chat:message", message((2, 2, 2)), timeout=15)
        await sio.disconnect()
        return first, second

    first, second = asyncio.run(scenario())
    assert "turnId" in first, first
    assert second["error"]["code"] == "RATE_LIMITED"
    assert ImageUpload.objects.count() == 1
    assert Turn.objects.filter(conversation_id=reply["session_id"]).count() == 2
