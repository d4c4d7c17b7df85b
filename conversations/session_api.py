"""Sessions API (seed 003): create, history, resume, resolve, end, a user's sessions, and the
synchronous chat message that waits for the answer."""

from __future__ import annotations

import json
import time

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from chatbots.access import chatbot_ids_for
from config.errors import ApiError, ErrorCode
from config.ratelimit import ip_of
from config.schema import ERROR_RESPONSES
from conversations import selectors, services, streaming
from conversations.access import (
    chatbot_for_new_conversation,
    conversation_for,
    conversation_token_issue,
    request_user,
)
from conversations.models import Turn
from conversations.turn_links import REPLAYED_HEADER, public_url

SESSION = inline_serializer(
    name="Session",
    fields={
        "sessionId": serializers.UUIDField(),
        "chatbotId": serializers.CharField(),
        "userId": serializers.CharField(),
        "status": serializers.ChoiceField(choices=["active", "resolved", "ended"]),
        "isActive": serializers.BooleanField(),
        "isResolved": serializers.BooleanField(),
        "lastActivity": serializers.DateTimeField(),
        "messageCount": serializers.IntegerField(),
        "createdAt": serializers.DateTimeField(),
        "metadata": serializers.DictField(),
        "conversationContext": serializers.DictField(),
        "resolutionNotes": serializers.CharField(),
        "endedReason": serializers.CharField(),
    },
)


class TurnErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField(help_text="What the customer was told (the `error` event).")

    class Meta:
        ref_name = "HistoryTurnError"


class AskedTurnSerializer(serializers.Serializer):
    turn_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=[s.value for s in Turn.Status])
    answer_message_id = serializers.UUIDField(
        allow_null=True, help_text="The stored answer (null when nothing was said)."
    )
    error = TurnErrorSerializer(allow_null=True)

    class Meta:
        ref_name = "HistoryTurn"


class HistoryMessageSerializer(serializers.Serializer):
    message_id = serializers.UUIDField()
    direction = serializers.ChoiceField(choices=["incoming", "outgoing"])
    role = serializers.CharField()
    content = serializers.CharField()
    type = serializers.CharField()
    sequence = serializers.IntegerField()
    flow = serializers.CharField()
    metadata = serializers.DictField()
    turn = AskedTurnSerializer(
        allow_null=True,
        help_text="A customer's message: how the answer to it ended. Null for other messages.",
    )
    created_at = serializers.DateTimeField()
    # Seed 003's chat_messages columns (additive; null where unknown).
    intent = serializers.CharField(
        allow_null=True, help_text="The router's routing key for this turn (e.g. `order`)."
    )
    entities = serializers.JSONField(allow_null=True, help_text="Entities found in the message.")
    sentiment = serializers.CharField(allow_null=True)
    confidence_score = serializers.FloatField(allow_null=True)
    agent_info = inline_serializer(
        name="HistoryAgentInfo",
        fields={
            "type": serializers.CharField(),
            "flow": serializers.CharField(allow_null=True),
            "routing_mode": serializers.CharField(allow_null=True),
            "tools_called": serializers.ListField(
                child=serializers.CharField(),
                required=False,
                help_text="Tools the model called for this answer, in order (docs/tools.md); "
                "present when the bot has tools.",
            ),
            "steps": serializers.IntegerField(
                required=False, help_text="Rounds of tool calls the answer took."
            ),
            "agents": serializers.ListField(
                child=serializers.CharField(),
                required=False,
                help_text="The answer flows (agents) that took part, in order, when one "
                "transferred the question to another.",
            ),
        },
        allow_null=True,
        help_text="An answer: the flow that produced it. Null for a customer's message.",
    )
    parent_message_id = serializers.UUIDField(
        allow_null=True, help_text="An answer: the customer's message it replies to."
    )
    error_info = TurnErrorSerializer(
        allow_null=True, help_text="The turn's error (code and what the customer was told)."
    )

    class Meta:
        ref_name = "HistoryMessage"


