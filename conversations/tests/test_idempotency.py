"""Idempotency-Key (#18 item 1): a retry returns the original turn; the same key with a different
message is 422 IDEMPOTENCY_KEY_REUSED and nothing is stored (it used to answer 200 with the old
turn while the new text was stored nowhere)."""

from __future__ import annotations

import pytest

from conversations.access import conversation_token_issue
from conversations.models import Message, Turn
from conversations.services import conversation_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(make_chatbot):
    bot = make_chatbot(public_id="shop")
    conversation = conversation_start(chatbot=bot)
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=bot.pk)
    return conversation, {"Authorization": f"Bearer {token}"}


def send(client, conversation, headers, text: str, key: str):
    return client.post(
        "/api/process-message",
        {"chatbot_id": "shop", "message_text": text, "session_id": str(conversation.pk)},
        content_type="application/json",
        headers={**headers, "Idempotency-Key": key},
    )


def test_the_same_key_and_message_returns_the_original_turn(client, conversation):
    conversation, headers = conversation
    first = send(client, conversation, headers, "Where is my order?", "k-1")
    again = send(client, conversation, headers, "Where is my order?", "k-1")
    assert first.status_code == again.status_code == 200
    assert first.json()["turn_id"] == again.json()["turn_id"]
    assert Turn.objects.count() == 1


def test_the_same_key_with_a_different_message_is_refused_and_stores_nothing(client, conversation):
    conversation, headers = conversation
    first = send(client, conversation, headers, "Where is my order?", "k-1")
    reused = send(client, conversation, headers, "And can I return it?", "k-1")
    assert reused.status_code == 422
    error = reused.json()["error"]
    assert error["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert error["details"] == {"turn_id": first.json()["turn_id"]}
    assert list(Message.objects.values_list("content", flat=True)) == ["Where is my order?"]


def test_the_synchronous_chat_api_refuses_a_reused_key_the_same_way(client, conversation):
    conversation, headers = conversation
    send(client, conversation, headers, "Where is my order?", "k-2")
    response = client.post(
        "/api/chat/message",
        {"message": "Something else"},
        content_type="application/json",
        headers={**headers, "X-Session-ID": str(conversation.pk), "Idempotency-Key": "k-2"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert Message.objects.count() == 1
