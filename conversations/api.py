"""REST endpoints of the chat: process-message, stream-events (polling, replay, SSE), cancel."""

from __future__ import annotations

import functools

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.client_address import client_address_of_request
from config.errors import ApiError, ErrorCode
from config.ratelimit import ip_of
from config.schema import ERROR_RESPONSES
from conversations import selectors, services, sse
from conversations.access import conversation_or_chatbot, conversation_token_issue, turn_for
from conversations.turn_links import REPLAYED_HEADER, turn_follow_fields


class ProcessMessageSerializer(serializers.Serializer):
    chatbot_id = serializers.CharField(max_length=64)
    message_text = serializers.CharField(
        max_length=100_000, allow_blank=False, trim_whitespace=True
    )
    user_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    session_id = serializers.UUIDField(required=False, allow_null=True)
    conversation_token = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    widget_key = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Or the X-Widget-Key header."
    )
    image_data = serializers.JSONField(
        required=False, allow_null=True, help_text="An image: {name, data (base64), mime}."
    )
    image_ids = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=4,
        help_text="Images uploaded before with POST /api/upload-image.",
    )
    conversation_history = serializers.JSONField(
        required=False, help_text="Ignored: the server keeps the conversation's history."
    )
    configuration = serializers.JSONField(
        required=False, help_text="Ignored: configuration comes from the admin, never the client."
    )


ProcessMessageResponse = inline_serializer(
    name="ProcessMessageResponse",
    fields={
        "success": serializers.BooleanField(),
        "session_id": serializers.UUIDField(),
        "streaming_session_id": serializers.UUIDField(),
        "turn_id": serializers.UUIDField(),
        "message_id": serializers.UUIDField(),
        "flow_type": serializers.CharField(),
        "streaming_url": serializers.CharField(),
        "websocket_url": serializers.CharField(),
        "conversation_token": serializers.CharField(),
        "status": serializers.CharField(),
        "replayed": serializers.BooleanField(
            help_text="True when an Idempotency-Key retry returned the earlier turn named here "
            "instead of storing the message again (header `Idempotent-Replayed: true` too)."
        ),
    },
)


@extend_schema(
    operation_id="process_message",
    summary="Submit a customer message; the answer streams over WebSocket or polling.",
    request=ProcessMessageSerializer,
    parameters=[
        OpenApiParameter(
            "Idempotency-Key",
            location=OpenApiParameter.HEADER,
            required=False,
            description="A retry with the same key returns the original turn "
            "(`replayed: true`, header `Idempotent-Replayed: true`).",
        )
    ],
    responses={200: ProcessMessageResponse, **{s: ERROR_RESPONSES[s] for s in (400, 404, 409)}},
)
@api_view(["POST"])
def process_message(request: Request) -> Response:
    serializer = ProcessMessageSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    conversation, chatbot = conversation_or_chatbot(request, data)
    idempotency_key = request.headers.get("Idempotency-Key", "")[:200]
    if conversation is None:
        turn, created = services.first_message_submit(
            chatbot=chatbot,
            text=data["message_text"],
            idempotency_key=idempotency_key,
            client_ip=client_address_of_request(request),
            user_id=data.get("user_id", ""),
            attachments=data,
            create_limit_key=ip_of(request),
        )
        conversation = turn.conversation
    else:
        turn, created = services.message_submit(
            conversation=conversation,
            text=data["message_text"],
            idempotency_key=idempotency_key,
            client_ip=client_address_of_request(request),
            attachments=data,
        )
    token = conversation_token_issue(
        conversation_id=conversation.pk, chatbot_id=conversation.chatbot_id
    )
    response = Response(
        {
            "success": True,
            "session_id": str(conversation.pk),
            **turn_follow_fields(request, conversation=conversation, turn=turn),
            "conversation_token": token,
            "status": turn.status,
            "replayed": not created,
        }
    )
    if not created:
        response[REPLAYED_HEADER] = "true"
    return response


EVENT_FIELDS = {
    "id": serializers.IntegerField(),
    "event": serializers.ChoiceField(
        choices=[
            "start",
            "token",
            "metadata",
            "source_documents",
            "order",
            "tool_call",
            "tool_result",
            "error",
            "end",
            # A human turn (docs/inbox.md).
            "agent_waiting",
            "agent_joined",
            "agent_message",
            "customer_message",
            "typing",
            "agent_left",
        ]
    ),
    "data": serializers.DictField(),
    "timestamp": serializers.DateTimeField(),
}


RESUME_PARAMETERS = [
    OpenApiParameter("after", int, description="Last event id already seen (0 = from the start)."),
    OpenApiParameter(
        "last_event_id", int, description="The same as `after` (seed 000's name for it)."
    ),
    OpenApiParameter(
        "Last-Event-ID",
        int,
        location=OpenApiParameter.HEADER,
        description="The same as `after` (what EventSource sends); wins over the query.",
    ),
]


