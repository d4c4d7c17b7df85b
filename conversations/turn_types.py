"""The turn's work: what the worker's runner is given about one turn when it claims it.

conversations.services.turn_claim reads it on a database thread and hands it to the runner on
the event loop (conversations.runner); the runner's parts, tools.loop and the context providers
read it. It never crosses Redis or JSON, so it is a frozen dataclass: read by attribute, and no
part of the turn can change what the turn was asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict


class HistoryMessage(TypedDict):
    """An earlier message of the conversation as the AI sees it (an agent's reply counts as
    the assistant's): the ORM's values("role", "content") row, sent to the AI as JSON."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class TurnWork:
    """One claimed turn (conversations.services.turn_claim)."""

    turn_id: str
    conversation_id: str
    chatbot_public_id: str
    chatbot_id: int
    user_id: str  # the conversation's customer id, as the shop's site gave it ("" if none)
    user_message_id: str
    question: str
    message_metadata: dict[str, Any]  # the question's metadata (e.g. an uploaded image)
    history: list[HistoryMessage]  # oldest first, at most HISTORY_MESSAGES_FOR_AI
    client_ip: str | None
    context: dict[str, Any]  # the conversation's context given by the shop's site
    preview: str | None  # "draft" or a version number for a staff preview (chatbot_turn_config_get)
    first_seq: int  # the id of the turn's next event
