"""Read side of the tools app: what one turn's tool loop may do."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from tools.models import ChatbotTools
from tools.registry import Tool, tool_get


@dataclass(frozen=True)
class Toolset:
    tools: dict[str, Tool]  # the bot's allow-list, registered tools only
    max_steps: int
    max_seconds: float
    call_timeout: float
    result_max_chars: int


def toolset_for_turn(*, chatbot_id: int) -> Toolset | None:
    """The bot's tools and loop bounds, or None when it has none (the turn runs as before).
    One indexed read (the one-to-one's unique chatbot_id) per answer of an OpenAI-compatible
    flow; it runs on a database thread."""
    row = ChatbotTools.objects.filter(chatbot_id=chatbot_id).first()
    if row is None:
        return None
    tools = {name: tool for name in row.tools if (tool := tool_get(name)) is not None}
    if not tools:
        return None
    return Toolset(
        tools=tools,
        max_steps=row.max_steps or settings.TOOLS_MAX_STEPS,
        max_seconds=float(row.max_seconds or settings.TOOLS_TURN_SECONDS),
        call_timeout=float(row.call_timeout or settings.TOOLS_CALL_TIMEOUT),
        result_max_chars=settings.TOOLS_RESULT_MAX_CHARS,
    )
