"""Celery tasks of the knowledge app (default queue: the background worker)."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="knowledge.tasks.process_document",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
)
def process_document(document_id: str, revision: int) -> str:
    from knowledge.services import document_process

    return document_process(document_id=document_id, revision=revision)
