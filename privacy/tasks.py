"""Celery tasks of the privacy app (queue `maintenance`): thin adapters around the services."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from monitoring.maintenance import job_execute
from privacy import services

RETENTION_JOB = "privacy-retention"


@shared_task(
    bind=True,
    name="privacy.tasks.retention_enforce",
    ignore_result=True,
    soft_time_limit=3000,
    time_limit=3600,
)
def retention_enforce(self, now: str | None = None) -> int:
    """The retention periods of the shops where it is night (services.retention_enforce,
    nightly), under the maintenance job frame (lock, JobRun). Beat runs it hourly; `now` (ISO
    8601) is for tests."""
    at = dt.datetime.fromisoformat(now) if now else None

    def work(progress) -> None:
        deleted = services.retention_enforce(now=at, nightly=True)
        progress.details.update(deleted)
        progress.rows += sum(deleted.values())

    run = job_execute(job=RETENTION_JOB, task=self.name, work=work)
    return run.rows_affected or 0
