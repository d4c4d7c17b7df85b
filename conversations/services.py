"""Use cases of a chat: start conversations, submit messages, and move turns through their states.

Every state change of a turn is a conditional UPDATE on its current status, so a re-delivered
Celery task, the reaper and a cancel request can race without a turn ever running twice or
finishing twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, Q
from django.dispatch import Signal
from django.utils import timezone

from chatbots.models import Chatbot
from config.errors import TURN_ERRORS, TurnErrorCode, error_event, turn_error_text
from config.ratelimit import message_limit, rate_limit_hit
from conversations import eventlog, hooks, streaming, turn_start
from conversations.errors import (
    ChatbotInactive,
    ConversationClosed,
    IdempotencyKeyReused,
    MessageRefused,
)
from conversations.event_types import Event
from conversations.models import AICall, Conversation, Message, StreamEvent, Turn
from conversations.turn_types import HistoryMessage, TurnWork

logger = logging.getLogger(__name__)

KEY_REUSED = (
    "This Idempotency-Key was already used for a different message; send a new key with a new "
    "message."
)

# Sent (synchronously, in the worker) after a turn is finished: analytics and metrics attach here.
# kwargs: turn_id, status, and stack (the traceback of what failed the turn, if anything raised).
turn_finished = Signal()
# Sent after a conversation was resolved or ended by its customer or an API client (kwargs:
# conversation_id, next: "resolved" or "ended"): the inbox closes a person's open turn here.
conversation_closed = Signal()


def chatbot_require_active(chatbot: Chatbot) -> None:
    """A switched-off chatbot answers nothing: not its existing conversations' tokens either."""
    chatbot_active_require(active=chatbot.active)


def chatbot_active_require(*, active: bool) -> None:
    """ChatbotInactive unless `active` (the chatbot's flag, read by whoever calls)."""
    if not active:
        raise ChatbotInactive(
            "This chatbot is switched off; it answers nothing until its shop turns it back on."
        )


def conversation_create_limit_hit(*, key: str) -> None:
    """Count one new conversation for `key` (the client's address) against
    SESSION_CREATE_RATE_LIMIT: the one limit every way of starting a conversation shares (the
    session API, a first message, a first image); 429 when it is spent."""
    rate_limit_hit(scope="conversation-create", key=key, limit=settings.SESSION_CREATE_RATE_LIMIT)


def conversation_start(
    *,
    chatbot: Chatbot,
    user_id: str = "",
    metadata: dict | None = None,
    create_limit_key: str = "",
) -> Conversation:
    """A new conversation; with `create_limit_key` it counts against the create limit first."""
    if create_limit_key:
        conversation_create_limit_hit(key=create_limit_key)
    return Conversation.objects.create(
        chatbot=chatbot, user_id=user_id or "", metadata=metadata or {}
    )


def message_text_check(text: str) -> str:
    """The message as stored (trimmed); MessageRefused for an empty or over-long one."""
    text = (text or "").strip()
    if not text:
        raise MessageRefused("The message is empty.")
    if len(text) > settings.MESSAGE_MAX_CHARS:
        raise MessageRefused(
            f"The message is longer than {settings.MESSAGE_MAX_CHARS} characters.",
            details={"max_chars": settings.MESSAGE_MAX_CHARS},
        )
    return text


def _message_limit_hit(conversation_id, message_rate_limit) -> None:
    # Counted here so REST, WebSocket and the synchronous chat API share one limit.
    rate_limit_hit(
        scope="messages", key=str(conversation_id), limit=message_limit(message_rate_limit)
    )


def message_submit(
    *,
    conversation: Conversation,
    text: str,
    idempotency_key: str = "",
    client_ip: str | None = None,
    message_type: str = "text",
    metadata: dict | None = None,
    attachments: dict | None = None,
) -> tuple[Turn, bool]:
    """Store the user's message and create its turn; the turn is enqueued after commit.

    Returns (turn, created). A retry with the same Idempotency-Key returns the original turn.
    `attachments`: the request's payload; its attachment fields (`image_data`, `image_ids`) are
    handled only after the cheap checks (message_attachments), and their metadata stored with
    the message.
    """
    text = message_text_check(text)
    # Every path that takes a message (REST, WebSocket, chat API) comes through here; a socket
    # opened before the bot was switched off is refused on its next message.
    chatbot_require_active(conversation.chatbot)
    if idempotency_key:
        replayed = _message_replay(conversation, idempotency_key, text)
        if replayed is not None:
            return replayed, False
    _message_limit_hit(conversation.pk, conversation.chatbot.message_rate_limit)
    if attachments:
        metadata = {
            **(metadata or {}),
            **message_attachments(
                conversation=conversation, payload=attachments, client_ip=client_ip
            ),
        }
    try:
        turn = _message_in_conversation_store(
            conversation,
            text=text,
            message_type=message_type,
            metadata=metadata or {},
            idempotency_key=idempotency_key,
            client_ip=client_ip,
        )
    except IntegrityError:
        # Two requests with the same Idempotency-Key raced; the other one won.
        existing = Turn.objects.filter(
            conversation=conversation, idempotency_key=idempotency_key
        ).first()
        if existing is None:
            raise
        return idempotent_replay(existing, text), False
    return turn, True


def _message_replay(conversation: Conversation, idempotency_key: str, text: str) -> Turn | None:
    """The turn a message with this Idempotency-Key already made (an AI turn, or the human
    one a message to a person joined), replayed; None for a new key."""
    existing = Turn.objects.filter(
        conversation=conversation, idempotency_key=idempotency_key
    ).first()
    if existing is not None:
        return idempotent_replay(existing, text)
    return _human_message_replay(conversation, idempotency_key, text)


def _message_in_conversation_store(
    conversation: Conversation,
    *,
    text: str,
    message_type: str,
    metadata: dict,
    idempotency_key: str,
    client_ip: str | None,
) -> Turn:
    """Store the message and its turn under the conversation's row lock (which serializes the
    sequence numbers of concurrent messages); a resolved conversation becomes active again."""
    fields: dict[str, Any] = {
        "text": text,
        "message_type": message_type,
        "metadata": metadata,
        "idempotency_key": idempotency_key,
        "client_ip": client_ip,
    }
    with transaction.atomic():
        status, is_resolved, handling, chatbot_id = turn_start.conversation_lock(conversation.pk)
        conversation_open_check(status=status)
        if hooks.message_may_route(chatbot_id=chatbot_id, handling=handling):
            return _routed_message_store(conversation.pk, **fields)
        # The common case: the lock above and one statement of written-out SQL
        # (conversations/turn_start.py).
        reopened = status == Conversation.Status.RESOLVED
        turn = turn_start.bot_turn_store(
            conversation=conversation,
            status=Conversation.Status.ACTIVE if reopened else status,
            is_resolved=False if reopened else is_resolved,
            **fields,
        )
        transaction.on_commit(functools.partial(_turn_enqueue, str(turn.pk)))
        return turn


def _routed_message_store(conversation_id, *, text: str, message_type: str, **fields) -> Turn:
    """Inside the caller's transaction, the row locked: the message through the ORM, for the
    router to hand to a person or back to the bot (message_router)."""
    locked = Conversation.objects.get(pk=conversation_id)
    if locked.status == Conversation.Status.RESOLVED:
        locked.status = Conversation.Status.ACTIVE
        locked.is_resolved = False
    sequence = (locked.messages.aggregate(m=Max("sequence"))["m"] or 0) + 1
    turn = _message_and_turn_store(
        conversation=locked, text=text, message_type=message_type, sequence=sequence, **fields
    )
    locked.message_count = F("message_count") + 1
    locked.last_activity_at = timezone.now()
    locked.save(
        update_fields=["status", "is_resolved", "message_count", "last_activity_at", "updated_at"]
    )
    return turn


def _message_and_turn_store(
    *,
    conversation: Conversation,
    text: str,
    message_type: str,
    sequence: int,
    metadata: dict,
    idempotency_key: str,
    client_ip: str | None,
) -> Turn:
    """Inside the caller's transaction: the customer's message, and the turn that answers it
    (the bot's, enqueued after commit, or the person's the message router chose)."""
    message = Message.objects.create(
        conversation=conversation,
        role=Message.Role.USER,
        content=text,
        type=message_type,
        sequence=sequence,
        metadata=metadata,
    )
    # The one decision whether the bot answers (docs/inbox.md): a conversation with a
    # person, or one a handoff rule sends to a person, gets no AI turn.
    router = hooks.message_router()
    human_turn = router(conversation=conversation, message=message) if router else None
    if human_turn is None:
        turn = Turn.objects.create(
            conversation=conversation,
            user_message=message,
            idempotency_key=idempotency_key or "",
            client_ip=client_ip,
        )
        transaction.on_commit(functools.partial(_turn_enqueue, str(turn.id)))
        return turn
    # Callers answer with turn.pk (the human turn the client follows) and
    # turn.user_message_id: the id of the message just stored (never saved).
    human_turn.user_message_id = message.pk
    if idempotency_key:
        # No turn of its own holds the key: the message does, for a retry.
        message.metadata = {**message.metadata, "idempotency_key": idempotency_key}
        message.save(update_fields=["metadata"])
    return human_turn


def _turn_enqueue(turn_id: str) -> None:
    from conversations.tasks import run_turn

    run_turn.delay(turn_id)


# How long a first message's Idempotency-Key finds the conversation it started (Stripe keeps
# keys for 24 hours); after that the same key starts a new conversation.
FIRST_MESSAGE_KEY_WINDOW = dt.timedelta(hours=24)


def first_message_submit(
    *,
    chatbot: Chatbot,
    text: str,
    idempotency_key: str = "",
    client_ip: str | None = None,
    user_id: str = "",
    attachments: dict | None = None,
    create_limit_key: str = "",
) -> tuple[Turn, bool]:
    """Start a conversation with its first message; returns (turn, created).

    With an Idempotency-Key the conversation and its turn are created once per chatbot, client
    address, user_id and key within FIRST_MESSAGE_KEY_WINDOW: a retry gets the original turn
    (`turn.conversation`), and one AI call runs. It used to start a second conversation.
    `attachments` as for message_submit; the new conversation counts against
    SESSION_CREATE_RATE_LIMIT for `create_limit_key` (a retry does not).
    """
    store = functools.partial(
        _first_message_store,
        chatbot=chatbot,
        text=text,
        idempotency_key=idempotency_key,
        client_ip=client_ip,
        user_id=user_id,
        attachments=attachments,
        create_limit_key=create_limit_key,
    )
    if not idempotency_key:
        return store(), True
    scope = f"{chatbot.pk}\x00{client_ip or ''}\x00{user_id}\x00{idempotency_key}"
    lock_id = int.from_bytes(
        hashlib.blake2b(scope.encode("utf-8", "replace"), digest_size=8).digest(), signed=True
    )
    with transaction.atomic():
        # Two copies of one first message arriving at once: the second waits here until the
        # first commits, then finds its turn. (A unique index cannot say this: the key's scope,
        # chatbot + client, spans the conversation and the turn.) Released at commit.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
        existing = (
            Turn.objects.select_related("conversation__chatbot")
            .filter(
                # Served by the turn_idempotency_key index.
                idempotency_key=idempotency_key,
                conversation__chatbot_id=chatbot.pk,
                conversation__user_id=user_id or "",
                user_message__sequence=1,
                created_at__gte=timezone.now() - FIRST_MESSAGE_KEY_WINDOW,
            )
            .filter(Q(client_ip=client_ip) if client_ip else Q(client_ip__isnull=True))
            .order_by("created_at")
            .first()
        )
        if existing is not None:
            chatbot_require_active(existing.conversation.chatbot)
            return idempotent_replay(existing, (text or "").strip()), False
        return store(), True


def _first_message_store(
    *,
    chatbot: Chatbot,
    text: str,
    idempotency_key: str,
    client_ip: str | None,
    user_id: str,
    attachments: dict | None,
    create_limit_key: str,
) -> Turn:
    """A new conversation, its first message and its turn, in one transaction of four
    statements (#23: the turn start was ten statements in two transactions, three of them
    the locking, numbering and counting a conversation nobody else knows yet cannot need).
    Nothing is stored for a message refused by its checks or limits."""
    text = message_text_check(text)
    chatbot_require_active(chatbot)
    if create_limit_key:
        conversation_create_limit_hit(key=create_limit_key)
    if attachments_present(attachments):
        # An image is stored against its conversation (message_attachments): that one first.
        conversation = conversation_start(chatbot=chatbot, user_id=user_id)
        turn, _ = message_submit(
            conversation=conversation,
            text=text,
            idempotency_key=idempotency_key,
            client_ip=client_ip,
            attachments=attachments,
        )
        return turn
    conversation_id = uuid.uuid4()
    _message_limit_hit(conversation_id, chatbot.message_rate_limit)
    with transaction.atomic():
        conversation = Conversation.objects.create(
            id=conversation_id, chatbot=chatbot, user_id=user_id or "", message_count=1
        )
        return _message_and_turn_store(
            conversation=conversation,
            text=text,
            message_type="text",
            sequence=1,
            metadata={},
            idempotency_key=idempotency_key,
            client_ip=client_ip,
        )


def _human_message_replay(conversation: Conversation, key: str, text: str) -> Turn | None:
    """A retried message that went to a person (docs/inbox.md) has no turn holding its
    Idempotency-Key: its message does. The answer is the human turn, and that message."""
    prior = (
        Message.objects.filter(
            conversation=conversation, role=Message.Role.USER, metadata__idempotency_key=key
        )
        .values_list("pk", "content")
        .first()
    )
    if prior is None:
        return None
    if prior[1] != text:
        raise IdempotencyKeyReused(KEY_REUSED)
    human = Conversation.objects.filter(pk=conversation.pk).values_list("human_turn", flat=True)
    human_turn_id = human.first()  # None: the bot answers (no open human turn)
    turn = Turn.objects.filter(pk=human_turn_id).first() if human_turn_id is not None else None
    if turn is None:
        turn = Turn.objects.filter(conversation=conversation, user_message_id=prior[0]).first()
    if turn is None:
        return None
    turn.user_message_id = prior[0]
    return turn


def conversation_open_check(*, status: str) -> None:
    """ConversationClosed for a conversation that takes no more messages."""
    if status == Conversation.Status.ENDED:
        raise ConversationClosed("This conversation has ended; start a new one.")
    if status == Conversation.Status.RESOLVED and not settings.REOPEN_RESOLVED_ON_MESSAGE:
        raise ConversationClosed("This conversation is resolved; start a new one.")


def attachments_present(payload: dict | None) -> bool:
    from conversations.hooks import ATTACHMENT_FIELDS

    if not payload:
        return False
    return any(payload.get(name) not in (None, "", [], {}) for name in ATTACHMENT_FIELDS)


def message_attachments(
    *, conversation: Conversation, payload: dict, client_ip: str | None
) -> dict[str, Any]:
    """A message's attachments (an image is decoded and stored here), after the cheap checks.

    Called once the chatbot, the credentials and the message limit have passed: the
    conversation must still take messages, and a message carrying image bytes counts against
    IMAGE_UPLOAD_RATE_LIMIT per client address, the limit of POST /api/upload-image, before a
    byte is decoded. (`image_data` used to be decoded, resized and stored before any of these,
    even on an ended conversation or for a message then refused with 429.)
    """
    from conversations.hooks import attachments_metadata

    if not attachments_present(payload):
        return {}
    status = Conversation.objects.filter(pk=conversation.pk).values_list("status", flat=True)
    conversation_open_check(status=status.first() or Conversation.Status.ENDED)
    if payload.get("image_data") not in (None, "", [], {}):
        rate_limit_hit(
            scope="image-upload",
            key=client_ip or "unknown",
            limit=settings.IMAGE_UPLOAD_RATE_LIMIT,
        )
    return attachments_metadata(conversation, payload)


def idempotent_replay(turn: Turn, text: str) -> Turn:
    """The original turn for a retry; a different message under the same key is refused, as
    Stripe and the IETF Idempotency-Key draft do (it used to get the old turn, and the new text
    was stored nowhere)."""
    original = Message.objects.filter(pk=turn.user_message_id).values_list("content", flat=True)
    if original.first() != text:
        raise IdempotencyKeyReused(KEY_REUSED, details={"turn_id": str(turn.pk)})
    return turn


def turn_claim(*, turn_id: str, worker: str) -> TurnWork | None:
    """pending → running, once. Returns what the runner needs, or None if someone else has it."""
    now = timezone.now()
    # Conditional UPDATE: a re-delivered task or a second worker finds 0 rows and stops.
    claimed = Turn.objects.filter(pk=turn_id, status=Turn.Status.PENDING).update(
        status=Turn.Status.RUNNING, worker=worker[:200], started_at=now, heartbeat_at=now
    )
    if not claimed:
        return None
    # Only the columns the runner needs, as plain values: no model instances of four tables (this
    # query was the biggest database cost of a worker at 200 streams).
    row = Turn.objects.filter(pk=turn_id).values(
        "id",
        "conversation_id",
        "conversation__chatbot__public_id",
        "conversation__chatbot_id",
        "conversation__user_id",
        "conversation__context",
        "conversation__preview",
        "user_message_id",
        "user_message__content",
        "user_message__metadata",
        "user_message__sequence",
        "client_ip",
        "last_event_id",
    )[0]
    history: list[HistoryMessage] = []
    if row["user_message__sequence"] > 1:  # a conversation's first message has no history
        history = list(
            Message.objects.filter(
                conversation_id=row["conversation_id"],
                sequence__lt=row["user_message__sequence"],
            )
            .exclude(role=Message.Role.SYSTEM)
            .order_by("-sequence")
            .values("role", "content")[: settings.HISTORY_MESSAGES_FOR_AI]
        )
        history.reverse()
        for item in history:
            # What a person answered is the shop's answer: the bot, back in charge, sees it so.
            if item["role"] == Message.Role.AGENT:
                item["role"] = Message.Role.ASSISTANT
    return TurnWork(
        turn_id=str(row["id"]),
        conversation_id=str(row["conversation_id"]),
        chatbot_public_id=row["conversation__chatbot__public_id"],
        chatbot_id=row["conversation__chatbot_id"],
        user_id=row["conversation__user_id"],
        user_message_id=str(row["user_message_id"]),
        question=row["user_message__content"],
        message_metadata=row["user_message__metadata"],
        history=history,
        client_ip=row["client_ip"],
        context=row["conversation__context"],
        preview=row["conversation__preview"],
        first_seq=row["last_event_id"] + 1,
    )


def stream_rows_save_many(batches: list[tuple[str, list[Event]]]) -> None:
    """Several turns' event rows and heartbeats in one transaction (one INSERT, one UPDATE)."""
    batches = [(turn_id, rows) for turn_id, rows in batches if rows]
    if not batches:
        return
    columns: tuple[list, list, list, list, list] = ([], [], [], [], [])
    last: dict[str, int] = {}
    for turn_id, rows in batches:
        turn_id = str(turn_id)
        for env in rows:
            for column, value in zip(
                columns,
                (turn_id, env["id"], env["event"], json.dumps(env["data"]), env["timestamp"]),
                strict=True,
            ):
                column.append(value)
        last[turn_id] = max(last.get(turn_id, 0), max(env["id"] for env in rows))
    quote = connection.ops.quote_name
    events = quote(StreamEvent._meta.db_table)
    table = quote(Turn._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        # One INSERT of column arrays (not bulk_create: building a model per row was a fifth of
        # a worker's CPU at 50 streams); ON CONFLICT: a retried batch is stored once.
        cursor.execute(
            f"INSERT INTO {events} (turn_id, seq, event, data, created_at) "
            "SELECT * FROM unnest(%s::uuid[], %s::integer[], %s::varchar[], %s::jsonb[], "
            "%s::timestamptz[]) ON CONFLICT (turn_id, seq) DO NOTHING",
            list(columns),
        )
        values = ", ".join(["(%s::uuid, %s::integer)"] * len(last))
        params: list = [timezone.now()]
        for turn_id, seq in last.items():
            params += [turn_id, seq]
        # GREATEST: batches may commit out of order; the id must never go backwards.
        cursor.execute(
            f"UPDATE {table} AS t SET heartbeat_at = %s, "
            f"last_event_id = GREATEST(t.last_event_id, v.seq) "
            f"FROM (VALUES {values}) AS v(id, seq) WHERE t.id = v.id",
            params,
        )


def turns_heartbeat(*, turn_ids: list[str]) -> set[str]:
    """Refresh the heartbeat of a worker's turns in one statement (not one ORM update per turn
    every TURN_HEARTBEAT_SECONDS); returns the ids still running, that is still ours."""
    if not turn_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE "conversations_turn" SET "heartbeat_at" = %s '
            'WHERE "id" = ANY(%s) AND "status" = %s RETURNING "id"',
            [timezone.now(), [uuid.UUID(str(t)) for t in turn_ids], Turn.Status.RUNNING],
        )
        return {str(row[0]) for row in cursor.fetchall()}


def _next_sequence(conversation_id: uuid.UUID | str) -> int:
    return (
        Message.objects.filter(conversation_id=conversation_id).aggregate(m=Max("sequence"))["m"]
        or 0
    ) + 1


@transaction.atomic
def turn_finish(
    *,
    turn_id: str,
    status: str,
    text: str,
    flow: str,
    route: dict,
    usage: dict,
    timings: dict,
    sources: list | None,
    ai_calls: list[dict],
    end_event: Event,
    message_id: str,
    error: dict | None = None,
    first_token_at: dt.datetime | None = None,
) -> str | None:
    """running → completed | failed | cancelled with the answer stored; returns its message id.

    Returns None without changing anything if the turn was already finished by someone else
    (the reaper, or a cancel while it was pending).
    """
    turn = Turn.objects.select_for_update().filter(pk=turn_id).first()
    if turn is None or turn.status != Turn.Status.RUNNING:
        return None
    conversation = Conversation.objects.select_for_update().get(pk=turn.conversation_id)
    stored_id = ""
    if text:
        stored_id = _answer_store(
            turn,
            conversation,
            message_id=message_id,
            text=text,
            status=status,
            flow=flow,
            usage=usage,
            timings=timings,
            sources=sources,
        )
    _turn_close(
        turn,
        status=status,
        flow=flow,
        route=route,
        timings=timings,
        first_token_at=first_token_at,
        end_event_id=end_event["id"],
        error=error,
    )
    conversation.last_activity_at = timezone.now()
    conversation.save(update_fields=["message_count", "last_activity_at", "updated_at"])
    _ai_calls_store(turn, conversation, ai_calls)
    # The end event is stored with the finished turn: nobody sees one without the other.
    StreamEvent.objects.bulk_create(streaming.rows_to_models(turn_id, [end_event]))
    return stored_id


def _answer_store(
    turn: Turn,
    conversation: Conversation,
    *,
    message_id: str,
    text: str,
    status: str,
    flow: str,
    usage: dict,
    timings: dict,
    sources: list | None,
) -> str:
    """The answer as the conversation's next message (an unfinished one marked incomplete,
    with why), linked to its turn; the caller saves the turn and the conversation."""
    metadata: dict[str, Any] = {}
    if sources:
        metadata["sources"] = sources
    if status != Turn.Status.COMPLETED:
        metadata["incomplete"] = True
        metadata["reason"] = status
    message = Message.objects.create(
        id=message_id,
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content=text,
        sequence=_next_sequence(conversation.pk),
        flow=flow,
        usage=usage,
        timings=timings,
        metadata=metadata,
    )
    turn.assistant_message = message
    conversation.message_count += 1
    return str(message.id)


def _turn_close(
    turn: Turn,
    *,
    status: str,
    flow: str,
    route: dict,
    timings: dict,
    first_token_at: dt.datetime | None,
    end_event_id: int,
    error: dict | None,
) -> None:
    """Save the turn as finished: how it ended, its route and timings, the id of its end
    event, and the error (cut to its columns) when it failed."""
    turn.status = status
    turn.flow = flow
    turn.route = route
    turn.timings = timings
    turn.finished_at = timezone.now()
    turn.first_token_at = first_token_at
    turn.last_event_id = end_event_id
    if error:
        turn.error_code = error.get("code", "")[:50]
        turn.error_message = error.get("message", "")
        turn.error_category = error.get("category", "")[:30]
    turn.save(
        update_fields=[
            "assistant_message",
            "status",
            "flow",
            "route",
            "timings",
            "finished_at",
            "first_token_at",
            "last_event_id",
            "error_code",
            "error_message",
            "error_category",
        ]
    )


def _ai_calls_store(turn: Turn, conversation: Conversation, ai_calls: list[dict]) -> None:
    """The turn's calls to AI services, each with whose conversation and request it served."""
    AICall.objects.bulk_create(
        [
            AICall(
                chatbot_id=conversation.chatbot_id,
                conversation_id=conversation.pk,
                turn_id=turn.pk,
                user_id=conversation.user_id,
                client_ip=turn.client_ip,
                **call,
            )
            for call in ai_calls
        ]
    )


def turn_timings_update(*, turn_id: str, timings: dict, status: str, stack: str = "") -> None:
    """Store the final timings (persistence is measured last), then tell the listeners."""
    Turn.objects.filter(pk=turn_id).update(timings=timings)
    turn_finished.send(sender=Turn, turn_id=turn_id, status=status, stack=stack)


def _copy_redis_events(*, turn_id: str, after: int) -> int:
    """Copy a turn's Redis-only events after `after` to PostgreSQL; returns the last id copied."""
    try:
        missing = eventlog.redis_events_after_sync(
            streaming.event_redis(turn_id), turn_id, after, settings.STREAM_REDIS_MAXLEN
        )
    except Exception:
        return after
    if not missing:
        return after
    StreamEvent.objects.bulk_create(
        streaming.rows_to_models(turn_id, missing), ignore_conflicts=True
    )
    return missing[-1]["id"]


def _store_partial_answer(*, turn_id: str) -> str | None:
    """What the customer of a dead runner already saw, stored as an incomplete answer."""
    tokens = StreamEvent.objects.filter(turn_id=turn_id, event="token").order_by("seq")
    text = "".join((e.data or {}).get("text", "") for e in tokens)
    if not text:
        return None
    with transaction.atomic():
        turn = Turn.objects.select_for_update().get(pk=turn_id)
        if turn.assistant_message_id:
            return str(turn.assistant_message_id)
        conversation = Conversation.objects.select_for_update().get(pk=turn.conversation_id)
        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            content=text,
            sequence=_next_sequence(conversation.pk),
            flow=turn.flow,
            metadata={"incomplete": True, "reason": "failed"},
        )
        Turn.objects.filter(pk=turn_id).update(assistant_message=message)
        Conversation.objects.filter(pk=conversation.pk).update(message_count=F("message_count") + 1)
    return str(message.id)


def append_events_sync(*, turn_id: str, events: list[tuple[str, dict]]) -> list[Event]:
    """Append events for a turn nobody is running (pending, or its worker died).

    Ids continue after the highest id in either log, so clients see no gap and no repeat.
    """
    redis = streaming.event_redis(turn_id)
    last_redis = redis.xrevrange(streaming.stream_key(turn_id), count=1)
    last_id = int(last_redis[0][0].decode().split("-")[1]) if last_redis else 0
    last_db = StreamEvent.objects.filter(turn_id=turn_id).aggregate(m=Max("seq"))["m"] or 0
    # Events a dead runner published to Redis but never flushed: keep them before Redis expires.
    last_db = max(last_db, _copy_redis_events(turn_id=turn_id, after=last_db))
    turn_last = Turn.objects.filter(pk=turn_id).values_list("last_event_id", flat=True).first() or 0
    seq = max(last_id, last_db, turn_last)
    written = []
    for event, data in events:
        seq += 1
        env = streaming.envelope(seq, event, data)
        try:
            streaming.frame_append_sync(redis, turn_id, env, ttl=settings.STREAM_REDIS_TTL_SECONDS)
        except Exception:
            logger.warning("turn %s: Redis unavailable while appending %s", turn_id, event)
        written.append(env)
    StreamEvent.objects.bulk_create(
        streaming.rows_to_models(turn_id, written), ignore_conflicts=True
    )
    Turn.objects.filter(pk=turn_id).update(last_event_id=seq)
    return written


def turn_cancel(*, turn: Turn, reason: str = "cancelled by the customer") -> str:
    """Ask for a turn to stop. Returns the resulting state as the caller should report it."""
    from config.redis import get_redis

    # A pending turn nobody has claimed: cancel it here (the claim's conditional UPDATE then
    # finds nothing to run).
    if Turn.objects.filter(pk=turn.pk, status=Turn.Status.PENDING).update(
        status=Turn.Status.CANCELLED, finished_at=timezone.now(), error_message=reason
    ):
        append_events_sync(
            turn_id=str(turn.pk),
            events=[("end", {"status": "cancelled", "reason": reason, "message_id": None})],
        )
        return "cancelled"
    turn.refresh_from_db(fields=["status"])
    if turn.status == Turn.Status.RUNNING:
        # The worker running it listens on this channel and stops the upstream call.
        get_redis().publish(CANCEL_CHANNEL, json.dumps({"turn_id": str(turn.pk), "reason": reason}))
        return "cancelling"
    return turn.status


CANCEL_CHANNEL = "cb:turn-cancel"


def turns_reap_stale() -> int:
    """Fail turns whose worker died (no heartbeat) or that no worker ever picked up."""
    now = timezone.now()
    stale = list(
        Turn.objects.filter(
            # A human turn has no worker and no heartbeat: it runs until a person hands back.
            kind=Turn.Kind.AI,
            status=Turn.Status.RUNNING,
            heartbeat_at__lt=now - dt.timedelta(seconds=settings.TURN_STALE_SECONDS),
        ).values_list("pk", "conversation__chatbot__language")[:500]
    )
    never_started = list(
        Turn.objects.filter(
            status=Turn.Status.PENDING,
            created_at__lt=now - dt.timedelta(seconds=settings.TURN_PENDING_TIMEOUT),
        ).values_list("pk", "conversation__chatbot__language")[:500]
    )
    _turns_redispatch(now)
    reaped = 0
    for turn_id, language, from_status, code in [
        (*t, Turn.Status.RUNNING, TurnErrorCode.WORKER_LOST) for t in stale
    ] + [(*t, Turn.Status.PENDING, TurnErrorCode.NOT_STARTED) for t in never_started]:
        if _turn_reap(str(turn_id), language=language, from_status=from_status, code=code, now=now):
            reaped += 1
    return reaped


def _turns_redispatch(now: dt.datetime) -> None:
    """A queued run_turn can be lost (a Redis restart without persistence): send it again.
    Harmless when it was only waiting: the claim runs a turn once, whoever gets it."""
    redispatch_after = settings.TURN_PENDING_REDISPATCH_SECONDS
    if not redispatch_after:
        return
    from conversations.tasks import run_turn

    waiting = Turn.objects.filter(
        status=Turn.Status.PENDING,
        created_at__lt=now - dt.timedelta(seconds=redispatch_after),
        created_at__gte=now - dt.timedelta(seconds=settings.TURN_PENDING_TIMEOUT),
    ).values_list("pk", flat=True)[:500]
    from config.redis import get_redis

    redis = get_redis()
    for turn_id in waiting:
        # Once per turn: a long but healthy queue must not be flooded with copies.
        if redis.set(
            f"cb:turn:{turn_id}:redispatched", 1, nx=True, ex=settings.TURN_PENDING_TIMEOUT
        ):
            run_turn.delay(str(turn_id))


def _turn_reap(
    turn_id: str, *, language: str, from_status: str, code: str, now: dt.datetime
) -> bool:
    """Fail one stale turn unless it left `from_status` meanwhile: a running one keeps what it
    had streamed as a partial answer; both end their stream with the error. True if reaped."""
    # What the customer reads, in the bot's language (config.errors.TURN_ERRORS).
    message = turn_error_text(code, language)
    # Conditional UPDATE: if the runner finished meanwhile, leave its result alone.
    if not Turn.objects.filter(pk=turn_id, status=from_status).update(
        status=Turn.Status.FAILED,
        finished_at=now,
        error_code=code,
        error_message=message,
        error_category=TURN_ERRORS[code].category,
    ):
        return False
    message_id = None
    if from_status == Turn.Status.RUNNING:
        last_db = StreamEvent.objects.filter(turn_id=turn_id).aggregate(m=Max("seq"))["m"] or 0
        _copy_redis_events(turn_id=turn_id, after=last_db)
        message_id = _store_partial_answer(turn_id=turn_id)
    append_events_sync(
        turn_id=turn_id,
        events=[
            ("error", error_event(code, message)),
            ("end", {"status": "failed", "message_id": message_id}),
        ],
    )
    turn_finished.send(sender=Turn, turn_id=turn_id, status=Turn.Status.FAILED)
    return True


def new_chat_id() -> str:
    return str(uuid.uuid4())


def conversation_expire_if_idle(*, conversation: Conversation) -> Conversation:
    """End an active conversation nobody wrote in for SESSION_INACTIVITY_MINUTES."""
    minutes = settings.SESSION_INACTIVITY_MINUTES
    if (
        minutes
        and conversation.status == Conversation.Status.ACTIVE
        and conversation.last_activity_at < timezone.now() - dt.timedelta(minutes=minutes)
    ):
        if Conversation.objects.filter(
            pk=conversation.pk, status=Conversation.Status.ACTIVE
        ).update(
            status=Conversation.Status.ENDED, ended_at=timezone.now(), ended_reason="inactivity"
        ):
            conversation_closed.send(
                sender=Conversation, conversation_id=conversation.pk, next="ended"
            )
        conversation.refresh_from_db()
    return conversation


def conversations_expire_idle() -> int:
    """The periodic sweep behind conversation_expire_if_idle; returns how many it ended."""
    minutes = settings.SESSION_INACTIVITY_MINUTES
    if not minutes:
        return 0
    cutoff = timezone.now() - dt.timedelta(minutes=minutes)
    idle = Conversation.objects.filter(
        status=Conversation.Status.ACTIVE, last_activity_at__lt=cutoff
    )
    # Nobody took them (a person's replies count as activity): their human turns end too.
    with_person = list(
        idle.exclude(handling=Conversation.Handling.BOT).values_list("pk", flat=True)[:1000]
    )
    ended = idle.update(
        status=Conversation.Status.ENDED, ended_at=timezone.now(), ended_reason="inactivity"
    )
    for conversation_id in with_person:
        conversation_closed.send(sender=Conversation, conversation_id=conversation_id, next="ended")
    return ended


def conversation_resume(*, conversation: Conversation) -> Conversation:
    """Make an unresolved conversation active again (seed 003 "resume")."""
    conversation = conversation_expire_if_idle(conversation=conversation)
    if conversation.status == Conversation.Status.ENDED:
        raise ConversationClosed("This conversation has ended; start a new one.")
    if conversation.status == Conversation.Status.RESOLVED:
        raise ConversationClosed(
            "This conversation is resolved; send a message to reopen it or start a new one."
        )
    Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=timezone.now())
    conversation.refresh_from_db()
    return conversation


def conversation_resolve(*, conversation: Conversation, notes: str = "") -> Conversation:
    # Conditional UPDATE: resolving an ended conversation must not bring it back.
    updated = Conversation.objects.filter(
        pk=conversation.pk, status__in=[Conversation.Status.ACTIVE, Conversation.Status.RESOLVED]
    ).update(status=Conversation.Status.RESOLVED, is_resolved=True, resolution_notes=notes[:5000])
    if not updated:
        raise ConversationClosed("An ended conversation cannot be resolved.")
    conversation_closed.send(sender=Conversation, conversation_id=conversation.pk, next="resolved")
    conversation.refresh_from_db()
    return conversation


def conversation_end(*, conversation: Conversation, reason: str = "") -> Conversation:
    Conversation.objects.filter(pk=conversation.pk).exclude(
        status=Conversation.Status.ENDED
    ).update(
        status=Conversation.Status.ENDED,
        ended_at=timezone.now(),
        ended_reason=(reason or "user_request")[:255],
    )
    conversation_closed.send(sender=Conversation, conversation_id=conversation.pk, next="ended")
    conversation.refresh_from_db()
    return conversation
