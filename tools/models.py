"""Which tools a chatbot's model may call, and the bounds of its tool loop (tools.loop)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from chatbots.secrets import EncryptedSecretField


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
        from tools.selectors import mcp_tool_names

        shop_id = self.chatbot.shop_id if self.chatbot_id else None
        known = set(tool_names()) | set(mcp_tool_names(shop_id=shop_id))
        unknown = sorted(set(self.tools) - known)
        if unknown:
            raise ValidationError({"tools": f"Unknown tools: {', '.join(unknown)}."})
        if len(set(self.tools)) != len(self.tools):
            self.tools = list(dict.fromkeys(self.tools))


class McpServer(models.Model):
    """A shop's MCP server (Model Context Protocol): its tools can be put on its bots'
    allow-lists. Its tool list is cached here when staff save or test it (tools.mcp)."""

    class Transport(models.TextChoices):
        STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
        SSE = "sse", "HTTP + SSE (older servers)"

    shop = models.ForeignKey("accounts.Shop", on_delete=models.CASCADE, related_name="mcp_servers")
    name = models.SlugField(
        max_length=30,
        help_text="Short name, part of its tools' names for the model, e.g. “warehouse”.",
    )
    url = models.URLField(
        max_length=500,
        help_text="The server's endpoint, e.g. https://tools.example.com/mcp (SSE: …/sse).",
    )
    transport = models.CharField(
        max_length=20, choices=Transport.choices, default=Transport.STREAMABLE_HTTP
    )
    auth_headers = EncryptedSecretField(
        blank=True,
        help_text="Headers sent with every request, one “Name: value” per line (e.g. "
        "Authorization: Bearer …). Stored encrypted, never shown again.",
    )
    timeout = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
        help_text="Seconds to connect and to wait for an answer.",
    )
    active = models.BooleanField(default=True)
    tools_cache = models.JSONField(
        default=list, blank=True, editable=False, help_text="[{name, description, input_schema}]"
    )
    tools_listed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "MCP server"
        constraints = [
            # Invariant: a tool's allow-list name (mcp__<server>__<tool>) names one server.
            models.UniqueConstraint(fields=["shop", "name"], name="unique_mcp_server_name_per_shop")
        ]

    def __str__(self) -> str:
        return self.name

    def headers_text(self) -> str:
        """The stored headers in plain text (the attribute may still be a str before a reload)."""
        return self._meta.get_field("auth_headers").to_python(self.auth_headers).reveal()

    def clean(self) -> None:
        from outbound.policy import url_errors
        from tools.mcp import header_problems

        errors = url_errors(url=self.url)
        if problem := header_problems(self.headers_text()):
            errors["auth_headers"] = problem
        if errors:
            raise ValidationError(errors)