def history_item(**kw):
    return HistoryMessageSerializer(**kw)


class CreateSessionSerializer(serializers.Serializer):
    chatbot_id = serializers.CharField(max_length=64)
    userId = serializers.CharField(max_length=200, required=False, allow_blank=True)
    user_id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    metadata = serializers.DictField(required=False)
    widget_key = serializers.CharField(max_length=100, required=False, allow_blank=True)

    def validate_metadata(self, value: dict) -> dict:
        if len(json.dumps(value)) > 4000:
            raise serializers.ValidationError("Metadata is limited to 4000 characters of JSON.")
        return value


@extend_schema(
    operation_id="session_create",
    summary="Start a conversation (widget key + allowed origin, or an API token).",
    request=CreateSessionSerializer,
    responses={
        201: inline_serializer(
            name="SessionCreated",
            fields={
                "success": serializers.BooleanField(),
                "sessionId": serializers.UUIDField(),
                "session": SESSION,
                "conversation_token": serializers.CharField(),
                "websocket_url": serializers.CharField(),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (400, 401, 403, 404, 429)},
    },
)
@api_view(["POST"])
def session_create(request: Request) -> Response:
    data = CreateSessionSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    body = data.validated_data
    chatbot = chatbot_for_new_conversation(request, body["chatbot_id"], body.get("widget_key", ""))
    conversation = services.conversation_start(
        chatbot=chatbot,
        user_id=body.get("userId") or body.get("user_id") or "",
        metadata=body.get("metadata") or {},
        create_limit_key=ip_of(request),
    )
    return Response(
        {
            "success": True,
            "sessionId": str(conversation.pk),
            "session": selectors.conversation_as_dict(conversation),
            "conversation_token": conversation_token_issue(
                conversation_id=conversation.pk, chatbot_id=chatbot.pk
            ),
            "websocket_url": public_url(
                request, f"/ws/conversations/{conversation.pk}/", websocket=True
            ),
        },
        status=201,
    )


MAX_OFFSET = 1_000_000


def _paging(request: Request, default_limit: int = 50) -> tuple[int, int]:
    try:
        limit = int(request.GET.get("limit", default_limit))
        offset = int(request.GET.get("offset", 0))
    except ValueError as exc:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR, "`limit` and `offset` must be whole numbers."
        ) from exc
    # Bounded: PostgreSQL's OFFSET is a bigint, and no conversation holds a million messages.
    if not 1 <= limit <= 500 or not 0 <= offset <= MAX_OFFSET:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"`limit` must be 1-500 and `offset` from 0 to {MAX_OFFSET}.",
        )
    return limit, offset


