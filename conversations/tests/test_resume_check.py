"""Checking a client's resume point (WebSocket, Socket.IO, SSE) before the reader that follows
the turn replays from it: the same refusals as polling, and no read of the log for a turn that
had not finished, since its resume point is never refused and its replay reads the log anyway."""

from __future__ import annotations

import pytest

from config.errors import ApiError
from conversations import selectors
from conversations.models import StreamEvent, Turn
from conversations.tests.factories import create_conversation, create_events, create_turn

pytestmark = pytest.mark.django_db


def finished_turn() -> Turn:
    turn = create_turn()
    create_events(
        turn, events=[("start", {}), ("token", {"text": "Hi"}), ("end", {"status": "completed"})]
    )
    Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.COMPLETED, last_event_id=3)
    return Turn.objects.get(pk=turn.pk)


def test_a_running_turn_is_resumed_from_any_point_without_reading_its_log(
    django_assert_num_queries, monkeypatch
):
    turn = create_turn()
    Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.RUNNING)
    turn = Turn.objects.get(pk=turn.pk)
    # What the page polling gives says the same: never refused, more to come.
    assert selectors.stream_events_after(turn=turn, after=99, limit=1)["has_more"] is True
    monkeypatch.setattr(selectors.eventlog, "events_after_sync", None)  # a read would fail
    with django_assert_num_queries(0):
        for after in (0, 2, 99):
            assert selectors.stream_resume_check(turn=turn, after=after) is True


def test_a_finished_turns_resume_point_past_its_last_event_is_refused_with_400():
    with pytest.raises(ApiError) as refused:
        selectors.stream_resume_check(turn=finished_turn(), after=4)
    assert refused.value.status == 400


def test_a_finished_turns_resume_point_whose_events_are_gone_is_refused_with_410():
    turn = finished_turn()
    StreamEvent.objects.filter(turn=turn).delete()
    with pytest.raises(ApiError) as refused:
        selectors.stream_resume_check(turn=turn, after=1)
    assert refused.value.status == 410


def test_a_finished_turn_tells_whether_anything_follows_the_resume_point():
    turn = finished_turn()
    assert selectors.stream_resume_check(turn=turn, after=2) is True
    assert selectors.stream_resume_check(turn=turn, after=3) is False


def test_the_turn_to_resume_is_found_only_in_its_conversation_with_its_point_checked():
    turn = finished_turn()
    mine = {"conversation_id": turn.conversation_id, "turn_id": turn.pk}
    assert selectors.turn_for_resume(**mine, after=3) == turn
    other = create_conversation(chatbot=turn.conversation.chatbot)
    assert selectors.turn_for_resume(conversation_id=other.pk, turn_id=turn.pk, after=3) is None
    with pytest.raises(ApiError):
        selectors.turn_for_resume(**mine, after=4)
