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
    # The retry says that it is the earlier turn's answer, not a new one.
    assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
    assert "Idempotent-Replayed" not in first and again["Idempotent-Replayed"] == "true"


def test_a_retry_on_the_synchronous_chat_api_says_it_is_a_replay(client, conversation, settings):
    settings.CHAT_SYNC_TIMEOUT_SECONDS = 0.2

    def chat():
        return client.post(
            "/api/chat/message",
            {"message": "Where is my order?"},
            content_type="application/json",
            headers={**headers, "X-Session-ID": str(conversation.pk), "Idempotency-Key": "k-3"},
        )

    conversation, headers = conversation
    first, again = chat(), chat()
    assert first.status_code < 300 and again.status_code < 300
    assert "Idempotent-Replayed" not in first and again["Idempotent-Replayed"] == "true"
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


# --- a first message (no session_id): the conversation and its turn are created once ----------


def start(client, text: str, key: str, *, address: str = "203.0.113.7", user_id: str = ""):
    from chatbots.models import Chatbot

    bot = Chatbot.objects.get(public_id="shop")
    return client.post(
        "/api/process-message",
        {"chatbot_id": "shop", "message_text": text, "user_id": user_id},
        content_type="application/json",
        headers={
            "X-Widget-Key": bot.widget_key,
            "Origin": bot.allowed_origins[0],
            "Idempotency-Key": key,
        },
        REMOTE_ADDR=address,
    )


def test_a_retried_first_message_returns_the_original_conversation_and_turn(client, make_chatbot):
    from conversations.models import Conversation

    make_chatbot(public_id="shop")
    first = start(client, "Where is my order?", "first-1")
    again = start(client, "Where is my order?", "first-1")
    assert first.status_code == again.status_code == 200
    assert again.json()["session_id"] == first.json()["session_id"]
    assert again.json()["turn_id"] == first.json()["turn_id"]
    assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
    # One conversation, one turn: one AI call (a turn is claimed and run once).
    assert Conversation.objects.count() == 1
    assert Turn.objects.count() == 1


def test_a_first_message_key_reused_with_another_text_is_refused(client, make_chatbot):
    from conversations.models import Conversation

    make_chatbot(public_id="shop")
    first = start(client, "Where is my order?", "first-2")
    reused = start(client, "Something else", "first-2")
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert reused.json()["error"]["details"] == {"turn_id": first.json()["turn_id"]}
    assert Conversation.objects.count() == 1


def test_a_first_message_key_belongs_to_its_client_and_its_chatbot(client, make_chatbot):
    """Someone who learns a visitor's key from another address gets a conversation of their own,
    never the visitor's (the response carries its token)."""
    make_chatbot(public_id="shop")
    mine = start(client, "Where is my order?", "first-3")
    theirs = start(client, "Where is my order?", "first-3", address="198.51.100.9")
    other_user = start(client, "Where is my order?", "first-3", user_id="someone")
    assert theirs.status_code == other_user.status_code == 200
    sessions = {r.json()["session_id"] for r in (mine, theirs, other_user)}
    assert len(sessions) == 3


@pytest.mark.django_db(transaction=True)
def test_two_copies_of_a_first_message_arriving_at_once_create_one_conversation(make_chatbot):
    import threading

    from django.db import connection
    from django.test import Client

    from conversations.models import Conversation

    make_chatbot(public_id="shop")
    barrier = threading.Barrier(6)
    answers: list = []

    def send_copy():
        try:
            barrier.wait()
            answers.append(start(Client(), "Where is my order?", "first-4"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send_copy) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.json()["turn_id"] for a in answers}) == 1
    assert Conversation.objects.count() == 1
    assert Turn.objects.count() == 1
