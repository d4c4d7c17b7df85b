"""How long a shop keeps its customers' data (docs/privacy.md)."""

from __future__ import annotations

from django.db import models


def _days(help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(null=True, blank=True, help_text=help_text)


class RetentionPolicy(models.Model):
    """Per-shop retention periods in days; blank keeps the data (subject to the installation's
    own retention settings, which apply to every shop)."""

    shop = models.OneToOneField(
        "accounts.Shop", on_delete=models.CASCADE, related_name="retention_policy"
    )
    conversations_days = _days(
        "Delete a conversation (messages, turns, events, images, analyses, its AI calls and "
        "index entry) this many days after its last activity."
    )
    ai_calls_days = _days("Delete AI-call log rows (questions and answers) after this many days.")
    images_days = _days("Delete uploaded images (files and rows) after this many days.")
    analytics_days = _days(
        "Delete analyses, context chunks, turn metrics and conversation-index entries after "
        "this many days."
    )
    redact_ai_calls = models.BooleanField(
        default=False,
        help_text="Mask email addresses and phone numbers in the AI-call log's question and "
        "answer text (and the conversation index) as soon as a turn ends.",
    )
    # The shop's local date of the last nightly run (the job runs hourly and takes each shop
    # once a night, after RETENTION_LOCAL_HOUR in the shop's time zone).
    last_enforced_on = models.DateField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "retention policy"
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return f"retention of shop {self.shop_id}"
