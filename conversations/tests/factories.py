"""Conversations, turns and their stream events for tests, made the way the product makes them.

A conversation is started and a message submitted through conversations.services, as the API
does, so a test's turn has its user message and everything else a real one has (the turn is
enqueued after commit, as always). Events are written as the worker writes them: rows through
the event writer's batch save, or entries of the turn's Redis stream. Several test modules had
copied these few lines; they live here once. (monitoring.tests.factories makes turns in any
state directly, without the services, for the operators' pages.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from chatbots.models import Chatbot
from chatbots.tests.factories import create_chatbot
from config.redis import get_redis
from conversations import services, streaming
from conversations.models import Conversation, Turn

__all__ = ["create_conversation", "create_events", "create_turn", "token_envelopes"]


def create_conversation(*, chatbot: Chatbot | None = None, user_id: str = "") -> Conversation:
    """A customer's conversation with `chatbot` (a new bot with a main flow when not given)."""
    return services.conversation_start(chatbot=chatbot or create_chatbot(), user_id=user_id)


def create_turn(
    *,
    conversation: Conversation | None = None,
    chatbot: Chatbot | None = None,
    text: str = "Hello?",
) -> Turn:
    """The turn of a customer's message `text`, submitted as the API submits it, in
    `conversation` (a new one with `chatbot` when not given)."""
    conversation = conversation or create_conversation(chatbot=chatbot)
    turn, _ = services.message_submit(conversation=conversation, text=text)
    return turn


def token_envelopes(first: int, count: int) -> list[dict]:
    """`count` token envelopes numbered from `first`, each saying "t<id>" (so a test can tell
    which arrived)."""
    return [
        streaming.envelope(seq, "token", {"text": f"t{seq}"}) for seq in range(first, first + count)
    ]


def create_events(
    turn: Turn,
    n: int = 0,
    *,
    first: int = 1,
    events: Iterable[tuple[str, dict]] = (),
    redis: bool = False,
) -> list[dict]:
    """Write a turn's events and return their envelopes: `n` tokens numbered from `first`
    (token_envelopes), or else the `(event, data)` pairs given, numbered from `first`.

    Saved as PostgreSQL rows by services.stream_rows_save_many (what the event writer calls,
    so the turn's last_event_id and heartbeat move too); with `redis=True` appended to the
    turn's Redis stream instead, with the ids `0-<id>` the worker gives them. The turn's status
    is left as it is.
    """
    envelopes = (
        token_envelopes(first, n)
        if n
        else [
            streaming.envelope(seq, event, data)
            for seq, (event, data) in enumerate(events, start=first)
        ]
    )
    if redis:
        key = streaming.stream_key(str(turn.pk))
        for env in envelopes:
            get_redis().xadd(key, {"e": json.dumps(env)}, id=f"0-{env['id']}")
    else:
        services.stream_rows_save_many([(str(turn.pk), envelopes)])
    return envelopes
