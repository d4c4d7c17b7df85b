"""Celery tasks of the monitoring app (queue `maintenance`): thin adapters around the jobs."""

from __future__ import annotations

from celery import shared_task

from conversations.services import conversations_expire_idle
from monitoring import maintenance

# These tasks store their own JobRun (with a lock and row counts); the generic recorder of
# beat-started tasks (monitoring.receivers) leaves them alone.
SELF_RECORDING = {
    "monitoring.tasks.cache_cleanup",
    "monitoring.tasks.turn_metrics_cleanup",
    "monitoring.tasks.stream_events_prune",
    "monitoring.tasks.error_logs_prune",
    "monitoring.tasks.expired_tokens_flush",
    "privacy.tasks.retention_enforce",
    "monitoring.tasks.sessions_expire_idle",
}


def _run(task, default_job: str, work) -> int:
    # The schedule's name when beat started us (so two schedules of one task stay apart).
    from monitoring.receivers import request_header

    job = request_header(task.request, "periodic_task_name") or default_job
    run = maintenance.job_execute(job=job, task=task.name, work=work)
    return run.rows_affected or 0


@shared_task(
    bind=True,
    name="monitoring.tasks.cache_cleanup",
    ignore_result=True,
    soft_time_limit=600,
    time_limit=660,
)
def cache_cleanup(self) -> int:
    return _run(self, maintenance.CACHE_CLEANUP_JOB, maintenance.cache_cleanup)


@shared_task(
    bind=True,
    name="monitoring.tasks.turn_metrics_cleanup",
    ignore_result=True,
    soft_time_limit=3000,
    time_limit=3600,
)
def turn_metrics_cleanup(self) -> int:
    return _run(self, maintenance.TURN_METRICS_JOB, maintenance.turn_metrics_cleanup)


@shared_task(
    bind=True,
    name="monitoring.tasks.stream_events_prune",
    ignore_result=True,
    soft_time_limit=3000,
    time_limit=3600,
)
def stream_events_prune(self) -> int:
    return _run(self, maintenance.STREAM_EVENTS_JOB, maintenance.stream_events_prune)


@shared_task(
    bind=True,
    name="monitoring.tasks.error_logs_prune",
    ignore_result=True,
    soft_time_limit=3000,
    time_limit=3600,
)
def error_logs_prune(self) -> int:
    return _run(self, maintenance.ERROR_LOGS_JOB, maintenance.error_logs_prune)


EXPIRED_TOKENS_JOB = "expired-tokens-flush"


def _expired_tokens_flush(progress: maintenance.JobProgress) -> None:
    # Every refresh leaves an outstanding row (and a blacklist row for the token it used up):
    # simplejwt's own clean-up deletes the rows of tokens past their expiry, which can never be
    # used again. Counted first, for the job run; tokens issued meanwhile are not yet expired.
    from django.core.management import call_command
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
    from rest_framework_simplejwt.utils import aware_utcnow

    progress.rows = OutstandingToken.objects.filter(expires_at__lte=aware_utcnow()).count()
    call_command("flushexpiredtokens")
    progress.details["expired_tokens"] = progress.rows


@shared_task(
    bind=True,
    name="monitoring.tasks.expired_tokens_flush",
    ignore_result=True,
    soft_time_limit=600,
    time_limit=660,
)
def expired_tokens_flush(self) -> int:
    return _run(self, EXPIRED_TOKENS_JOB, _expired_tokens_flush)


SESSIONS_IDLE_JOB = "sessions-expire-idle"


def _sessions_expire_idle(progress: maintenance.JobProgress) -> None:
    # A conversation idle past SESSION_INACTIVITY_MINUTES is also ended lazily when it is next
    # touched; this sweep ends the ones nobody comes back to, so "active" means active.

    progress.rows = conversations_expire_idle()
    progress.details["ended"] = progress.rows


@shared_task(
    bind=True,
    name="monitoring.tasks.sessions_expire_idle",
    ignore_result=True,
    soft_time_limit=600,
    time_limit=660,
)
def sessions_expire_idle(self) -> int:
    return _run(self, SESSIONS_IDLE_JOB, _sessions_expire_idle)
