"""Widget endpoints of the live inbox: ask for a person, say the customer is typing.

Both need the conversation's token (conversations.access.conversation_for): without it, or for
another conversation, 404 whether or not the conversation exists.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from config.schema import ERROR_RESPONSES
from conversations.access import conversation_for
from conversations.turn_links import public_url
from helpdesk.services import support_status
from inbox import services


class PersonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class TypingSerializer(serializers.Serializer):
    typing = serializers.BooleanField()


PersonResponse = inline_serializer(
    name="PersonResponse",
    fields={
        "mode": serializers.ChoiceField(
            choices=["live", "helpdesk"],
            help_text="live: follow `turn_id` for the person's events; helpdesk: nobody can "
            "chat now, offer the ticket path of `support` (POST …/handoff).",
        ),
        "state": serializers.CharField(help_text="waiting_for_agent or with_agent (live)."),
        "turn_id": serializers.UUIDField(allow_null=True),
        "streaming_url": serializers.CharField(allow_null=True),
        "support": serializers.DictField(allow_null=True),
    },
)


@extend_schema(
    operation_id="session_person",
    summary="“Talk to a person”: a live chat with the shop's agents when one is online in "
    "opening hours, else the helpdesk ticket path.",
    request=PersonSerializer,
    responses={200: PersonResponse, **{s: ERROR_RESPONSES[s] for s in (400, 403, 404, 409)}},
)
@api_view(["POST"])
def person(request: Request, session_id) -> Response:
    conversation = conversation_for(request, session_id)
    serializer = PersonSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    outcome = services.person_request(
        conversation=conversation, reason=serializer.validated_data["reason"]
    )
    if not outcome.live:
        return Response(
            {
                "mode": "helpdesk",
                "state": "bot",
                "turn_id": None,
                "streaming_url": None,
                "support": support_status(conversation=conversation),
            }
        )
    conversation.refresh_from_db(fields=["handling"])
    return Response(
        {
            "mode": "live",
            "state": conversation.handling,
            "turn_id": str(outcome.turn.pk),
            "streaming_url": public_url(request, f"/api/stream-events/{outcome.turn.pk}"),
            "support": None,
        }
    )


@extend_schema(
    operation_id="session_typing",
    summary="The customer started or stopped typing (shown to the agent while a person "
    "answers; ignored otherwise).",
    request=TypingSerializer,
    responses={204: None, **{s: ERROR_RESPONSES[s] for s in (400, 403, 404)}},
)
@api_view(["POST"])
def typing(request: Request, session_id) -> Response:
    conversation = conversation_for(request, session_id)
    serializer = TypingSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    services.customer_typing(conversation=conversation, typing=serializer.validated_data["typing"])
    return Response(status=204)
