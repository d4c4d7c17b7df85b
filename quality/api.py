"""The widget's thumbs up/down on one answer (docs/quality.md)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from config.schema import ERROR_RESPONSES
from conversations.access import (
    conversation_for,
    conversation_token_check,
    not_found,
    token_from_request,
)
from quality import services
from quality.models import MAX_COMMENT_CHARS, AnswerFeedback


class FeedbackSerializer(serializers.Serializer):
    value = serializers.ChoiceField(choices=AnswerFeedback.Value.values)
    comment = serializers.CharField(
        max_length=MAX_COMMENT_CHARS, required=False, allow_blank=True, default=""
    )


def customer_conversation(request: Request, session_id):
    """The conversation of the caller's conversation token, or 404. Only the customer votes:
    staff and API users (who may read the conversation) would skew the shop's figures."""
    grant = conversation_token_check(token_from_request(request))
    if grant is None or grant.conversation_id != session_id:
        raise not_found()
    return conversation_for(request, session_id)  # origin and switched-off checks as elsewhere


@extend_schema(
    operation_id="answer_feedback",
    summary="The customer's thumbs up or down on one answer; a second vote replaces the first.",
    request=FeedbackSerializer,
    responses={
        200: inline_serializer(
            name="AnswerFeedback",
            fields={
                "message_id": serializers.UUIDField(),
                "value": serializers.ChoiceField(choices=AnswerFeedback.Value.values),
                "comment": serializers.CharField(),
                "created": serializers.BooleanField(help_text="False when a vote was changed."),
            },
        ),
        **{s: ERROR_RESPONSES[s] for s in (400, 403, 404)},
    },
)
@api_view(["POST"])
def answer_feedback(request: Request, session_id, message_id) -> Response:
    conversation = customer_conversation(request, session_id)
    serializer = FeedbackSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    feedback, created = services.answer_feedback_record(
        conversation=conversation,
        message_id=message_id,
        value=serializer.validated_data["value"],
        comment=serializer.validated_data["comment"],
    )
    return Response(
        {
            "message_id": str(feedback.message_id),
            "value": feedback.value,
            "comment": feedback.comment,
            "created": created,
        }
    )
