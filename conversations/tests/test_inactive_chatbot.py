"""A switched-off chatbot answers nothing (#18 item 5): every path a conversation token (or an
API user) can take to it gets 403 CHATBOT_INACTIVE, and nothing is stored or started.

The WebSocket is tested against real Daphne in tests/e2e/test_inactive_chatbot_ws.py.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from chatbots.models import Chatbot
from conversations.access import conversation_token_issue
from conversations.models import Message, Turn
from conversations.services import conversation_start, message_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def switched_off(make_chatbot):
    """A conversation with one answered-or-not turn, then its chatbot switched off."""
    bot = make_chatbot(public_id="closing")
    conversation = conversation_start(chatbot=bot)
    turn, _ = message_submit(conversation=conversation, text="Before closing")
    Chatbot.objects.filter(pk=bot.pk).update(active=False)
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=bot.pk)
    return conversation, turn, {"Authorization": f"Bearer {token}"}, token


def assert_inactive(response) -> None:
    assert response.status_code == 403, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "CHATBOT_INACTIVE"
    assert "switched off" in error["message"]


def test_process_message_with_an_existing_token_is_refused(client, switched_off):
    conversation, _turn, _headers, token = switched_off
    response = client.post(
        "/api/process-message",
        {
            "chatbot_id": "closing",
            "message_text": "Still there?",
            "session_id": str(conversation.pk),
            "conversation_token": token,
        },
        content_type="application/json",
    )
    assert_inactive(response)
    assert Turn.objects.count() == 1


def test_the_synchronous_chat_api_is_refused(client, switched_off):
    conversation, _turn, headers, _token = switched_off
    response = client.post(
        "/api/chat/message",
        {"message": "Still there?"},
        content_type="application/json",
        headers={**headers, "X-Session-ID": str(conversation.pk)},
    )
    assert_inactive(response)
    assert Message.objects.filter(content="Still there?").count() == 0


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/api/sessions/{c}/history", None),
        ("post", "/api/sessions/{c}/resume", {}),
        ("post", "/api/sessions/{c}/resolve", {"notes": "x"}),
        ("post", "/api/sessions/{c}/end", {"reason": "x"}),
        ("get", "/api/sessions/{c}/support", None),
        ("post", "/api/sessions/{c}/contact", {"name": "A", "email": "a@b.dk", "message": "hi"}),
        ("post", "/api/sessions/{c}/handoff", {"reason": "x", "name": "A", "email": "a@b.dk"}),
        ("post", "/api/sessions/{c}/rating", {"score": 5}),
        ("post", "/api/sessions/{c}/person", {"reason": "x"}),
        ("post", "/api/sessions/{c}/typing", {"typing": True}),
        ("get", "/api/stream-events/{t}/sse", None),
        ("get", "/api/stream-events/{t}", None),
        ("post", "/api/turns/{t}/cancel", None),
    ],
)
def test_every_session_turn_and_helpdesk_path_is_refused(client, switched_off, method, path, body):
    conversation, turn, headers, _token = switched_off
    url = path.format(c=conversation.pk, t=turn.pk)
    kwargs = {"headers": headers}
    if body is not None:
        kwargs.update(data=body, content_type="application/json")
    assert_inactive(getattr(client, method)(url, **kwargs))


def test_an_api_user_gets_the_same_refusal(client, switched_off):
    conversation, turn, _headers, _token = switched_off
    staff = get_user_model().objects.create_superuser("inactive-staff", "s@x.dk", "pw-1234567")
    client.force_login(staff)
    assert_inactive(client.get(f"/api/sessions/{conversation.pk}/history"))
    assert_inactive(client.get(f"/api/stream-events/{turn.pk}"))


def test_a_message_submitted_by_any_transport_is_refused_by_the_service(switched_off):
    from config.errors import ApiError

    conversation, _turn, _headers, _token = switched_off
    conversation.refresh_from_db()
    with pytest.raises(ApiError) as refused:
        message_submit(conversation=conversation, text="Via the socket")
    assert refused.value.code == "CHATBOT_INACTIVE" and refused.value.status == 403
    assert Turn.objects.count() == 1


def test_a_new_conversation_with_a_switched_off_chatbot_is_still_not_found(client, make_chatbot):
    bot = make_chatbot(public_id="gone", active=False)
    response = client.post(
        "/api/process-message",
        {"chatbot_id": "gone", "message_text": "hi"},
        content_type="application/json",
        headers={"X-Widget-Key": bot.widget_key, "Origin": bot.allowed_origins[0]},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "CHATBOT_NOT_FOUND"
