"""Celery tasks of the helpdesk app (queue `celery`): thin adapters around helpdesk.services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(
    name="helpdesk.tasks.create_ticket",
    bind=True,
    ignore_result=True,
    acks_late=True,
    max_retries=None,  # counted against HELPDESK_TICKET_MAX_ATTEMPTS below
    soft_time_limit=120,
    time_limit=180,
)
def create_ticket(self, handoff_id: str) -> str:
    """Create the handoff's ticket; retried with backoff (Retry-After honoured) when retryable."""
    from helpdesk.services import handoff_ticket_create

    final = self.request.retries + 1 >= settings.HELPDESK_TICKET_MAX_ATTEMPTS
    attempt = handoff_ticket_create(handoff_id=handoff_id, final=final)
    if attempt.retry_in is not None:
        raise self.retry(countdown=attempt.retry_in)
    return attempt.state


@shared_task(name="helpdesk.tasks.resend_failed", ignore_result=True, soft_time_limit=120)
def resend_failed() -> int:
    """Every few minutes (beat): tickets that failed while the helpdesk was down, sent again."""
    from helpdesk.services import handoffs_resend

    return handoffs_resend()


@shared_task(name="helpdesk.tasks.retention", ignore_result=True, soft_time_limit=600)
def retention() -> dict:
    from helpdesk.services import helpdesk_retention_sweep

    return helpdesk_retention_sweep()
