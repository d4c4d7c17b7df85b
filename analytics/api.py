"""Staff REST endpoints of analytics: processing metrics, the conversation index (seed 004's
sync and messages paths) and the conversation export."""

from __future__ import annotations

import datetime as dt
import re

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access
from accounts.models import AuditEvent
from accounts.permissions import STAFF_AUTHENTICATION, OperatorOnly, ShopMember
from accounts.services import audit_conversations
from analytics import selectors
from analytics.error_codes import AnalyticsErrorCode
from analytics.export import FORMATS, export_response
from analytics.services import conversation_index as index
from chatbots.access import chatbot_ids_for
from chatbots.models import Chatbot
from config.errors import ApiError, ErrorCode
from config.schema import ERROR_RESPONSES
from conversations.models import Conversation

STAFF_ERRORS = {s: ERROR_RESPONSES[s] for s in (401, 403)}
WINDOW = re.compile(r"^(\d{1,5})([mhd])$")
WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def staff_api(methods: list[str], *, operators_only: bool = False):
    """A DRF function view for shop members (their shops' rows) or, with operators_only, for
    platform operators (admin session or JWT)."""

    def decorate(view):
        view = permission_classes([OperatorOnly if operators_only else ShopMember])(view)
        view = authentication_classes(STAFF_AUTHENTICATION)(view)
        return api_view(methods)(view)

    return decorate


# --- parameters -----------------------------------------------------------------------------------


def _int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"`{name}` must be a whole number from {low} to {high}.",
            details={name: raw},
        )
    return value


EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)


def _when(request: Request, name: str, *, end_of_day: bool = False) -> dt.datetime | None:
    """An ISO date or date-time; a bare date `to` means the end of that day (UTC)."""
    raw = request.GET.get(name)
    if not raw:
        return None
    try:
        # A bare date first: parse_datetime would read 2025-11-08 as its midnight.
        day = parse_date(raw) if len(raw) == 10 else None
        value = None if day else parse_datetime(raw)
        if day is not None:
            if end_of_day:
                day += dt.timedelta(days=1)
            value = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
            if end_of_day:
                value -= dt.timedelta(microseconds=1)
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value, dt.UTC)
        # The ends of the calendar overflow on the next day or a time zone shift (0001-01-01,
        # 9999-12-31 were 500s); no data is that old or that new.
        if value is not None and not EARLIEST <= value <= LATEST:
            value = None
    except (ValueError, OverflowError):
        value = None
    if value is None:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"`{name}` must be a date (2025-11-08) or a date and time (2025-11-08T17:28:57Z), "
            f"from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}.",
            details={name: raw},
        )
    return value


def _chatbot_ids(request: Request) -> list[int] | None:
    """The chatbots the caller's shops own; None for operators (every chatbot)."""
    return chatbot_ids_for(request.user, api_users=False)


def _chatbot(request: Request) -> int | None:
    public_id = request.GET.get("chatbot")
    if not public_id:
        return None
    # Another shop's chatbot is answered like one that does not exist.
    chatbot_id = (
        access.scope(Chatbot.objects.filter(public_id=public_id), request.user)
        .values_list("pk", flat=True)
        .first()
    )
    if chatbot_id is None:
        raise ApiError(ErrorCode.CHATBOT_NOT_FOUND, "No chatbot with this id.")
    return chatbot_id


def _window(raw: str) -> dt.timedelta:
    match = WINDOW.match(raw or "")
    window = dt.timedelta(**{WINDOW_UNITS[match.group(2)]: int(match.group(1))}) if match else None
    longest = dt.timedelta(days=settings.METRICS_RETENTION_DAYS)
    if window is None or not dt.timedelta(minutes=1) <= window <= longest:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            "`window` must be like 15m, 24h or 7d, at least 1m and at most "
            f"{settings.METRICS_RETENTION_DAYS}d (how long metrics are kept).",
            details={"window": raw},
        )
    return window


# --- processing metrics -----------------------------------------------------------------------------

PERCENTILE_FIELDS = {
    "p50": serializers.FloatField(),
    "p95": serializers.FloatField(),
    "p99": serializers.FloatField(),
}


