"""The tools a chatbot's model can be offered: what each is called, what it takes, how it runs.

Built-in tools register themselves when their app loads (tools.builtin, orders.tool,
helpdesk.tools); the turn's tool loop
(tools.loop) offers a bot only the registered tools on its allow-list (tools.models).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from chatbots.config_types import ChatbotConfig


class ToolError(Exception):
    """A tool could not do its job; `message` is what the model (never the customer) is told,
    so it must hold no secret and no personal data beyond what the customer gave."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ToolContext:
    """What a tool may use of the turn it runs in."""

    turn_id: str
    conversation_id: str
    config: ChatbotConfig  # the chatbot's resolved configuration (chatbots.selectors)
    language: str
    question: str
    history: list[dict[str, str]]
    emit: Callable[[str, dict[str, Any]], Awaitable[Any]]  # send an event to the customer
    run_db: Callable[..., Awaitable[Any]]  # run a sync DB function off the event loop
    metadata: dict[str, Any] = field(default_factory=dict)  # stored on the turn's route


@dataclass(frozen=True)
class ToolResult:
    content: str  # what the model reads
    summary: str = ""  # what the customer's `tool_result` event says (short, nothing private)


ToolRun = Callable[[ToolContext, dict[str, Any]], Awaitable[ToolResult | str]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object
    run: ToolRun
    # Argument names whose values never leave the worker in a `tool_call` event or a record
    # (an email, a postcode): shown as "***"; "*" redacts every argument.
    redact: frozenset[str] = frozenset()
    # What the widget shows while the tool runs, per language ("Looking up your order…").
    label: dict[str, str] = field(default_factory=dict)
    title: str = ""  # the admin's name for it

    def definition(self) -> dict[str, Any]:
        """The OpenAI `tools` entry (ai_protocols.md §7)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def label_for(self, language: str) -> str:
        return self.label.get(language) or self.label.get("en") or self.name


_tools: dict[str, Tool] = {}


def tool_register(tool: Tool) -> None:
    _tools[tool.name] = tool


def tool_unregister(name: str) -> None:
    _tools.pop(name, None)


def tool_get(name: str) -> Tool | None:
    return _tools.get(name)


def tool_names() -> list[str]:
    return sorted(_tools)


def tool_choices() -> list[tuple[str, str]]:
    return [(name, _tools[name].title or name) for name in tool_names()]
