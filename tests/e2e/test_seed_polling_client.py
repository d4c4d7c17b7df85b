"""A frontend written against seed 000's polling API follows an answer unchanged, end to end."""

from __future__ import annotations

import time

import httpx
import pytest

from conversations.models import Turn
from tests.e2e.client import widget_headers
from tests.e2e.test_pipeline import flowise_bot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


ANSWER = " ".join(f"word{i}" for i in range(60))


def seed_poll(url: str, token: str, *, last_event_id: int, header: bool, stop_at: int | None):
    """Seed 000's loop: GET streaming_url with the last id seen, append `data.token`, until
    `has_more` is false (or `stop_at` tokens, when the tab 'drops' the connection)."""
    seen: list[dict] = []
    deadline = time.monotonic() + 60
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        while time.monotonic() < deadline:
            if header:
                response = http.get(url, headers={"Last-Event-ID": str(last_event_id)})
            else:
                response = http.get(url, params={"last_event_id": last_event_id})
            assert response.status_code == 200, response.text
            body = response.json()
            seen += body["events"]
            last_event_id = body["last_event_id"]
            tokens = [e for e in seen if e["event"] == "token"]
            if not body["has_more"] or (stop_at is not None and len(tokens) >= stop_at):
                return seen, last_event_id
            time.sleep(0.05)
    raise AssertionError("the seed client did not reach the end in time")


def test_a_seed_000_polling_client_shows_the_stored_answer_after_a_dropped_poll(stack, flowise):
    flowise_bot(flowise)
    flowise.scenario.answer = ANSWER
    flowise.scenario.tokens_per_second = 40
    reply = httpx.post(
        f"{stack.base_url}/api/process-message",
        json={
            "user_id": "user-123",
            "chatbot_id": "vinhuset",
            "message_text": "Hello",
            "image_data": None,
            "conversation_history": [],
            "configuration": {},
        },
        headers=widget_headers("vinhuset"),
        timeout=10,
    ).json()
    assert reply["success"] is True and reply["flow_type"] == "main"
    url = reply["streaming_url"]
    first, last_id = seed_poll(
        url, reply["conversation_token"], last_event_id=0, header=False, stop_at=5
    )
    assert Turn.objects.get(pk=reply["turn_id"]).status == Turn.Status.RUNNING  # mid-answer
    rest, _ = seed_poll(
        url, reply["conversation_token"], last_event_id=last_id, header=True, stop_at=None
    )
    events = first + rest
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))  # nothing lost or doubled
    assert events[-1]["event"] == "end"
    shown = "".join(e["data"]["token"] for e in events if e["event"] == "token")
    turn = Turn.objects.select_related("assistant_message").get(pk=reply["turn_id"])
    assert shown == turn.assistant_message.content == ANSWER
    assert all(e["data"]["markers"] == {} for e in events if e["event"] == "token")
