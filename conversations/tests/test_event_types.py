"""conversations.event_types.Event says what an event is wherever it travels: made by the
publisher's envelope, appended to the turn's Redis stream, stored as a row, read back by the
event log's reader from either log, and carried on the channel layer (LayerMessage)."""

from __future__ import annotations

import pytest

from conversations import eventlog, services, streaming
from conversations.event_types import Event, LayerMessage
from conversations.tests.factories import create_turn
from tests.typed_shapes import shape_problems

pytestmark = pytest.mark.django_db


def test_an_event_has_the_keys_of_its_type_as_made_as_read_from_both_logs_and_as_carried():
    turn = create_turn()
    turn_id = str(turn.pk)
    [made] = services.append_events_sync(turn_id=turn_id, events=[("metadata", {"flow": "main"})])

    from_redis = eventlog.redis_events_after_sync(streaming.event_redis(turn_id), turn_id, 0, 10)
    from_db = eventlog.db_events_after(turn_id, 0, 10)

    assert [e["id"] for e in from_redis] == [e["id"] for e in from_db] == [made["id"]]
    for name, event in (("made", made), ("redis", from_redis[0]), ("row", from_db[0])):
        assert shape_problems(event, Event, name) == []
    message = streaming.layer_message(turn_id, made)
    assert shape_problems(message, LayerMessage, "message") == []


def test_the_shape_check_finds_an_event_without_its_timestamp():
    event = {"id": 1, "event": "token", "data": {"text": "Hi"}}

    assert shape_problems(event, Event, "event") == ["event.timestamp is missing"]
