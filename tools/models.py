"""Which tools a chatbot's model may call, and the bounds of its tool loop (tools.loop)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from chatbots.secrets import EncryptedSecretField
from outbound.policy import url_errors


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
        from tools.selectors import http_tool_names, mcp_tool_names

        shop_id = self.chatbot.shop_id if self.chatbot_id else None
        known = (
            set(tool_names())
            | set(mcp_tool_names(shop_id=shop_id))
            | set(http_tool_names(shop_id=shop_id))
        )
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
        multiline=True,
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
        from tools.mcp import header_problems

        errors = url_errors(url=self.url)
        if problem := header_problems(self.headers_text()):
            errors["auth_headers"] = problem
        if errors:
            raise ValidationError(errors)


class HttpTool(models.Model):
    """A shop's own HTTP endpoint offered to the model as a tool: its arguments are described by
    a JSON Schema; a GET sends them as the query string (or in {placeholders} of the URL), a POST
    as a JSON body. The answer's text is what the model reads (tools.http)."""

    class Method(models.TextChoices):
        GET = "GET", "GET"
        POST = "POST", "POST"

    shop = models.ForeignKey("accounts.Shop", on_delete=models.CASCADE, related_name="http_tools")
    name = models.SlugField(
        max_length=40,
        help_text="Its name for the model (as http__<name>), e.g. “stock_check”.",
    )
    description = models.TextField(
        max_length=1000,
        help_text="What it does and when to use it, for the model (e.g. “Stock of a product by "
        "its SKU.”).",
    )
    method = models.CharField(max_length=4, choices=Method.choices, default=Method.GET)
    url = models.CharField(
        max_length=500,
        help_text="https://… ; {name} inserts an argument into the path, e.g. "
        "https://shop.example/api/stock/{sku}.",
    )
    parameters = models.JSONField(
        default=dict,
        help_text='JSON Schema of the arguments, e.g. {"type": "object", "properties": {"sku": '
        '{"type": "string"}}, "required": ["sku"]}.',
    )
    personal_arguments = models.CharField(
        max_length=300,
        blank=True,
        help_text="Arguments shown as *** to the customer and in records, comma-separated "
        "(e.g. email, postcode).",
    )
    auth_headers = EncryptedSecretField(
        blank=True,
        multiline=True,
        help_text="Headers sent with every call, one “Name: value” per line. Stored encrypted, "
        "never shown again.",
    )
    timeout = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(120)]
    )
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = "HTTP tool"
        constraints = [
            # Invariant: an allow-list name (http__<name>) names one tool of the shop.
            models.UniqueConstraint(fields=["shop", "name"], name="unique_http_tool_name_per_shop")
        ]

    def __str__(self) -> str:
        return self.name

    def headers_text(self) -> str:
        return self._meta.get_field("auth_headers").to_python(self.auth_headers).reveal()

    def clean(self) -> None:
        from tools.http import http_tool_problems

        errors = http_tool_problems(
            url=self.url, parameters=self.parameters, headers_text=self.headers_text()
        )
        if errors:
            raise ValidationError(errors)