@extend_schema(
    operation_id="session_history",
    summary="A conversation's messages, oldest first.",
    parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
    responses={
        200: inline_serializer(
            name="SessionHistory",
            fields={
                "sessionId": serializers.UUIDField(),
                "messages": history_item(many=True),
                "total": serializers.IntegerField(),
                "limit": serializers.IntegerField(),
                "offset": serializers.IntegerField(),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (400, 404)},
    },
)
@api_view(["GET"])
def session_history(request: Request, session_id) -> Response:
    conversation = conversation_for(request, session_id)
    limit, offset = _paging(request)
    return Response(
        {
            "sessionId": str(conversation.pk),
            "messages": selectors.conversation_history(
                conversation_id=conversation.pk, limit=limit, offset=offset
            ),
            "total": conversation.messages.count(),
            "limit": limit,
            "offset": offset,
        }
    )


@extend_schema(
    operation_id="session_resume",
    summary="Resume an unresolved conversation: the session, its context and full history.",
    request=None,
    responses={
        200: inline_serializer(
            name="SessionResumed",
            fields={
                "success": serializers.BooleanField(),
                "sessionId": serializers.UUIDField(),
                "session": SESSION,
                "history": history_item(many=True),
                "message": serializers.CharField(),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (404, 409)},
    },
)
@api_view(["POST"])
def session_resume(request: Request, session_id) -> Response:
    conversation = services.conversation_resume(conversation=conversation_for(request, session_id))
    return Response(
        {
            "success": True,
            "sessionId": str(conversation.pk),
            "session": selectors.conversation_as_dict(conversation),
            "history": selectors.conversation_history(
                conversation_id=conversation.pk, limit=10_000, offset=0
            ),
            "message": "Session resumed successfully. You can continue the conversation.",
        }
    )


class ResolveSerializer(serializers.Serializer):
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class EndSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


SESSION_RESPONSE = inline_serializer(
    name="SessionChanged", fields={"success": serializers.BooleanField(), "session": SESSION}
)


@extend_schema(
    operation_id="session_resolve",
    summary="Mark a conversation resolved.",
    request=ResolveSerializer,
    responses={200: SESSION_RESPONSE, **{s: ERROR_RESPONSES[s] for s in (400, 404, 409)}},
)
@api_view(["POST"])
def session_resolve(request: Request, session_id) -> Response:
    return _session_change(
        request, session_id, ResolveSerializer, services.conversation_resolve, "notes"
    )


@extend_schema(
    operation_id="session_end",
    summary="End a conversation.",
    request=EndSerializer,
    responses={200: SESSION_RESPONSE, **{s: ERROR_RESPONSES[s] for s in (400, 404)}},
)
@api_view(["POST"])
def session_end(request: Request, session_id) -> Response:
    return _session_change(request, session_id, EndSerializer, services.conversation_end, "reason")


def _session_change(request: Request, session_id, serializer, change, field: str) -> Response:
    """Resolve and end: check access, validate the one field, apply, return the session."""
    conversation = conversation_for(request, session_id)
    body = serializer(data=request.data)
    body.is_valid(raise_exception=True)
    conversation = change(conversation=conversation, **{field: body.validated_data[field]})
    return Response({"success": True, "session": selectors.conversation_as_dict(conversation)})


@extend_schema(
    operation_id="user_sessions",
    summary="A user's sessions with recent messages (API token or staff only).",
    parameters=[
        OpenApiParameter("type", str, enum=["active", "unresolved", "recent"]),
        OpenApiParameter("limit", int),
    ],
    responses={
        200: inline_serializer(
            name="UserSessions",
            fields={
                "userId": serializers.CharField(),
                "type": serializers.CharField(),
                "count": serializers.IntegerField(),
                "sessions": serializers.ListField(child=serializers.DictField()),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (400, 401)},
    },
)
@api_view(["GET"])
def user_sessions(request: Request, user_id: str) -> Response:
    user = request_user(request)
    if user is None:
        # A user id is chosen by the client, so it proves nothing: visitors resume with their
        # conversation token instead (POST /api/sessions/<id>/resume).
        raise ApiError(ErrorCode.NOT_AUTHENTICATED, "An API token or a staff login is required.")
    kind = request.GET.get("type", "recent")
    if kind not in ("active", "unresolved", "recent"):
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`type` must be active, unresolved or recent.")
    limit, _offset = _paging(request, default_limit=10)
    # Operators: every bot; members: their shops' bots; API users: the bots they were granted.
    chatbot_ids = chatbot_ids_for(user)
    sessions = selectors.user_sessions(
        user_id=user_id[:200], chatbot_ids=chatbot_ids, kind=kind, limit=limit
    )
    return Response({"userId": user_id, "type": kind, "count": len(sessions), "sessions": sessions})


class ChatMessageSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=100_000)
    type = serializers.ChoiceField(choices=["text"], default="text", required=False)
    sessionId = serializers.UUIDField(required=False)


@extend_schema(
    operation_id="chat_message",
    summary="Send a message and wait for the answer (times out to the turn id).",
    request=ChatMessageSerializer,
    parameters=[
        OpenApiParameter("X-Session-ID", str, location=OpenApiParameter.HEADER, required=False),
        OpenApiParameter("Idempotency-Key", str, location=OpenApiParameter.HEADER, required=False),
    ],
    responses={
        200: inline_serializer(
            name="ChatMessageAnswered",
            fields={
                "sessionId": serializers.UUIDField(),
                "turn_id": serializers.UUIDField(),
                "status": serializers.CharField(),
                "message": history_item(),
                "response": history_item(allow_null=True),
                "agent": serializers.DictField(),
                "error": serializers.DictField(required=False),
            },
        ),
        202: inline_serializer(
            name="ChatMessagePending",
            fields={
                "sessionId": serializers.UUIDField(),
                "turn_id": serializers.UUIDField(),
                "status": serializers.CharField(),
                "streaming_url": serializers.CharField(),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (400, 404, 409, 429)},
    },
)
@api_view(["POST"])
def chat_message(request: Request) -> Response:
    body = ChatMessageSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    session_id = request.headers.get("X-Session-ID") or body.validated_data.get("sessionId")
    if not session_id:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            "Send the session id in the X-Session-ID header (create one with POST /api/sessions).",
        )
    conversation = conversation_for(request, _uuid(session_id))
    turn, created = services.message_submit(
        conversation=conversation,
        text=body.validated_data["message"],
        idempotency_key=request.headers.get("Idempotency-Key", "")[:200],
        client_ip=ip_of(request),
    )
    turn = _wait_for_turn(turn, settings.CHAT_SYNC_TIMEOUT_SECONDS)
    if not turn.is_finished:
        response = Response(
            {
                "sessionId": str(conversation.pk),
                "turn_id": str(turn.pk),
                "status": turn.status,
                "streaming_url": public_url(request, f"/api/stream-events/{turn.pk}"),
            },
            status=202,
        )
    else:
        response = Response(selectors.turn_answer_as_dict(turn))
    if not created:
        # An Idempotency-Key retry: the answer is the earlier turn's (its ids are in the body).
        response[REPLAYED_HEADER] = "true"
    return response


def _uuid(value):
    import uuid

    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise ApiError(
            ErrorCode.CONVERSATION_NOT_FOUND,
            "No conversation with this id for the credentials given.",
        ) from exc


def _wait_for_turn(turn: Turn, timeout: float) -> Turn:
    """Wait for the turn's end, or the timeout, without holding a database connection.

    The wait blocks on the turn's Redis event log (XREAD), where `end` is written only after
    the turn's row is finished. The row is read once at the start and then every few seconds
    (for a turn whose log is gone: Redis restarted, or a finish that reached only PostgreSQL),
    and the pooled connection goes back to the pool after each read: a waiting call holds one
    for milliseconds, so 50 callers waiting on slow answers cannot take the DATABASE_POOL_MAX
    connections other customers need (issue #18 item 4; before, each waiter held its
    connection for the whole wait and other requests got 503).
    """
    from django.db import connection
    from redis.exceptions import RedisError

    row_check_every = 2.0
    # XREAD BLOCK must return before the client's socket timeout (config/redis.py: 5 s).
    block_at_most = 4.0
    deadline = time.monotonic() + timeout
    redis = streaming.event_redis(str(turn.pk))
    key = streaming.stream_key(str(turn.pk))
    last = "0-0"
    next_row_check = 0.0
    while True:
        now = time.monotonic()
        if now >= next_row_check:
            if Turn.objects.filter(pk=turn.pk, status__in=Turn.FINISHED).exists():
                break
            next_row_check = now + row_check_every
            if not connection.in_atomic_block:
                connection.close()  # back to the pool until the answer is there
        if now >= deadline:
            break
        block = min(block_at_most, next_row_check - now, deadline - now)
        try:
            entries = redis.xread({key: last}, block=max(1, int(block * 1000)), count=100)
        except RedisError:
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            continue
        ended = False
        for _stream, items in entries or []:
            if items:
                last = items[-1][0]
                ended = any(
                    e.get("event") == streaming.TERMINAL_EVENT
                    for e in streaming.decode_entries(items[-1:])
                )
        if ended:
            break
    return Turn.objects.select_related("user_message", "assistant_message").get(pk=turn.pk)
