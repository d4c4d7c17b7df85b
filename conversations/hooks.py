"""Extension points of the turn runner for other apps (orders, images, analytics).

Context providers run after routing and before the answer flow. A provider may add context for
the answer flow, send events to the customer (e.g. an `order` card), record phase timings, or
give the final answer itself (e.g. asking for a missing order number) so no flow is called.
After a turn finishes, `conversations.services.turn_finished` is sent (a Django signal).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TurnContext:
    turn_id: str
    conversation_id: str
    config: dict[str, Any]  # the chatbot's resolved configuration (chatbots.selectors)
    flow: dict[str, Any]  # the answer flow that will run
    question: str
    extracted: dict[str, Any] | None  # the extractor flow's JSON, if one ran
    message_metadata: dict[str, Any]  # metadata stored with the user's message
    history: list[dict[str, str]]
    language: str
    emit: Callable[[str, dict[str, Any]], Awaitable[Any]]  # send an event to the customer
    run_db: Callable[..., Awaitable[Any]]  # run a sync DB function off the event loop
    timings: dict[str, Any]
    context_parts: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)  # extra prompt/Flowise variables
    final_answer: str | None = None  # set to answer without calling the flow
    metadata: dict[str, Any] = field(default_factory=dict)  # stored on the turn's route

    def add_context(self, text: str) -> None:
        if text:
            self.context_parts.append(text)


ContextProvider = Callable[[TurnContext], Awaitable[None]]
_providers: list[tuple[int, str, ContextProvider]] = []


def register_context_provider(name: str, provider: ContextProvider, *, order: int = 100) -> None:
    """Register once (e.g. in AppConfig.ready); providers run in `order`, then by name."""
    global _providers
    _providers = [p for p in _providers if p[1] != name]
    _providers.append((order, name, provider))
    _providers.sort(key=lambda p: (p[0], p[1]))


def context_providers() -> list[tuple[str, ContextProvider]]:
    return [(name, provider) for _order, name, provider in _providers]
