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
from conversations.access import conversation_token_issue
from conversations.models import Conversation, Message, Turn

__all__ = [
    "conversation_auth_headers",
    "create_conversation",
    "create_events",
    "create_finished_turn",
    "create_turn",
    "token_envelopes",
]


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


def create_finished_turn(
    conversation: Conversation,
    question: str,
    *,
    status: str = "completed",
    answer: str = "",
    flow: str = "",
    error: tuple[str, str] = ("", ""),
) -> Turn:
    """A question and its turn as the runner leaves them, written directly rather than run: the
    answer is stored only when text was said, marked incomplete unless the turn completed, and
    `error` is the turn's (code, message). For tests of what reads finished turns (the history,
    the quality pages), which need no worker."""
    sequence = conversation.messages.count() + 1
    asked = Message.objects.create(
        conversation=conversation, role="user", content=question, sequence=sequence
    )
    said = None
    if answer:
        said = Message.objects.create(
            conversation=conversation,
            role="assistant",
            content=answer,
            sequence=sequence + 1,
            flow=flow,
            metadata={"incomplete": True, "reason": status} if status != "completed" else {},
        )
    code, message = error
    return Turn.objects.create(
        conversation=conversation,
        user_message=asked,
        assistant_message=said,
        status=status,
        flow=flow,
        error_code=code,
        error_message=message,
    )


def conversation_auth_headers(conversation: Conversation) -> dict:
    """The headers the widget sends for `conversation`: its conversation token as a bearer."""
    token = conversation_token_issue(
        conversation_id=conversation.pk, chatbot_id=conversation.chatbot_id
    )
    return {"Authorization": f"Bearer {token}"}


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
