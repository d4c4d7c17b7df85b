"""The shape of one event of a turn's event log, wherever it travels.

The worker's publisher (conversations.streaming.TurnPublisher) makes every event with
streaming.envelope; the same dict is stored as a StreamEvent row, appended as JSON to the turn's
Redis stream, sent on the channel layer inside a LayerMessage, read back by the event log's
reader (conversations.eventlog) and the follower, and sent to clients by polling, SSE, the
WebSocket and Socket.IO. JSON both ways, so a TypedDict: mypy checks the keys, nothing changes at
run time. Django-free (only typing).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class Event(TypedDict):
    """One event: its id (the turn's sequence, from 1, gapless), its name (start, token,
    metadata, source_documents, tool_call, tool_result, order, error, end, ...), its data and
    when it was made (ISO 8601 UTC with milliseconds and a "Z": streaming.now_iso).

    Clients' copies may carry more inside `data` (conversations.selectors.event_for_clients
    adds seed 000's names to a token's); the event's own keys are always these four."""

    id: int
    event: str
    data: dict[str, Any]
    timestamp: str


class LayerMessage(TypedDict):
    """An event as the channel layer carries it to a turn's group (streaming.layer_message):
    the consumers' `turn_event` handler receives it."""

    type: Literal["turn.event"]
    turn_id: str
    event: Event
