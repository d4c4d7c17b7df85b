"""Images customers sent in a conversation: the cleaned file, its thumbnail and its description."""

from __future__ import annotations

import uuid

from django.db import models

from chatbots.models import Chatbot
from conversations.models import Conversation


class ImageUpload(models.Model):
    """One stored image. Files live in Django storage under random names; the row is the key.

    The row (and with it, through the post_delete handler, both files) goes when its
    conversation goes, or earlier when IMAGE_RETENTION_DAYS says so.
    """

    class DescriptionStatus(models.TextChoices):
        PENDING = "", "Not described yet"
        DESCRIBED = "described", "Described"
        FAILED = "failed", "Description failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No single-column indexes on the two keys: the composite indexes below lead with them.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="images", db_index=False
    )
    chatbot = models.ForeignKey(
        Chatbot, on_delete=models.CASCADE, related_name="images", db_index=False
    )
    mime = models.CharField(max_length=20)
    size = models.PositiveIntegerField(help_text="Bytes of the stored (cleaned) file.")
    received_size = models.PositiveIntegerField(help_text="Bytes the customer sent.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    frames = models.PositiveIntegerField(
        default=1, help_text="Frames in the upload; only the first is kept."
    )
    sha256 = models.CharField(max_length=64, help_text="Of the stored file.")
    storage_name = models.CharField(max_length=255)
    thumbnail_name = models.CharField(max_length=255, blank=True)
    thumbnail_mime = models.CharField(max_length=20, blank=True)
    # Shown to staff only; never part of a storage path or of what is sent to an AI service.
    original_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    description_status = models.CharField(
        max_length=10, choices=DescriptionStatus.choices, default="", blank=True
    )
    description_error = models.CharField(max_length=50, blank=True)
    described_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Serves the "same photo sent twice in one conversation" lookup before storing.
            models.Index(fields=["conversation", "sha256"], name="image_conversation_sha256"),
            # Serves the IMAGE_RETENTION_DAYS sweep (created_at < cutoff).
            models.Index(fields=["created_at"], name="image_created_at"),
            # Serves the admin list filtered by chatbot, newest first.
            models.Index(fields=["chatbot", "-created_at"], name="image_chatbot_created"),
        ]

    def __str__(self) -> str:
        return f"image {self.id} ({self.mime}, {self.width}x{self.height})"

    @property
    def url_path(self) -> str:
        return f"/api/images/{self.id}"

    @property
    def thumbnail_path(self) -> str:
        return f"/api/images/{self.id}?thumbnail=1"
