"""Celery tasks of the knowledge app (default queue: the background worker)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(
    name="knowledge.tasks.process_document",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
)
def process_document(document_id: str, revision: int) -> str:
    from knowledge.services import document_fail, document_process

    try:
        return document_process(document_id=document_id, revision=revision)
    except Exception as exc:  # the time limit, a database error…: never "Reading" for ever
        logger.exception("knowledge document %s: reading stopped", document_id)
        document_fail(
            document_id=document_id,
            revision=revision,
            reason=f"Reading stopped unexpectedly ({type(exc).__name__}). Read it again; if it "
            "stops again, the file may be too large for one go.",
        )
        return "failed"
