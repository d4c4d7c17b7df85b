"""Celery tasks of the chatbots app (default queue): thin adapters around chatbots services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="chatbots.tasks.check_run_execute", ignore_result=True)
def check_run_execute(run_id: int) -> None:
    """Ask a check run's questions of the draft and the live version (chatbots.checkruns).
    Not acks_late: a run redelivered after a crash would ask everything again; it stays
    "running" instead and staff start a new one."""
    from chatbots.checkruns import check_run_execute as execute

    execute(run_id=run_id)
