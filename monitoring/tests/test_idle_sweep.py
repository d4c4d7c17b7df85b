"""The idle-session sweep is scheduled: every 15 minutes beat ends conversations idle longer
than SESSION_INACTIVITY_MINUTES, and the run is recorded."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from conversations.models import Conversation
from conversations.services import conversation_start
from monitoring.models import JobRun
from monitoring.tasks import sessions_expire_idle

pytestmark = pytest.mark.django_db


def test_the_sweep_is_on_beats_schedule_on_the_maintenance_queue():
    entry = django_settings.CELERY_BEAT_SCHEDULE["sessions-expire-idle"]
    assert entry["task"] == sessions_expire_idle.name
    assert entry["schedule"] <= 15 * 60
    assert django_settings.CELERY_TASK_ROUTES["monitoring.tasks.*"] == {"queue": "maintenance"}


def test_the_sweep_ends_idle_conversations_only_and_records_its_run(make_chatbot, settings):
    settings.SESSION_INACTIVITY_MINUTES = 30
    bot = make_chatbot()
    idle, fresh = conversation_start(chatbot=bot), conversation_start(chatbot=bot)
    Conversation.objects.filter(pk=idle.pk).update(
        last_activity_at=timezone.now() - dt.timedelta(minutes=31)
    )
    Conversation.objects.filter(pk=fresh.pk).update(
        last_activity_at=timezone.now() - dt.timedelta(minutes=29)
    )

    assert sessions_expire_idle.apply().get() == 1

    idle.refresh_from_db()
    fresh.refresh_from_db()
    assert (idle.status, idle.ended_reason) == (Conversation.Status.ENDED, "inactivity")
    assert fresh.status == Conversation.Status.ACTIVE
    run = JobRun.objects.get(job="sessions-expire-idle")
    assert run.outcome == JobRun.Outcome.OK and run.details == {"ended": 1}
