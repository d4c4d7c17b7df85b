"""Answer quality: customers' thumbs on single answers, and each bot's check set (docs/quality.md).

A check is a question with rules a good answer must meet; the draft/live check run asks every
enabled check of a bot and judges each answer with quality.checks.evaluate_answer.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from chatbots.models import Chatbot
from conversations.models import Conversation, Message

MAX_PHRASES = 20
MAX_PHRASE_CHARS = 200
MAX_COMMENT_CHARS = 500
MAX_QUESTION_CHARS = 2000


def validate_phrases(value) -> None:
    """A rule's phrases: a list of at most MAX_PHRASES non-empty strings of bounded length."""
    if not isinstance(value, list):
        raise ValidationError("Give a list of phrases.")
    if len(value) > MAX_PHRASES:
        raise ValidationError(f"At most {MAX_PHRASES} phrases per rule.")
    for phrase in value:
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValidationError("Each phrase must be non-empty text.")
        if len(phrase) > MAX_PHRASE_CHARS:
            raise ValidationError(f"A phrase may be at most {MAX_PHRASE_CHARS} characters.")


class AnswerFeedback(models.Model):
    """A customer's thumbs up or down on one answer: one per answer, a second vote changes it."""

    class Value(models.TextChoices):
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    # Invariant: one vote per answer (the OneToOne's unique index); the vote is also mirrored in
    # the message's metadata["feedback"] so the history shows it without another query.
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    # Denormalised from the message for shop scoping and the dashboard's per-bot filter.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="+")
    value = models.CharField(max_length=4, choices=Value.choices)
    comment = models.CharField(max_length=MAX_COMMENT_CHARS, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "answer feedback"
        verbose_name_plural = "answer feedback"
        indexes = [
            # Serves the dashboard's feedback section: a bot's votes in a date range.
            models.Index(fields=["chatbot", "created_at"], name="answer_feedback_bot_day"),
        ]

    def __str__(self) -> str:
        return f"{self.value} on {self.message_id}"


class AnswerCheck(models.Model):
    """One question of a bot's check set and what a good answer to it must (not) do."""

    class Source(models.TextChoices):
        MANUAL = "manual", "Written by staff"
        TRANSCRIPT = "transcript", "From a transcript"
        FEEDBACK = "feedback", "From customer feedback"

    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="answer_checks")
    question = models.TextField(max_length=MAX_QUESTION_CHARS)
    must_contain = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_phrases],
        help_text="Phrases the answer must contain (case and spacing ignored).",
    )
    must_not_contain = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_phrases],
        help_text="Phrases the answer must not contain (case and spacing ignored).",
    )
    must_cite_source = models.BooleanField(
        default=False, help_text="The answer must cite at least one knowledge source."
    )
    source_title = models.CharField(
        max_length=300,
        blank=True,
        help_text="When set, one of the cited sources must have this title (case ignored).",
    )
    expect_handoff = models.BooleanField(
        null=True,
        blank=True,
        choices=[
            (None, "Not checked"),
            (True, "Hands the customer to a person"),
            (False, "Answers without a handoff"),
        ],
    )
    expect_language = models.CharField(
        max_length=10, blank=True, help_text="Language code the answer must be in, e.g. nl, en."
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    source_message = models.ForeignKey(
        Message,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The answer this check was made from.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chatbot", "-created_at"]
        indexes = [
            # Serves the check run: a bot's enabled checks.
            models.Index(fields=["chatbot", "enabled"], name="answer_check_bot_enabled"),
        ]

    def __str__(self) -> str:
        return self.question[:80]

    def clean(self) -> None:
        # A source title alone is a rule too: evaluate_answer reads it as "must cite this one".
        if not (
            self.must_contain
            or self.must_not_contain
            or self.must_cite_source
            or self.source_title
            or self.expect_handoff is not None
            or self.expect_language
        ):
            raise ValidationError("Give the check at least one rule.")
