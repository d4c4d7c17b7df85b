"""The WebSocket `feedback` message: the same vote as REST, for the conversation's customer."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import RefreshToken

from conversations.access import conversation_token_issue
from images.tests.test_cheap_checks_first import release_consumer_connections
from quality.models import AnswerFeedback
from quality.tests.conftest import ask

pytestmark = pytest.mark.django_db(transaction=True)


def talk(conversation, token: str, frames: list[dict]) -> list[dict]:
    from channels.testing import WebsocketCommunicator

    from conversations.consumers import ConversationConsumer

    async def run() -> list[dict]:
        communicator = WebsocketCommunicator(
            ConversationConsumer.as_asgi(), f"/ws/conversations/{conversation.pk}/?token={token}"
        )
        communicator.scope["url_route"] = {"kwargs": {"session_id": str(conversation.pk)}}
        connected, _ = await communicator.connect()
        assert connected
        replies = [await communicator.receive_json_from(timeout=10)]  # ready
        for frame in frames:
            await communicator.send_to(text_data=json.dumps(frame))
            replies.append(await communicator.receive_json_from(timeout=10))
        await communicator.disconnect()
        return replies

    try:
        return async_to_sync(run)()
    finally:
        release_consumer_connections()


def test_the_customer_votes_over_the_socket_once_per_answer(conversation):
    turn = ask(conversation, "Hi", answer="Hello!")
    token = conversation_token_issue(
        conversation_id=conversation.pk, chatbot_id=conversation.chatbot_id
    )
    answer = str(turn.assistant_message_id)

    ready, first, second, refused, bad = talk(
        conversation,
        token,
        [
            {"type": "feedback", "message_id": answer, "value": "down", "comment": "no"},
            {"type": "feedback", "message_id": answer, "value": "up"},
            {"type": "feedback", "message_id": str(turn.user_message_id), "value": "up"},
            {"type": "feedback", "message_id": "nope", "value": "up"},
        ],
    )

    assert ready["type"] == "ready"
    assert first == {"type": "feedback", "message_id": answer, "value": "down", "created": True}
    assert second == {"type": "feedback", "message_id": answer, "value": "up", "created": False}
    assert refused["type"] == "error" and refused["error"]["code"] == "VALIDATION_ERROR"
    assert bad["type"] == "error" and bad["error"]["code"] == "VALIDATION_ERROR"
    [vote] = AnswerFeedback.objects.all()
    assert (vote.value, vote.comment) == ("up", "")


def test_an_api_user_on_the_socket_may_not_vote(conversation):
    turn = ask(conversation, "Hi", answer="Hello!")
    api_user = get_user_model().objects.create_user("api", password="pw")
    conversation.chatbot.api_users.add(api_user)
    jwt = str(RefreshToken.for_user(api_user).access_token)

    ready, refused = talk(
        conversation,
        jwt,
        [{"type": "feedback", "message_id": str(turn.assistant_message_id), "value": "down"}],
    )

    assert ready["type"] == "ready"
    assert refused["error"]["code"] == "PERMISSION_DENIED"
    assert not AnswerFeedback.objects.exists()
