"""Fixtures of the quality tests: a conversation with answered, failed and person turns."""

from __future__ import annotations

import pytest

from conversations.access import conversation_token_issue
from conversations.models import Message, Turn
from conversations.services import conversation_start


def auth(conversation) -> dict:
    token = conversation_token_issue(
        conversation_id=conversation.pk, chatbot_id=conversation.chatbot_id
    )
    return {"Authorization": f"Bearer {token}"}


def ask(conversation, question: str, status: str = "completed", answer: str = "", flow="main"):
    """A question and its turn as the runner leaves them (the answer stored when text was said)."""
    sequence = conversation.messages.count() + 1
    asked = Message.objects.create(
        conversation=conversation, role="user", content=question, sequence=sequence
    )
    said = None
    if answer:
        said = Message.objects.create(
            conversation=conversation,
            role="assistant",
            content=answer,
            sequence=sequence + 1,
            flow=flow,
            metadata={"incomplete": True, "reason": status} if status != "completed" else {},
        )
    return Turn.objects.create(
        conversation=conversation,
        user_message=asked,
        assistant_message=said,
        status=status,
        flow=flow,
    )


@pytest.fixture
def conversation(make_chatbot):
    return conversation_start(chatbot=make_chatbot(public_id="shop-bot"), user_id="visitor")
