"""Celery tasks of analytics (queue `analytics`): thin adapters around analytics.services."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings


@shared_task(
    name="analytics.tasks.analyse_turn",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=settings.ANALYSIS_TIMEOUT_SECONDS + 60,
    time_limit=settings.ANALYSIS_TIMEOUT_SECONDS + 120,
)
def analyse_turn(turn_id: str, force: bool = False) -> None:
    """Metrics, context chunks and analysis of one finished turn; idempotent per turn."""
    from analytics.services.analysis import turn_analyse

    turn_analyse(turn_id=turn_id, force=force)


@shared_task(name="analytics.tasks.reanalyse_range", ignore_result=True)
def reanalyse_range(date_from: str, date_to: str, chatbot_id: int | None = None) -> int:
    """Re-analyse every turn finished in [date_from, date_to) (ISO datetimes)."""
    from analytics.services.analysis import analyses_rerun

    return analyses_rerun(
        date_from=dt.datetime.fromisoformat(date_from),
        date_to=dt.datetime.fromisoformat(date_to),
        chatbot_id=chatbot_id,
    )


@shared_task(name="analytics.tasks.sync_conversation_index", ignore_result=True)
def sync_conversation_index() -> dict | None:
    """The scheduled sync; skips (returns None) while another sync is running."""
    from analytics.services.conversation_index import conversation_index_sync

    return conversation_index_sync(wait=False)
