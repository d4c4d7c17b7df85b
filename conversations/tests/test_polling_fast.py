"""Polling on the event loop (conversations/polling.py): a customer's poll of a turn Redis holds
is answered without a query, in the very shape the DRF view gives; everything it cannot decide
goes to that view, so refusals keep their status and wording."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from chatbots.selectors import ACCESS_KEY
from chatbots.tests.factories import create_chatbot
from config.redis import get_redis
from conversations import selectors, streaming
from conversations.access import conversation_token_issue
from conversations.tests.factories import create_events, create_turn

pytestmark = pytest.mark.django_db(transaction=True)


def _turn(**chatbot_fields):
    turn = create_turn(chatbot=create_chatbot(**chatbot_fields))
    token = conversation_token_issue(
        conversation_id=turn.conversation_id, chatbot_id=turn.conversation.chatbot_id
    )
    return turn, token


def _write(turn, events, *, age_seconds: float = 0.0) -> None:
    """Events as the worker writes them: `start` first (naming the conversation), then these."""
    stamp = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_seconds)).isoformat(
        timespec="milliseconds"
    )
    key = streaming.stream_key(str(turn.pk))
    start = {"turn_id": str(turn.pk), "conversation_id": str(turn.conversation_id)}
    for seq, (event, data) in enumerate([("start", start), *events], start=1):
        env = {**streaming.envelope(seq, event, data), "timestamp": stamp.replace("+00:00", "Z")}
        get_redis().xadd(key, {"e": json.dumps(env)}, id=f"0-{seq}")


def _tokens(n: int) -> list[tuple[str, dict]]:
    return [("token", {"text": f" t{i}"}) for i in range(n)]


def _poll(client, turn, token, **params):
    return client.get(f"/api/stream-events/{turn.pk}", {"token": token, **params})


def test_a_running_turn_is_polled_without_a_query_and_as_the_drf_view_answers(
    client, django_assert_num_queries
):
    turn, token = _turn()
    _write(turn, _tokens(5))
    _poll(client, turn, token)  # warms the chatbot's access record
    with django_assert_num_queries(0):
        fast = _poll(client, turn, token, after="2", limit="2")
    assert fast.status_code == 200
    slow = selectors.stream_events_after(turn=turn, after=2, limit=2)
    assert fast.json() == json.loads(json.dumps(slow))
    assert [e["id"] for e in fast.json()["events"]] == [3, 4]
    assert fast.json()["events"][0]["data"]["token"] == " t1"  # seed 000's field is there too
    assert fast.json()["session_status"] == "active" and fast.json()["has_more"] is True


def test_a_finished_turn_ends_the_same_way_both_ways(client, django_assert_num_queries):
    turn, token = _turn()
    _write(turn, [*_tokens(2), ("end", {"status": "completed", "message_id": None})])
    turn.status = "completed"
    turn.last_event_id = 4
    turn.save(update_fields=["status", "last_event_id"])
    _poll(client, turn, token)
    for after in (0, 3, 4):
        with django_assert_num_queries(0):
            fast = _poll(client, turn, token, after=str(after))
        slow = selectors.stream_events_after(turn=turn, after=after, limit=500)
        assert fast.json() == json.loads(json.dumps(slow)), after
    assert fast.json() == {
        "events": [],
        "session_status": "completed",
        "last_event_id": 4,
        "has_more": False,
    }


def test_another_conversations_token_gets_the_drf_views_404(client):
    turn, _ = _turn()
    _, other_token = _turn()
    _write(turn, _tokens(1))
    response = _poll(client, turn, other_token)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "TURN_NOT_FOUND"


def test_a_switched_off_chatbot_is_refused_at_once_though_its_access_was_cached(client):
    turn, token = _turn()
    _write(turn, _tokens(1))
    assert _poll(client, turn, token).status_code == 200
    assert get_redis().get(ACCESS_KEY.format(turn.conversation.chatbot_id)) is not None
    chatbot = turn.conversation.chatbot
    chatbot.active = False
    chatbot.save()
    response = _poll(client, turn, token)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "CHATBOT_INACTIVE"


def test_a_site_not_among_the_bots_origins_is_refused(client):
    turn, token = _turn(allowed_origins=["https://shop.example"])
    _write(turn, _tokens(1))
    ok = client.get(
        f"/api/stream-events/{turn.pk}", {"token": token}, HTTP_ORIGIN="https://shop.example"
    )
    refused = client.get(
        f"/api/stream-events/{turn.pk}", {"token": token}, HTTP_ORIGIN="https://evil.example"
    )
    assert ok.status_code == 200
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ORIGIN_NOT_ALLOWED"


@pytest.mark.parametrize(
    "params, status, code",
    [
        ({"after": "x"}, 400, "VALIDATION_ERROR"),
        ({"limit": "0"}, 400, "VALIDATION_ERROR"),
        ({"after": "99"}, 400, "VALIDATION_ERROR"),
    ],
)
def test_bad_parameters_get_the_drf_views_errors(client, params, status, code):
    turn, token = _turn()
    _write(turn, [*_tokens(1), ("end", {"status": "completed", "message_id": None})])
    turn.status = "completed"
    turn.last_event_id = 3
    turn.save(update_fields=["status", "last_event_id"])
    response = _poll(client, turn, token, **params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_a_quiet_running_turn_is_read_from_postgresql_too(client, django_assert_max_num_queries):
    """Redis has nothing new and its newest event is old: PostgreSQL may hold events Redis
    missed (written while it was away), so the DRF view answers."""
    turn, token = _turn()
    _write(turn, _tokens(2), age_seconds=10)
    create_events(turn, first=4, events=[("token", {"text": " late"})])
    _poll(client, turn, token)
    response = _poll(client, turn, token, after="3")
    assert [e["id"] for e in response.json()["events"]] == [4]


def test_a_turn_redis_does_not_know_yet_is_answered_by_the_drf_view(client):
    turn, token = _turn()  # pending: the worker has not written `start`
    response = _poll(client, turn, token)
    assert response.status_code == 200
    assert response.json() == {
        "events": [],
        "session_status": "active",
        "last_event_id": 0,
        "has_more": True,
    }


def test_a_staff_jwt_is_checked_by_drf_not_skipped(client):
    turn, token = _turn()
    _write(turn, _tokens(1))
    response = client.get(
        f"/api/stream-events/{turn.pk}",
        {"token": token},
        HTTP_AUTHORIZATION="Bearer aaa.bbb.ccc",  # a JWT that does not verify
    )
    assert response.status_code == 401