def last_seen_event_id(request) -> int:
    """The last event id the client saw: `Last-Event-ID` header, else `?after=`, else
    `?last_event_id=`, else 0. All three mean the same; the header wins because a browser's
    EventSource reconnects with it while its URL keeps the first connect's query."""
    for name, value in (
        ("Last-Event-ID", request.headers.get("Last-Event-ID")),
        ("after", request.GET.get("after")),
        ("last_event_id", request.GET.get("last_event_id")),
    ):
        if value is None or value.strip() == "":
            continue
        value = value.strip()
        if not (value.isascii() and value.isdigit()) or len(value) > 18:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"`{name}` must be a whole number of 0 or more: the last event id you saw.",
                details={"parameter": name},
            )
        return int(value)
    return 0


@extend_schema(
    operation_id="stream_events",
    summary="Events of a turn after a given id (polling, and replay of finished turns).",
    parameters=[
        *RESUME_PARAMETERS,
        OpenApiParameter(
            "limit", int, description="At most this many events (1-1000, default 500)."
        ),
    ],
    responses={
        200: inline_serializer(
            name="StreamEventsResponse",
            fields={
                "events": inline_serializer(name="StreamEvent", fields=EVENT_FIELDS, many=True),
                "session_status": serializers.ChoiceField(
                    choices=["active", "completed", "failed", "cancelled"]
                ),
                "last_event_id": serializers.IntegerField(),
                "has_more": serializers.BooleanField(),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (400, 404)},
        410: ERROR_RESPONSES[409],
    },
)
@api_view(["GET"])
def stream_events(request: Request, turn_id) -> Response:
    turn = turn_for(request, turn_id)
    after = last_seen_event_id(request)
    limit = poll_limit(request)
    return Response(selectors.stream_events_after(turn=turn, after=after, limit=limit))


def poll_limit(request) -> int:
    """`?limit=` of a poll: 1-1000, 500 when absent; 400 otherwise."""
    try:
        limit = int(request.GET.get("limit", "500"))
    except ValueError as exc:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`limit` must be a whole number.") from exc
    if not 1 <= limit <= 1000:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`limit` must be between 1 and 1000.")
    return limit


class JsonWhateverAccepted(BaseContentNegotiation):
    """EventSource asks for `text/event-stream` only; a refusal (404, 400, 410) still goes out
    in the JSON error envelope instead of DRF's 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class StreamEventsSSE(APIView):
    content_negotiation_class = JsonWhateverAccepted
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="stream_events_sse",
        summary="The same events as Server-Sent Events: replay, then live, until `end`.",
        description=(
            "`id:` is the event id, `event:` its kind, `data:` the envelope (as polling sends "
            "it); a `: ping` comment every SSE_HEARTBEAT_SECONDS. Resume with the "
            "`Last-Event-ID` header (EventSource sends it when it reconnects) or "
            "`?last_event_id=`. The conversation token goes in `Authorization: Bearer` or "
            "`?token=` (EventSource cannot send headers). 204 when the turn has ended and "
            "nothing follows the given id (EventSource then stops reconnecting)."
        ),
        parameters=[
            *RESUME_PARAMETERS,
            OpenApiParameter("token", str, description="The conversation token."),
        ],
        responses={
            (200, "text/event-stream"): OpenApiTypes.STR,
            204: None,
            **{s: ERROR_RESPONSES[s] for s in (400, 404, 429)},
            410: ERROR_RESPONSES[409],
        },
    )
    def get(self, request: Request, turn_id) -> HttpResponseBase:
        turn = turn_for(request, turn_id)
        after = last_seen_event_id(request)
        sse.stream_slot_check(ip_of(request))
        # Refuses a resume point that never existed or was cleaned up, as polling does.
        if not selectors.stream_resume_check(turn=turn, after=after):
            return HttpResponse(status=204)
        # The request's connection would otherwise stay checked out of the pool until the stream
        # ends (Django returns it at request_finished): about DATABASE_POOL_MAX open streams
        # took every connection of the process, and the next stream, and every other request,
        # waited DATABASE_POOL_TIMEOUT and failed. The stream borrows one per page it reads.
        if not connection.in_atomic_block:
            connection.close()  # back to the pool
        return sse.turn_events_response(turn_id=str(turn.pk), after=after, address=ip_of(request))


@extend_schema(
    operation_id="turn_cancel",
    summary="Stop a turn's answer.",
    request=None,
    responses={
        200: inline_serializer(
            name="TurnCancelResponse",
            fields={"turn_id": serializers.UUIDField(), "status": serializers.CharField()},
        ),
        404: ERROR_RESPONSES[404],
    },
)
@api_view(["POST"])
def turn_cancel(request: Request, turn_id) -> Response:
    turn = turn_for(request, turn_id)
    return Response({"turn_id": str(turn.pk), "status": services.turn_cancel(turn=turn)})


@functools.cache
def _asyncapi_text() -> str:
    return (settings.BASE_DIR / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")


def asyncapi_document(request) -> HttpResponse:
    """The AsyncAPI document of the WebSocket, SSE and Socket.IO protocols (docs/asyncapi.yaml),
    beside the OpenAPI schema and linked from /api/docs/."""
    return HttpResponse(_asyncapi_text(), content_type="application/yaml; charset=utf-8")
