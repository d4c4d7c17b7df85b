"""A worker's turns send their heartbeat together (#23): one statement per process every
TURN_HEARTBEAT_SECONDS instead of one ORM update per turn, and a turn no longer running is
stopped by the same beat."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from conversations import services
from conversations.models import Turn
from conversations.runtime import get_runtime
from conversations.tests.factories import create_turn

pytestmark = pytest.mark.django_db(transaction=True)


def _running(turn: Turn, *, beat_ago: int = 20) -> None:
    Turn.objects.filter(pk=turn.pk).update(
        status=Turn.Status.RUNNING, heartbeat_at=timezone.now() - dt.timedelta(seconds=beat_ago)
    )


def test_one_statement_refreshes_the_running_turns_and_names_them(make_chatbot):
    bot = make_chatbot(public_id="shop")
    running, reaped = create_turn(chatbot=bot), create_turn(chatbot=bot)
    _running(running)
    Turn.objects.filter(pk=reaped.pk).update(status=Turn.Status.FAILED)
    before = timezone.now()
    ours = services.turns_heartbeat(turn_ids=[str(running.pk), str(reaped.pk)])
    assert ours == {str(running.pk)}
    assert Turn.objects.get(pk=running.pk).heartbeat_at >= before
    assert Turn.objects.get(pk=reaped.pk).heartbeat_at is None
    assert services.turns_heartbeat(turn_ids=[]) == set()


def test_the_worker_beat_stops_a_turn_the_reaper_took(make_chatbot):
    bot = make_chatbot(public_id="shop")
    alive, reaped = create_turn(chatbot=bot), create_turn(chatbot=bot)
    _running(alive)
    Turn.objects.filter(pk=reaped.pk).update(status=Turn.Status.FAILED)
    rt = get_runtime()

    async def register():
        return rt.cancel_event(str(alive.pk)), rt.cancel_event(str(reaped.pk))

    alive_cancel, reaped_cancel = rt.submit(register()).result(5)
    try:
        rt.submit(rt.beat_once()).result(10)
        assert not alive_cancel.is_set() and reaped_cancel.is_set()
        fresh = Turn.objects.get(pk=alive.pk).heartbeat_at
        assert fresh > timezone.now() - dt.timedelta(seconds=5)
    finally:
        rt.release(str(alive.pk))
        rt.release(str(reaped.pk))
