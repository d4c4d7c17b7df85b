"""Read side of images: who may see one, and what the describer needs."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.files.storage import default_storage

from conversations.access import ConversationGrant
from images.models import ImageUpload


def image_for_grant(*, grant: ConversationGrant | None, image_id: uuid.UUID) -> ImageUpload | None:
    """The image if the conversation token's holder may see it (it is in their conversation)."""
    if grant is None:
        return None
    return (
        ImageUpload.objects.select_related("chatbot")
        .filter(
            pk=image_id,
            conversation_id=grant.conversation_id,
            chatbot_id=grant.chatbot_id,
        )
        .first()
    )


def images_for_description(*, conversation_id: str, image_ids: list[str]) -> list[dict[str, Any]]:
    """The conversation's images among `image_ids`, in that order; unknown ids are skipped."""
    valid: list[uuid.UUID] = []
    for value in image_ids:
        try:
            valid.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    rows = {
        row["id"]: row
        for row in ImageUpload.objects.filter(conversation_id=conversation_id, pk__in=valid).values(
            "id", "mime", "storage_name", "description", "description_status"
        )
    }
    return [
        {**rows[i], "id": str(i)}
        for i in dict.fromkeys(valid)  # keeps order, drops repeats
        if i in rows
    ]


def image_file_read(*, storage_name: str) -> bytes:
    with default_storage.open(storage_name, "rb") as handle:
        return handle.read()
