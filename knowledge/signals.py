"""Keeping uploaded knowledge consistent: files go with their documents, chunks follow the
chatbot's language (connected in knowledge.apps)."""

from __future__ import annotations

from django.db import transaction

from knowledge.models import KnowledgeDocument


def document_deleted(sender, instance: KnowledgeDocument, **kwargs) -> None:
    name = instance.file.name
    if name:  # a FieldFile is true exactly when it has a name
        storage = instance.file.storage
        transaction.on_commit(lambda: storage.delete(name))


def chatbot_saved(sender, instance, created: bool, **kwargs) -> None:
    previous = getattr(instance, "_previous_language", None)
    if not created and previous is not None and previous != instance.language:
        from knowledge.services import knowledge_chunks_reindex

        knowledge_chunks_reindex(chatbot_id=instance.pk)
