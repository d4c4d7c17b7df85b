"""Replay of a turn's events (polling and WebSocket resume) reads PostgreSQL only when needed."""

from __future__ import annotations

import pytest

from conversations import selectors
from conversations.tests.factories import create_events, create_turn

pytestmark = pytest.mark.django_db


def test_events_redis_holds_are_answered_without_a_query(django_assert_num_queries):
    turn = create_turn()
    create_events(turn, 5, redis=True)
    with django_assert_num_queries(0):
        page = selectors.stream_events_after(turn=turn, after=2, limit=10)
    assert [e["id"] for e in page["events"]] == [3, 4, 5]
    assert page["has_more"] is True


def test_a_range_redis_lacks_comes_from_postgresql(django_assert_num_queries):
    turn = create_turn()
    create_events(turn, 3)
    # 1 and 2 expired from Redis (or were written while it was away)
    create_events(turn, 1, first=3, redis=True)
    with django_assert_num_queries(1):
        page = selectors.stream_events_after(turn=turn, after=0, limit=10)
    assert [e["id"] for e in page["events"]] == [1, 2, 3]
