"""A customer's message to the bot and the turn that answers it, stored in written-out SQL.

The turn start is the request every chat message makes, and in a burst of new chats it is what
fills the ASGI processes first. Through the ORM it took eight statements, and Django compiling
them cost more CPU than PostgreSQL running them (docs/benchmarks.md: the SQL compiler was 28% of
Daphne's busy time at 500 streams). Here it is two statements in one transaction:

1. the conversation's row locked, and read (status, handling);
2. one statement that numbers and inserts the message, inserts its turn and counts the message
   on the conversation (data-modifying CTEs).

The lock is its own statement on purpose. PostgreSQL takes a statement's snapshot when the
statement starts, so a `MAX(sequence)` in the locking statement would not see a message that a
concurrent request committed while this one waited for the lock; the second statement starts
after the lock is held and sees it.

Only the common case comes here: a conversation the bot answers, whose message no router may
send to a person (conversations.hooks.message_may_route). Everything else takes the ORM path in
conversations.services, which these statements must match column for column
(conversations/tests/test_turn_start.py compares the rows both paths store).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import connection
from django.utils import timezone

from conversations.models import Conversation, Message, Turn

LOCK_SQL = (
    'SELECT "status", "is_resolved", "handling", "chatbot_id" '
    'FROM "conversations_conversation" WHERE "id" = %s FOR UPDATE'
)

STORE_SQL = """
WITH message AS (
    INSERT INTO "conversations_message" (
        "id", "conversation_id", "role", "content", "type", "sequence", "flow", "usage",
        "timings", "metadata", "agent_id", "created_at"
    )
    SELECT %(message)s, %(conversation)s, 'user', %(content)s, %(type)s,
        COALESCE(MAX("sequence"), 0) + 1, '', '{}', '{}', %(metadata)s::jsonb, NULL, %(now)s
    FROM "conversations_message" WHERE "conversation_id" = %(conversation)s
    RETURNING "sequence"
), turn AS (
    INSERT INTO "conversations_turn" (
        "id", "conversation_id", "kind", "user_message_id", "assistant_message_id", "status",
        "flow", "route", "idempotency_key", "client_ip", "last_event_id", "error_code",
        "error_message", "error_category", "worker", "heartbeat_at", "created_at",
        "started_at", "first_token_at", "finished_at", "timings"
    )
    SELECT %(turn)s, %(conversation)s, 'ai', %(message)s, NULL, 'pending', '', '{}', %(key)s,
        %(ip)s::inet, 0, '', '', '', '', NULL, %(now)s, NULL, NULL, NULL, '{}'
    FROM message
)
UPDATE "conversations_conversation"
SET "status" = %(status)s, "is_resolved" = %(resolved)s,
    "message_count" = "message_count" + 1, "last_activity_at" = %(now)s, "updated_at" = %(now)s
WHERE "id" = %(conversation)s
RETURNING (SELECT "sequence" FROM message)
"""


def conversation_lock(conversation_id: Any) -> tuple[str, bool, str, int]:
    """Lock the conversation's row for this transaction: (status, is_resolved, handling,
    chatbot_id). Conversation.DoesNotExist when it is gone."""
    with connection.cursor() as cursor:
        cursor.execute(LOCK_SQL, [conversation_id])
        row = cursor.fetchone()
    if row is None:
        raise Conversation.DoesNotExist("Conversation matching query does not exist.")
    return row[0], row[1], row[2], row[3]


def bot_turn_store(
    *,
    conversation: Conversation,
    status: str,
    is_resolved: bool,
    text: str,
    message_type: str,
    metadata: dict,
    idempotency_key: str,
    client_ip: str | None,
) -> Turn:
    """Inside the caller's transaction, with the row locked (conversation_lock): the message,
    its pending AI turn and the conversation's counters, in one statement. Returns the turn
    (its `user_message` attached), as the ORM path's Turn.objects.create would."""
    now = timezone.now()
    message_id, turn_id = uuid.uuid4(), uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            STORE_SQL,
            {
                "message": message_id,
                "conversation": conversation.pk,
                "content": text,
                "type": message_type,
                "metadata": json.dumps(metadata),
                "turn": turn_id,
                "key": idempotency_key or "",
                "ip": client_ip,
                "status": status,
                "resolved": is_resolved,
                "now": now,
            },
        )
        (sequence,) = cursor.fetchone()
    message = _stored(
        Message(
            id=message_id,
            conversation=conversation,
            role=Message.Role.USER,
            content=text,
            type=message_type,
            sequence=sequence,
            metadata=metadata,
            created_at=now,
        )
    )
    return _stored(
        Turn(
            id=turn_id,
            conversation=conversation,
            user_message=message,
            idempotency_key=idempotency_key or "",
            client_ip=client_ip,
            created_at=now,
        )
    )


def _stored(instance):
    """Mark an instance built from values just written as loaded from the database."""
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance
