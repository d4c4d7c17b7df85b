"""Read side of conversations: a turn's events after an id, from the Redis log and PostgreSQL."""

from __future__ import annotations

import contextlib
from typing import Any

from config.errors import ApiError, ErrorCode
from conversations import eventlog, streaming
from conversations.event_types import Event
from conversations.models import Turn

SESSION_STATUS: dict[str, str] = {
    Turn.Status.PENDING: "active",
    Turn.Status.RUNNING: "active",
    Turn.Status.COMPLETED: "completed",
    Turn.Status.FAILED: "failed",
    Turn.Status.CANCELLED: "cancelled",
}


def event_for_clients(env: Event) -> Event:
    """An event as polling and SSE send it: a `token` event also carries its text under seed
    000's names, `data.token` beside `data.text`, and `markers` ({}, the only value the seed
    shows), so a frontend written for the seed reads it unchanged.

    Added on the way out, never stored: the logs and WebSocket frames keep `text` only. Measured
    (2 cores): 1.0 µs and +71 bytes per token event of a 44-character frame; docs/streaming.md.
    """
    if env["event"] != "token":
        return env
    data = env["data"]
    return {**env, "data": {**data, "token": data.get("text", ""), "markers": {}}}


def stream_events_after(*, turn: Turn, after: int, limit: int) -> dict[str, Any]:
    """Events with id > after, gapless and in order, plus where the turn stands.

    Read by the event log's sync door (conversations.eventlog: Redis, and PostgreSQL when
    Redis lacks the next event). An empty page of a finished turn refuses a resume point past
    its last event (400) or one whose events are gone from both logs (410).
    """
    finished_before = turn.is_finished
    events = [
        event_for_clients(env) for env in eventlog.events_after_sync(str(turn.pk), after, limit)
    ]
    if not events and finished_before and after > 0:
        if after > turn.last_event_id:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"There is no event {after} in this turn; its last event is {turn.last_event_id}.",
                details={"last_event_id": turn.last_event_id},
            )
        if after < turn.last_event_id:
            raise ApiError(
                ErrorCode.RESUME_POINT_GONE,
                "The events after this point have been cleaned up; load the conversation history.",
            )
    last_id = events[-1]["id"] if events else after
    ended = bool(events) and events[-1]["event"] == streaming.TERMINAL_EVENT
    has_more = not ended and not (finished_before and last_id >= turn.last_event_id)
    return {
        "events": events,
        "session_status": SESSION_STATUS[turn.status],
        "last_event_id": last_id,
        "has_more": has_more,
    }


def stream_resume_check(*, turn: Turn, after: int) -> bool:
    """Refuses a resume point as stream_events_after does (400 past the turn's last event, 410
    when its events are gone) and tells whether anything can follow it, for the readers that
    then follow the turn (WebSocket, Socket.IO, SSE).

    Those readers subscribe first and then read the log, so a check that read it too would
    read it twice. It reads nothing for a turn that had not finished when fetched: that page is
    never refused and always has more to come (stream_events_after). A finished turn's check
    reads one event, and the replay reads it again after subscribing."""
    if not turn.is_finished:
        return True
    page = stream_events_after(turn=turn, after=after, limit=1)
    return bool(page["events"]) or page["has_more"]


def turn_for_resume(*, conversation_id, turn_id, after: int) -> Turn | None:
    """The conversation's turn a client resumes, its resume point checked (stream_resume_check),
    in one trip to a database thread; None when the conversation has no such turn."""
    turn = Turn.objects.filter(pk=turn_id, conversation_id=conversation_id).first()
    if turn is not None:
        stream_resume_check(turn=turn, after=after)
    return turn


def conversation_history(*, conversation_id, limit: int, offset: int) -> list[dict[str, Any]]:
    from conversations.models import Message

    rows = (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("turn_asked", "turn_answered")
        .order_by("sequence")[offset : offset + limit]
    )
    return [message_as_dict(m) for m in rows]


def conversation_history_latest(*, conversation_id, limit: int) -> list[dict[str, Any]]:
    """The last `limit` messages, oldest first (the WebSocket `history` message)."""
    from conversations.models import Message

    rows = (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("turn_asked", "turn_answered")
        .order_by("-sequence")[:limit]
    )
    return [message_as_dict(m) for m in reversed(list(rows))]


def message_as_dict(m) -> dict[str, Any]:
    return {
        "message_id": str(m.id),
        "direction": "incoming" if m.role == "user" else "outgoing",
        "role": m.role,
        "content": m.content,
        "type": m.type,
        "sequence": m.sequence,
        "flow": m.flow,
        "metadata": {
            k: v
            for k, v in m.metadata.items()
            if k in ("incomplete", "reason", "images", "feedback")
        },
        "turn": asked_turn_outcome(m),
        "created_at": m.created_at.isoformat(),
        **seed_message_fields(m),
    }


# Seed 003's chat_messages columns; a value stored in the message's metadata under the same name
# (the tools-and-agents work) wins over what the turn tells.
SEED_MESSAGE_FIELDS = (
    "intent",
    "entities",
    "sentiment",
    "confidence_score",
    "agent_info",
    "parent_message_id",
    "error_info",
)


def seed_message_fields(m) -> dict[str, Any]:
    """Seed 003's per-message fields, null where nothing is known. Known today: the router's
    routing key as `intent`, the answer flow as `agent_info`, the question an answer replies to
    as `parent_message_id`, and the turn's error as `error_info`."""
    from django.core.exceptions import ObjectDoesNotExist

    fields: dict[str, Any] = dict.fromkeys(SEED_MESSAGE_FIELDS)
    turn = None
    with contextlib.suppress(ObjectDoesNotExist):
        # Both relations come with the message (select_related) in the history readers.
        turn = m.turn_asked if m.role == "user" else m.turn_answered
    if turn is not None:
        route = turn.route if isinstance(turn.route, dict) else {}
        fields["intent"] = route.get("label") or None
        if turn.error_code:
            fields["error_info"] = {"code": turn.error_code, "message": turn.error_message}
        if m.role == "assistant":
            fields["parent_message_id"] = str(turn.user_message_id)
            fields["agent_info"] = {
                "type": "flow",
                "flow": m.flow or turn.flow or None,
                "routing_mode": route.get("mode"),
            }
            tools = route.get("tools")
            if isinstance(tools, dict):
                # The tool loop's record (tools.loop): which tools were called, in how many steps.
                fields["agent_info"]["tools_called"] = [
                    call.get("tool") for call in tools.get("calls") or []
                ]
                fields["agent_info"]["steps"] = tools.get("steps", 0)
            if route.get("agents"):
                # An answer handed from one agent (answer flow) to another, in order.
                fields["agent_info"]["agents"] = route["agents"]
    for name in SEED_MESSAGE_FIELDS:
        if m.metadata.get(name) is not None:
            fields[name] = m.metadata[name]
    return fields


def asked_turn_outcome(m) -> dict[str, Any] | None:
    """For a customer's message, how the answer to it ended, so a client showing the history
    shows what the customer saw live: the turn's status, its stored answer and the error the
    stream carried (`error` event's code and message). None for other messages."""
    from django.core.exceptions import ObjectDoesNotExist

    if m.role != "user":
        return None
    try:
        turn = m.turn_asked  # fetched with the message (select_related) by the history readers
    except ObjectDoesNotExist:
        return None
    return {
        "turn_id": str(turn.pk),
        "status": turn.status,
        "answer_message_id": str(turn.assistant_message_id) if turn.assistant_message_id else None,
        "error": (
            {"code": turn.error_code, "message": turn.error_message} if turn.error_code else None
        ),
    }


def conversation_as_dict(c) -> dict[str, Any]:
    return {
        "sessionId": str(c.id),
        "chatbotId": c.chatbot.public_id,
        "userId": c.user_id,
        "status": c.status,
        "isActive": c.status == "active",
        "isResolved": c.is_resolved,
        "lastActivity": c.last_activity_at.isoformat(),
        "messageCount": c.message_count,
        "createdAt": c.created_at.isoformat(),
        "metadata": c.metadata,
        "conversationContext": c.context,
        "resolutionNotes": c.resolution_notes,
        "endedReason": c.ended_reason,
    }


def user_sessions(*, user_id: str, chatbot_ids: list[int] | None, kind: str, limit: int) -> list:
    """A user's sessions with their five latest messages, in two queries whatever the count."""
    from django.db.models import F, Window
    from django.db.models.functions import RowNumber

    from conversations.models import Conversation, Message

    matching = Conversation.objects.select_related("chatbot").filter(user_id=user_id)
    if chatbot_ids is not None:
        matching = matching.filter(chatbot_id__in=chatbot_ids)
    if kind == "active":
        matching = matching.filter(status="active")
    elif kind == "unresolved":
        matching = matching.filter(is_resolved=False).exclude(status="ended")
    sessions = list(matching.order_by("-last_activity_at")[:limit])
    recent: dict = {}
    if sessions:
        rows = (
            Message.objects.filter(conversation_id__in=[c.pk for c in sessions])
            .select_related("turn_asked", "turn_answered")
            .annotate(
                rank=Window(
                    RowNumber(), partition_by=[F("conversation_id")], order_by=F("sequence").desc()
                )
            )
            .filter(rank__lte=5)
            .order_by("conversation_id", "sequence")
        )
        for m in rows:
            recent.setdefault(m.conversation_id, []).append(message_as_dict(m))
    return [{**conversation_as_dict(c), "recentMessages": recent.get(c.pk, [])} for c in sessions]


def turn_answer_as_dict(turn) -> dict[str, Any]:
    """A finished turn as seed 003 answers a message (`POST /api/chat/message`, Socket.IO's
    `chat:response`): the question, the stored answer, and the agent that gave it."""
    route = turn.route or {}
    involved = [name for name in (route.get("router"), route.get("extractor")) if name]
    involved.append(turn.flow or "main")
    result = {
        "sessionId": str(turn.conversation_id),
        "turn_id": str(turn.pk),
        "status": turn.status,
        "message": message_as_dict(turn.user_message),
        "response": message_as_dict(turn.assistant_message) if turn.assistant_message else None,
        "agent": {
            "type": turn.flow or None,
            "confidence": route.get("confidence"),
            "agentsInvolved": involved,
            "route": route.get("label"),
        },
    }
    if turn.status != Turn.Status.COMPLETED:
        result["error"] = {"code": turn.error_code, "message": turn.error_message}
    return result
