"""Which tools a chatbot's model may call, and the bounds of its tool loop (tools.loop)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class ChatbotTools(models.Model):
    """The allow-list: the model of this bot is offered these tools and no others; a call to a
    tool that is not listed is answered with an error and never run. Empty: no tool calling."""

    chatbot = models.OneToOneField(
        "chatbots.Chatbot", on_delete=models.CASCADE, related_name="tool_settings"
    )
    tools = ArrayField(
        models.CharField(max_length=120),
        default=list,
        blank=True,
        help_text="Tools the model may call, by name.",
    )
    max_steps = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Tool rounds per answer; empty: TOOLS_MAX_STEPS.",
    )
    max_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(600)],
        help_text="Time for all tool rounds of one answer, seconds; empty: TOOLS_TURN_SECONDS.",
    )
    call_timeout = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
        help_text="Time one tool call may take, seconds; empty: TOOLS_CALL_TIMEOUT.",
    )

    class Meta:
        verbose_name = "chatbot tools"
        verbose_name_plural = "chatbot tools"

    def __str__(self) -> str:
        return f"Tools of {self.chatbot}"

    def clean(self) -> None:
        from tools.registry import tool_names

        unknown = sorted(set(self.tools) - set(tool_names()))
        if unknown:
            raise ValidationError({"tools": f"Unknown tools: {', '.join(unknown)}."})
        if len(set(self.tools)) != len(self.tools):
            self.tools = list(dict.fromkeys(self.tools))
