"""Replay of a turn's events (polling and WebSocket resume) reads PostgreSQL only when needed."""

from __future__ import annotations

import json

import pytest

from chatbots.tests.factories import create_chatbot
from config.redis import get_redis
from conversations import selectors, services, streaming

pytestmark = pytest.mark.django_db


def _turn():
    conversation = services.conversation_start(chatbot=create_chatbot())
    turn, _ = services.message_submit(conversation=conversation, text="Hello?")
    return turn


def _to_redis(turn, seqs) -> None:
    key = streaming.stream_key(str(turn.pk))
    for seq in seqs:
        env = streaming.envelope(seq, "token", {"text": f"t{seq}"})
        get_redis().xadd(key, {"e": json.dumps(env)}, id=f"0-{seq}")


def test_events_redis_holds_are_answered_without_a_query(django_assert_num_queries):
    turn = _turn()
    _to_redis(turn, range(1, 6))
    with django_assert_num_queries(0):
        page = selectors.stream_events_after(turn=turn, after=2, limit=10)
    assert [e["id"] for e in page["events"]] == [3, 4, 5]
    assert page["has_more"] is True


def test_a_range_redis_lacks_comes_from_postgresql(django_assert_num_queries):
    turn = _turn()
    services.stream_rows_save_many(
        [(str(turn.pk), [streaming.envelope(s, "token", {"text": f"t{s}"}) for s in (1, 2, 3)])]
    )
    _to_redis(turn, [3])  # 1 and 2 expired from Redis (or were written while it was away)
    with django_assert_num_queries(1):
        page = selectors.stream_events_after(turn=turn, after=0, limit=10)
    assert [e["id"] for e in page["events"]] == [1, 2, 3]