@extend_schema(
    operation_id="processing_metrics",
    summary="Where turns spend their time: p50/p95/p99 per chatbot and flow over a window.",
    parameters=[
        OpenApiParameter("window", str, description="15m, 24h, 7d … (default 24h)."),
        OpenApiParameter("chatbot", str, description="Only this chatbot (its chatbot id)."),
    ],
    responses={
        200: inline_serializer(
            name="ProcessingMetrics",
            fields={
                "window": serializers.CharField(),
                "from": serializers.DateTimeField(),
                "to": serializers.DateTimeField(),
                "chatbot": serializers.CharField(allow_null=True),
                "execution": inline_serializer(
                    name="ExecutionStatistics",
                    many=True,
                    help_text="Sequential against parallel routing, for turns with a router.",
                    fields={
                        "routing_mode": serializers.CharField(help_text="sequential | parallel"),
                        "routed_turns": serializers.IntegerField(),
                        "router_wait_ms": serializers.DictField(
                            allow_null=True, help_text="{p50, p95} of the router's time."
                        ),
                        "main_flow_released": serializers.IntegerField(
                            allow_null=True,
                            help_text="Parallel: turns whose main flow, started beside the "
                            "router, served the answer.",
                        ),
                        "main_flow_calls_aborted": serializers.IntegerField(
                            allow_null=True,
                            help_text="Parallel: main-flow calls stopped unused (wasted).",
                        ),
                        "time_saved_ms": serializers.IntegerField(
                            allow_null=True,
                            help_text="Parallel: router time that overlapped a released "
                            "answer, i.e. saved against running one after the other.",
                        ),
                        "time_saved_per_released_turn_ms": serializers.FloatField(allow_null=True),
                    },
                ),
                "groups": inline_serializer(
                    name="ProcessingMetricsGroup",
                    many=True,
                    fields={
                        "chatbot": serializers.CharField(),
                        "flow": serializers.CharField(),
                        "turns": serializers.IntegerField(),
                        "failed": serializers.IntegerField(),
                        "cancelled": serializers.IntegerField(),
                        "error_rate": serializers.FloatField(),
                        "tokens": serializers.IntegerField(allow_null=True),
                        "tokens_per_second": inline_serializer(
                            name="Percentiles", fields=PERCENTILE_FIELDS, allow_null=True
                        ),
                        "phases": serializers.DictField(
                            help_text="phase name → {p50, p95, p99} in ms, or null when the "
                            "phase did not occur: " + ", ".join(selectors.METRIC_PHASES)
                        ),
                    },
                ),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (400, 401, 403, 404)},
    },
)
@staff_api(["GET"])
def processing_metrics(request: Request) -> Response:
    raw = request.GET.get("window") or "24h"
    window = _window(raw)
    chatbot_id = _chatbot(request)
    until = timezone.now()
    since = until - window
    chatbot_ids = _chatbot_ids(request)
    return Response(
        {
            "window": raw,
            "from": since,
            "to": until,
            "chatbot": request.GET.get("chatbot") or None,
            "groups": selectors.processing_metrics(
                since=since, until=until, chatbot_id=chatbot_id, chatbot_ids=chatbot_ids
            ),
            "execution": selectors.execution_statistics(
                since=since, until=until, chatbot_id=chatbot_id, chatbot_ids=chatbot_ids
            ),
        }
    )


# --- sync (seed 004) ------------------------------------------------------------------------------

SyncResult = inline_serializer(
    name="SyncResult",
    fields={
        "success": serializers.BooleanField(),
        "syncStartTime": serializers.DateTimeField(),
        "syncEndTime": serializers.DateTimeField(),
        "durationSeconds": serializers.FloatField(),
        "messagesProcessed": serializers.IntegerField(),
        "conversationsFound": serializers.IntegerField(),
        "conversationsIndexed": serializers.IntegerField(),
        "conversationsCreated": serializers.IntegerField(),
        "watermark": serializers.IntegerField(),
        "pendingCalls": serializers.IntegerField(),
    },
)
IndexStats = inline_serializer(
    name="ConversationIndexStats",
    fields={
        "indexExists": serializers.BooleanField(),
        "conversationCount": serializers.IntegerField(),
        "indexSize": serializers.IntegerField(help_text="Bytes, table and its indexes."),
        "documentCount": serializers.IntegerField(),
        "watermark": serializers.IntegerField(),
        "pendingCalls": serializers.IntegerField(),
        "lastSync": serializers.DictField(allow_null=True),
    },
)


@extend_schema(
    operation_id="sync_init",
    summary="Create the conversation index (if it does not exist).",
    request=None,
    responses={
        200: inline_serializer(
            name="SyncInit",
            fields={"created": serializers.BooleanField(), "message": serializers.CharField()},
        ),
        **STAFF_ERRORS,
    },
)
@staff_api(["POST"], operators_only=True)
def sync_init(request: Request) -> Response:
    created = index.conversation_index_init()
    message = "Index created successfully" if created else "Index already exists"
    return Response({"created": created, "message": message})


@extend_schema(
    operation_id="sync_sync",
    summary="Merge the AI calls added since the last sync into the conversation index.",
    request=None,
    responses={200: SyncResult, **STAFF_ERRORS},
)
@staff_api(["POST"], operators_only=True)
def sync_sync(request: Request) -> Response:
    # Waits for a running sync rather than failing: the caller then gets its own, exact result.
    return Response(index.conversation_index_sync())


@extend_schema(
    operation_id="sync_stats",
    summary="Size and state of the conversation index.",
    responses={200: IndexStats, **STAFF_ERRORS},
)
@staff_api(["GET"], operators_only=True)
def sync_stats(request: Request) -> Response:
    return Response(selectors.conversation_index_stats())


@extend_schema(
    operation_id="sync_index_delete",
    summary="Delete the conversation index (the AI calls it was built from stay).",
    request=None,
    responses={
        200: inline_serializer(
            name="SyncIndexDeleted",
            fields={"deleted": serializers.BooleanField(), "message": serializers.CharField()},
        ),
        **STAFF_ERRORS,
    },
)
@staff_api(["DELETE"], operators_only=True)
def sync_index(request: Request) -> Response:
    deleted = index.conversation_index_delete()
    message = "Index deleted successfully" if deleted else "There was no index to delete"
    return Response({"deleted": deleted, "message": message})


@extend_schema(
    operation_id="sync_reset",
    summary="Delete, recreate and fully sync the conversation index.",
    request=None,
    responses={
        200: inline_serializer(
            name="SyncReset",
            fields={"message": serializers.CharField(), "stats": SyncResult},
        ),
        **STAFF_ERRORS,
    },
)
@staff_api(["POST"], operators_only=True)
def sync_reset(request: Request) -> Response:
    return Response(
        {"message": "Reset and sync completed", "stats": index.conversation_index_reset()}
    )


# --- conversations (seed 004) -----------------------------------------------------------------------

ConversationItem = inline_serializer(
    name="IndexedConversation",
    fields={
        "conversationId": serializers.UUIDField(),
        "chatbot": serializers.CharField(),
        "username": serializers.CharField(),
        "firstMessageTime": serializers.DateTimeField(),
        "lastMessageTime": serializers.DateTimeField(),
        "messageCount": serializers.IntegerField(),
        "firstQuestion": serializers.CharField(),
        "lastQuestion": serializers.CharField(),
        "model": serializers.CharField(),
        "clientIp": serializers.CharField(allow_null=True),
        "totalTokens": serializers.IntegerField(),
        "createdAt": serializers.DateTimeField(),
        "updatedAt": serializers.DateTimeField(),
        "messageIds": serializers.ListField(child=serializers.CharField()),
    },
)


def _index_must_exist():
    state = selectors.index_state()
    if state is None or not state.exists:
        raise ApiError(
            AnalyticsErrorCode.INDEX_NOT_FOUND,
            "The conversation index does not exist yet; run a sync first (POST /api/sync/sync).",
        )
    return state


@extend_schema(
    operation_id="indexed_conversations",
    summary="Conversations from the index, newest activity first; filter and search.",
    parameters=[
        OpenApiParameter("username", str, description="Only this user's conversations."),
        OpenApiParameter("page", int, description="Page number, from 1 (default 1)."),
        OpenApiParameter("size", int, description="Results per page, 1-200 (default 50)."),
        OpenApiParameter("q", str, description="Full-text search in the first and last question."),
        OpenApiParameter("from", str, description="Last active at or after (ISO date or time)."),
        OpenApiParameter("to", str, description="Last active at or before (ISO date or time)."),
        OpenApiParameter("model", str, description="Only conversations with this model."),
        OpenApiParameter("chatbot", str, description="Only this chatbot (its chatbot id)."),
    ],
    responses={
        200: inline_serializer(
            name="IndexedConversationPage",
            fields={
                "conversations": serializers.ListField(child=ConversationItem),
                "total": serializers.IntegerField(
                    help_text="Exact without filters or with only `chatbot`; otherwise exact "
                    "up to CONVERSATION_INDEX_COUNT_LIMIT (1,000) matches."
                ),
                "totalRelation": serializers.ChoiceField(
                    choices=["eq", "gte"], help_text="gte: at least `total` match."
                ),
                "page": serializers.IntegerField(),
                "size": serializers.IntegerField(),
                "totalPages": serializers.IntegerField(),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (400, 401, 403, 404)},
    },
)
@staff_api(["GET"])
def conversations(request: Request) -> Response:
    page = _int(request, "page", 1, low=1, high=1_000_000)
    size = _int(request, "size", 50, low=1, high=200)
    date_from = _when(request, "from")
    date_to = _when(request, "to", end_of_day=True)
    chatbot_id = _chatbot(request)
    q = (request.GET.get("q") or "").strip()[:200]
    state = _index_must_exist()
    return Response(
        selectors.conversation_index_page(
            state=state,
            page=page,
            size=size,
            username=request.GET.get("username") or None,
            chatbot_id=chatbot_id,
            chatbot_ids=_chatbot_ids(request),
            model=request.GET.get("model") or None,
            q=q or None,
            date_from=date_from,
            date_to=date_to,
        )
    )


@extend_schema(
    operation_id="indexed_conversation_messages",
    summary="Every AI call (message) of one conversation, oldest first.",
    responses={
        200: inline_serializer(
            name="ConversationMessages",
            fields={
                "conversationId": serializers.UUIDField(),
                "messages": serializers.ListField(child=serializers.DictField()),
                "messageCount": serializers.IntegerField(),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (401, 403, 404)},
    },
)
@staff_api(["GET"])
def conversation_messages(request: Request, conversation_id) -> Response:
    allowed = _chatbot_ids(request)
    if (
        allowed is not None
        and not Conversation.objects.filter(pk=conversation_id, chatbot_id__in=allowed).exists()
    ):
        messages = []  # another shop's conversation: the same 404 as one with no calls
    else:
        messages = selectors.conversation_calls(conversation_id=conversation_id)
    if not messages:
        raise ApiError(ErrorCode.CONVERSATION_NOT_FOUND, "No AI calls for this conversation.")
    audit_conversations(
        action=AuditEvent.Action.READ,
        conversations=Conversation.objects.filter(pk=conversation_id),
        request=request,
        detail={"via": "api"},
    )
    return Response(
        {
            "conversationId": str(conversation_id),
            "messages": messages,
            "messageCount": len(messages),
        }
    )


# --- export -----------------------------------------------------------------------------------------


class _FormatIsOurs(DefaultContentNegotiation):
    """`?format=` names the export format here, not a DRF renderer: errors stay JSON."""

    def filter_renderers(self, renderers, format):
        return list(renderers)


class ExportView(APIView):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [ShopMember]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _FormatIsOurs

    @extend_schema(
        operation_id="analytics_export",
        summary="Conversations started in a range with their analysis, as CSV or JSON lines.",
        parameters=[
            OpenApiParameter(
                "format", str, enum=list(FORMATS), description="csv (default) or jsonl."
            ),
            OpenApiParameter("chatbot", str, description="Only this chatbot (its chatbot id)."),
            OpenApiParameter("from", str, description="Started at or after (ISO date or time)."),
            OpenApiParameter("to", str, description="Started at or before (ISO date or time)."),
        ],
        responses={
            (200, "text/csv"): str,
            (200, "application/x-ndjson"): str,
            **{s: ERROR_RESPONSES[s] for s in (400, 401, 403, 404)},
        },
    )
    def get(self, request: Request):
        fmt = request.GET.get("format") or "csv"
        if fmt not in FORMATS:
            raise ApiError(ErrorCode.VALIDATION_ERROR, "`format` must be csv or jsonl.")
        rows = access.scope(Conversation.objects.all(), request.user)
        if (chatbot_id := _chatbot(request)) is not None:
            rows = rows.filter(chatbot_id=chatbot_id)
        if (since := _when(request, "from")) is not None:
            rows = rows.filter(created_at__gte=since)
        if (until := _when(request, "to", end_of_day=True)) is not None:
            rows = rows.filter(created_at__lte=until)
        audit_conversations(
            action=AuditEvent.Action.EXPORT,
            conversations=rows,
            request=request,
            detail={"via": "api"},
        )
        return export_response(rows, fmt=fmt)


export = ExportView.as_view()
