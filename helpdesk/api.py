"""Widget endpoints of the helpdesk app: support status, contact form, handoff, rating.

Every endpoint needs the conversation's token (conversations.access.conversation_for): without
it, or for another conversation, the answer is 404 whether or not the conversation exists.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from config.schema import ERROR_RESPONSES
from conversations.access import conversation_for
from helpdesk import services
from helpdesk.models import Handoff

HandoffSummary = inline_serializer(
    name="HandoffSummary",
    fields={
        "handoff_id": serializers.UUIDField(),
        "kind": serializers.ChoiceField(choices=Handoff.Kind.values),
        "mode": serializers.ChoiceField(choices=Handoff.Mode.values),
        "state": serializers.ChoiceField(choices=Handoff.State.values),
        "ticket_id": serializers.CharField(allow_null=True),
        "reason": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
    },
)

SupportResponse = inline_serializer(
    name="SupportResponse",
    fields={
        "open_now": serializers.BooleanField(),
        "offer": serializers.ChoiceField(
            choices=["live", "ticket", "contact"],
            help_text="live: offer “talk to a person” now; ticket: offer it, answered by email; "
            "contact: no helpdesk, show the contact details.",
        ),
        "helpdesk": serializers.CharField(allow_null=True),
        "timezone": serializers.CharField(),
        "opening_hours": serializers.DictField(),
        "contact_email": serializers.CharField(),
        "contact_phone": serializers.CharField(),
        "handoff": HandoffSummary,
        "rating": inline_serializer(
            name="RatingSummary",
            fields={"score": serializers.IntegerField(), "comment": serializers.CharField()},
        ),
    },
)

AcceptedResponse = inline_serializer(
    name="HandoffAccepted",
    fields={
        "handoff_id": serializers.UUIDField(),
        "mode": serializers.ChoiceField(choices=Handoff.Mode.values),
        "state": serializers.ChoiceField(choices=Handoff.State.values),
        "message": serializers.CharField(
            help_text="What to show the customer, in the bot's language."
        ),
        "appended": serializers.BooleanField(
            help_text="True when this request joined the pending one named by `handoff_id` (its "
            "text goes into that ticket; an exact repeat changes nothing) instead of starting one."
        ),
    },
)


class ContactSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    email = serializers.EmailField(max_length=254)
    message = serializers.CharField(max_length=5000, trim_whitespace=True)


class HandoffSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class RatingSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


def _accepted(handoff: Handoff, conversation, *, created: bool) -> Response:
    return Response(
        {
            "handoff_id": str(handoff.id),
            "mode": handoff.mode,
            "state": handoff.state,
            "message": services.handoff_message(handoff, chatbot=conversation.chatbot),
            "appended": not created,
        },
        status=202,
    )


@extend_schema(
    operation_id="session_support",
    summary="Is support open, and what should the widget offer (live handoff, ticket, contact)?",
    responses={200: SupportResponse, 404: ERROR_RESPONSES[404]},
)
@api_view(["GET"])
def support(request: Request, session_id) -> Response:
    conversation = conversation_for(request, session_id)
    return Response(services.support_status(conversation=conversation))


@extend_schema(
    operation_id="session_contact",
    summary="The widget's contact form: becomes a helpdesk ticket with the transcript.",
    request=ContactSerializer,
    responses={202: AcceptedResponse, **{s: ERROR_RESPONSES[s] for s in (400, 404, 409, 429)}},
)
@api_view(["POST"])
def contact(request: Request, session_id) -> Response:
    conversation = conversation_for(request, session_id)
    serializer = ContactSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    handoff, created = services.handoff_request(
        conversation=conversation,
        kind=Handoff.Kind.CONTACT,
        name=data["name"],
        email=data["email"].lower(),
        message=data["message"],
    )
    return _accepted(handoff, conversation, created=created)


@extend_schema(
    operation_id="session_handoff",
    summary="“Talk to a person”: live while support is open, else a ticket answered by email.",
    request=HandoffSerializer,
    responses={202: AcceptedResponse, **{s: ERROR_RESPONSES[s] for s in (400, 404, 409, 429)}},
)
@api_view(["POST"])
def handoff(request: Request, session_id) -> Response:
    conversation = conversation_for(request, session_id)
    serializer = HandoffSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    handoff, created = services.handoff_request(
        conversation=conversation,
        kind=Handoff.Kind.HANDOFF,
        reason=data["reason"],
        name=data["name"],
        email=data["email"].lower(),
    )
    return _accepted(handoff, conversation, created=created)


@extend_schema(
    operation_id="session_rating",
    summary="Rate the conversation 1-5 with an optional comment (a new rating replaces it).",
    request=RatingSerializer,
    responses={
        200: inline_serializer(
            name="RatingResponse",
            fields={
                "score": serializers.IntegerField(),
                "comment": serializers.CharField(),
                "updated_at": serializers.DateTimeField(),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (400, 404)},
    },
)
@api_view(["POST"])
def rating(request: Request, session_id) -> Response:
    conversation = conversation_for(request, session_id)
    serializer = RatingSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    stored = services.conversation_rate(
        conversation=conversation,
        score=serializer.validated_data["score"],
        comment=serializer.validated_data["comment"],
    )
    return Response(
        {"score": stored.score, "comment": stored.comment, "updated_at": stored.updated_at}
    )
