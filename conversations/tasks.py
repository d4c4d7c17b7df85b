"""Celery tasks of the conversations app: thin adapters around the runner and services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="conversations.tasks.run_turn", ignore_result=True, acks_late=True)
def run_turn(turn_id: str) -> str:
    """Run one turn on this worker's streaming loop; safe to deliver twice (claim is atomic)."""
    from conversations.runner import turn_run
    from conversations.runtime import get_runtime

    runtime = get_runtime()
    future = runtime.submit(turn_run(runtime, turn_id))
    return future.result(timeout=settings.TURN_TOTAL_TIMEOUT + 120)


@shared_task(name="conversations.tasks.reap_stale_turns", ignore_result=True)
def reap_stale_turns() -> int:
    from conversations.services import turns_reap_stale

    return turns_reap_stale()
