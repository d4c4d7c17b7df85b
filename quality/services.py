"""Writes of the quality app: a customer's vote on an answer, and checks made from answers."""

from __future__ import annotations

from django.db import transaction

from config.errors import ApiError, ErrorCode
from conversations.models import Conversation, Message, Turn
from quality.models import MAX_COMMENT_CHARS, AnswerFeedback


def answer_feedback_record(
    *, conversation: Conversation, message_id, value: str, comment: str = ""
) -> tuple[AnswerFeedback, bool]:
    """Store the customer's vote on one of the conversation's answers; (feedback, created).

    One row per answer: a second vote changes the first (the message row is locked, so two
    votes at once cannot both insert). Only a finished bot answer takes a vote: a customer's
    message, a person's reply and the text of a failed or stopped turn are refused (400), and an
    id that is not an answer of this conversation is 404 like one that does not exist.
    """
    if value not in AnswerFeedback.Value.values:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`value` must be `up` or `down`.")
    comment = (comment or "").strip()[:MAX_COMMENT_CHARS]
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .filter(pk=message_id, conversation=conversation)
            .first()
        )
        if message is None:
            raise ApiError(ErrorCode.NOT_FOUND, "No such answer in this conversation.")
        if message.role != Message.Role.ASSISTANT:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR, "Only the chatbot's answers take a thumbs up or down."
            )
        turn = Turn.objects.filter(assistant_message=message).only("status").first()
        if message.metadata.get("incomplete") or (
            turn is not None and turn.status != Turn.Status.COMPLETED
        ):
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                "This answer did not finish, so it cannot be rated.",
            )
        feedback, created = AnswerFeedback.objects.update_or_create(
            message=message,
            defaults={
                "value": value,
                "comment": comment,
                "conversation": conversation,
                "chatbot_id": conversation.chatbot_id,
            },
        )
        if message.metadata.get("feedback") != value:
            message.metadata["feedback"] = value
            message.save(update_fields=["metadata"])
    return feedback, created
