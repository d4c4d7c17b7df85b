"""Expired refresh tokens are cleaned up on a schedule: the beat entry runs simplejwt's
flushexpiredtokens through a recorded maintenance job."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from monitoring import tasks
from monitoring.models import JobRun

pytestmark = pytest.mark.django_db


def test_the_task_removes_expired_tokens_and_their_blacklist_rows_and_keeps_live_ones():
    user = get_user_model().objects.create_user("api-user", password="pw-0123456789")
    expired, used_up, live = (RefreshToken.for_user(user) for _ in range(3))
    used_up.blacklist()
    OutstandingToken.objects.filter(jti__in=[expired["jti"], used_up["jti"]]).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )

    assert tasks.expired_tokens_flush.apply().get() == 2

    assert list(OutstandingToken.objects.values_list("jti", flat=True)) == [live["jti"]]
    assert not BlacklistedToken.objects.exists()
    run = JobRun.objects.get(job=tasks.EXPIRED_TOKENS_JOB)
    assert run.outcome == "ok" and run.rows_affected == 2


def test_beat_runs_the_clean_up_daily(settings):
    from django_celery_beat.models import PeriodicTask

    from monitoring.schedules import schedules_ensure

    entry = settings.CELERY_BEAT_SCHEDULE["expired-tokens-flush"]
    assert entry["task"] == "monitoring.tasks.expired_tokens_flush"
    schedules_ensure()
    row = PeriodicTask.objects.get(name="expired-tokens-flush")
    assert row.enabled and row.task == entry["task"]
    assert (row.crontab.hour, row.crontab.minute) == ("4", "45")
