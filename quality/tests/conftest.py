"""Fixtures of the quality tests: a conversation with answered, failed and person turns."""

from __future__ import annotations

import pytest

from conversations.services import conversation_start
from conversations.tests.factories import create_finished_turn


def ask(conversation, question: str, status: str = "completed", answer: str = "", flow="main"):
    """A question and its turn as the runner leaves them, answered by the main flow unless told."""
    return create_finished_turn(conversation, question, status=status, answer=answer, flow=flow)


@pytest.fixture
def conversation(make_chatbot):
    return conversation_start(chatbot=make_chatbot(public_id="shop-bot"), user_id="visitor")
