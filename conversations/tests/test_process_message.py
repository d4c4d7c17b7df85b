"""POST /api/process-message: validation, conversation tokens, idempotency, error envelope."""

import uuid

import pytest

from conversations.models import Conversation, Message, Turn

pytestmark = pytest.mark.django_db


def post(client, body, **headers):
    """As the widget does: the bot's public key and the shop page's origin for new chats."""
    from chatbots.models import Chatbot

    bot = Chatbot.objects.filter(public_id=body.get("chatbot_id", "")).first()
    if bot is not None and "session_id" not in body:
        headers = {"X-Widget-Key": bot.widget_key, "Origin": bot.allowed_origins[0], **headers}
    return client.post(
        "/api/process-message", body, content_type="application/json", headers=headers
    )


def test_it_stores_the_message_creates_a_turn_and_answers_at_once(client, make_chatbot):
    make_chatbot(public_id="shop")
    response = post(client, {"chatbot_id": "shop", "message_text": "Hello", "user_id": "u-1"})
    assert response.status_code == 200
    body = response.json()
    turn = Turn.objects.get(pk=body["streaming_session_id"])
    assert turn.status == Turn.Status.PENDING
    assert turn.user_message.content == "Hello"
    assert str(turn.conversation_id) == body["session_id"]
    assert body["streaming_url"].endswith(f"/api/stream-events/{turn.pk}")
    assert body["websocket_url"].startswith("ws://") and body["session_id"] in body["websocket_url"]
    assert body["flow_type"] == "main"
    assert Conversation.objects.get(pk=body["session_id"]).user_id == "u-1"


def test_flow_type_names_routing_when_a_router_flow_decides_and_follows_saves(
    client, make_chatbot, make_flow
):
    """flow_type comes from the cached configuration customers get; saving a flow drops it."""
    bot = make_chatbot(public_id="shop")
    assert post(client, {"chatbot_id": "shop", "message_text": "Hi"}).json()["flow_type"] == "main"
    make_flow(chatbot=bot, name="triage", role="router")
    body = post(client, {"chatbot_id": "shop", "message_text": "Hi"}).json()
    assert body["flow_type"] == "routing"


def test_a_second_message_needs_the_conversation_token(client, make_chatbot):
    make_chatbot(public_id="shop")
    first = post(client, {"chatbot_id": "shop", "message_text": "one"}).json()
    body = {"chatbot_id": "shop", "message_text": "two", "session_id": first["session_id"]}
    assert post(client, body).status_code == 404
    assert post(client, body, Authorization="Bearer not-a-token").status_code == 404
    ok = post(client, body, Authorization=f"Bearer {first['conversation_token']}")
    assert ok.status_code == 200
    assert ok.json()["session_id"] == first["session_id"]
    sequences = list(
        Message.objects.filter(conversation_id=first["session_id"]).values_list(
            "sequence", flat=True
        )
    )
    assert sorted(sequences) == [1, 2]


def test_another_visitors_token_opens_nothing(client, make_chatbot):
    make_chatbot(public_id="shop")
    mine = post(client, {"chatbot_id": "shop", "message_text": "mine"}).json()
    theirs = post(client, {"chatbot_id": "shop", "message_text": "theirs"}).json()
    response = post(
        client,
        {"chatbot_id": "shop", "message_text": "x", "session_id": mine["session_id"]},
        Authorization=f"Bearer {theirs['conversation_token']}",
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "CONVERSATION_NOT_FOUND"


def test_a_retry_with_the_same_idempotency_key_returns_the_original_turn(client, make_chatbot):
    make_chatbot(public_id="shop")
    first = post(client, {"chatbot_id": "shop", "message_text": "hi"}).json()
    body = {"chatbot_id": "shop", "message_text": "again", "session_id": first["session_id"]}
    auth = {"Authorization": f"Bearer {first['conversation_token']}", "Idempotency-Key": "k-1"}
    a = post(client, body, **auth).json()
    b = post(client, body, **auth).json()
    assert a["turn_id"] == b["turn_id"]
    assert Turn.objects.filter(conversation_id=first["session_id"]).count() == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "VALIDATION_ERROR"),
        ({"chatbot_id": "shop"}, 400, "VALIDATION_ERROR"),
        ({"chatbot_id": "shop", "message_text": "   "}, 400, "VALIDATION_ERROR"),
        ({"chatbot_id": "shop", "message_text": "x" * 5000}, 400, "VALIDATION_ERROR"),
        ({"chatbot_id": "nope", "message_text": "hi"}, 404, "CHATBOT_NOT_FOUND"),
        ({"chatbot_id": "sleepy", "message_text": "hi"}, 404, "CHATBOT_NOT_FOUND"),
        (
            {"chatbot_id": "shop", "message_text": "hi", "session_id": "not-a-uuid"},
            400,
            "VALIDATION_ERROR",
        ),
        (
            {"chatbot_id": "shop", "message_text": "hi", "session_id": str(uuid.uuid4())},
            404,
            "CONVERSATION_NOT_FOUND",
        ),
        ({"chatbot_id": "shop", "message_text": ["a"]}, 400, "VALIDATION_ERROR"),
    ],
)
def test_bad_input_gets_a_clear_error(client, make_chatbot, body, status, code):
    make_chatbot(public_id="shop")
    make_chatbot(public_id="sleepy", active=False)
    response = post(client, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert Turn.objects.count() == 0


def test_malformed_json_is_a_400_not_a_500(client, make_chatbot):
    response = client.post("/api/process-message", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_JSON"


def test_an_ended_conversation_takes_no_more_messages(client, make_chatbot):
    make_chatbot(public_id="shop")
    first = post(client, {"chatbot_id": "shop", "message_text": "hi"}).json()
    Conversation.objects.filter(pk=first["session_id"]).update(status="ended")
    response = post(
        client,
        {"chatbot_id": "shop", "message_text": "still there?", "session_id": first["session_id"]},
        Authorization=f"Bearer {first['conversation_token']}",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONVERSATION_CLOSED"


def test_stream_events_validates_its_parameters(client, make_chatbot):
    make_chatbot(public_id="shop")
    reply = post(client, {"chatbot_id": "shop", "message_text": "hi"}).json()
    auth = {"Authorization": f"Bearer {reply['conversation_token']}"}
    url = f"/api/stream-events/{reply['turn_id']}"
    for query in ("?after=x", "?after=-1", "?limit=0", "?limit=5000"):
        response = client.get(url + query, headers=auth)
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    pending = client.get(url, headers=auth).json()
    assert pending == {
        "events": [],
        "session_status": "active",
        "last_event_id": 0,
        "has_more": True,
    }
