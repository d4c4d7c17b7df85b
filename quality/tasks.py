"""Celery tasks of the quality app (default queue): thin adapters around quality services."""

from __future__ import annotations

from celery import shared_task

from quality.checkruns import check_run_execute as execute


# Registered under the name it had when it lived in chatbots.tasks, so runs already queued under
# that name still find their task.
@shared_task(name="chatbots.tasks.check_run_execute", ignore_result=True)
def check_run_execute(run_id: int) -> None:
    """Ask a check run's questions of the draft and the live version (quality.checkruns)."""
    execute(run_id=run_id)


def check_run_execute_later(*, run_id: int) -> None:
    """Queue a run for a worker (chatbots.checkruns.check_run_start calls it after commit)."""
    check_run_execute.delay(run_id)
