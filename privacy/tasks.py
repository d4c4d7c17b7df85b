"""Celery tasks of the privacy app (queue `maintenance`): thin adapters around the services."""

from __future__ import annotations

from celery import shared_task

RETENTION_JOB = "privacy-retention"


@shared_task(
    bind=True,
    name="privacy.tasks.retention_enforce",
    ignore_result=True,
    soft_time_limit=3000,
    time_limit=3600,
)
def retention_enforce(self) -> int:
    """Every shop's retention periods, under the maintenance job frame (lock, JobRun)."""
    from monitoring.maintenance import job_execute
    from privacy import services

    def work(progress) -> None:
        deleted = services.retention_enforce()
        progress.details.update(deleted)
        progress.rows += sum(deleted.values())

    run = job_execute(job=RETENTION_JOB, task=self.name, work=work)
    return run.rows_affected or 0
