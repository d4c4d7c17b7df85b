"""The live inbox's own tables: per-bot handoff rules, canned responses, private notes."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models


class HandoffRule(models.Model):
    """When a customer message goes to a person without the customer asking (docs/inbox.md)."""

    chatbot = models.OneToOneField(
        "chatbots.Chatbot", on_delete=models.CASCADE, related_name="handoff_rule"
    )
    keywords = models.TextField(
        blank=True,
        help_text="One word or phrase a line: a customer message containing one goes to a "
        "person (case does not matter), e.g. “complaint”, “speak to a human”.",
    )
    failed_turns = models.PositiveSmallIntegerField(
        default=0,
        help_text="After this many failed bot answers in a row the next message goes to a "
        "person (0 = never).",
    )
    usual_wait_minutes = models.PositiveSmallIntegerField(
        default=5, help_text="Shown to a waiting customer: “usual wait N min”."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Handoff rules of {self.chatbot}"

    def keyword_list(self) -> list[str]:
        return [line.strip().lower() for line in self.keywords.splitlines() if line.strip()]


class CannedResponse(models.Model):
    """A shop's saved answer, inserted in a reply with `/shortcut`."""

    shop = models.ForeignKey("accounts.Shop", on_delete=models.CASCADE, related_name="+")
    shortcut = models.CharField(
        max_length=40,
        validators=[RegexValidator(r"^[a-z0-9_-]+$", "Lower-case letters, digits, - and _.")],
        help_text="Typed as /shortcut in a reply, e.g. “returns”.",
    )
    text = models.TextField(max_length=4000)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["shortcut"]
        constraints = [
            # Invariant: a shortcut names one text per shop; also serves the reply's look-up.
            models.UniqueConstraint(fields=["shop", "shortcut"], name="unique_canned_shortcut"),
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


class PrivateNote(models.Model):
    """A note agents leave on a conversation for each other; never shown to the customer."""

    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="private_notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    text = models.TextField(max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            # Serves the conversation page's notes, oldest first.
            models.Index(fields=["conversation", "created_at"], name="private_note_conversation"),
        ]

    def __str__(self) -> str:
        return f"note on {self.conversation_id}"


class ConversationLabel(models.Model):
    """A label agents put on a conversation ("refund", "vip") to sort the inbox."""

    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="labels"
    )
    name = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Invariant: a label once per conversation; also serves "the labels of these
            # conversations" (the inbox lists) and the list's label filter.
            models.UniqueConstraint(fields=["conversation", "name"], name="unique_label"),
        ]

    def __str__(self) -> str:
        return self.name
