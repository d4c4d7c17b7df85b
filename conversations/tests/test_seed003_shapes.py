"""Seed 003's login and message shapes: `POST /auth/login` answers `.token`, and every message of
the sessions API carries the seed's chat_messages fields (null where nothing is known)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from conversations.models import Message, Turn
from conversations.services import conversation_start
from conversations.tests.factories import conversation_auth_headers
from conversations.tests.test_history_outcomes import REFUSED, ask

pytestmark = pytest.mark.django_db

PASSWORD = "api-pw-123456789"
SEED_FIELDS = {
    "intent",
    "entities",
    "sentiment",
    "confidence_score",
    "agent_info",
    "parent_message_id",
    "error_info",
}


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATE_LIMITS_ENABLED = False


@pytest.fixture
def conversation(make_chatbot):
    bot = make_chatbot()
    User.objects.create_user("shop-server", password=PASSWORD).api_chatbots.add(bot)
    return conversation_start(chatbot=bot, user_id="anna")


def login(client, password: str = PASSWORD):
    return client.post(
        "/auth/login",
        {"username": "shop-server", "password": password},
        content_type="application/json",
    )


def test_the_seeds_login_answers_a_token_that_opens_the_sessions_api(client, conversation):
    response = login(client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "access", "refresh"}
    assert body["token"] == body["access"]
    history = client.get(
        f"/api/sessions/{conversation.pk}/history",
        headers={"Authorization": f"Bearer {body['token']}"},
    )
    assert history.status_code == 200


def test_the_seeds_login_refuses_a_wrong_password_with_the_envelope(client, conversation):
    response = login(client, "wrong-password")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "NOT_AUTHENTICATED"
    assert "token" not in response.json()


def test_the_seeds_login_refuses_a_body_without_a_password_with_a_400(client, conversation):
    response = client.post(
        "/auth/login", {"username": "shop-server"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_an_answer_names_its_question_its_flow_and_the_routers_intent(client, conversation):
    turn = ask(conversation, "Where is my order?", "completed", answer="It ships today.")
    Turn.objects.filter(pk=turn.pk).update(
        route={"mode": "parallel", "label": "order", "flow": "orders"}
    )
    Message.objects.filter(pk=turn.assistant_message_id).update(flow="orders")

    question, answer = client.get(
        f"/api/sessions/{conversation.pk}/history", headers=conversation_auth_headers(conversation)
    ).json()["messages"]

    assert set(question) >= SEED_FIELDS and set(answer) >= SEED_FIELDS
    assert question["intent"] == answer["intent"] == "order"
    assert question["parent_message_id"] is None and question["agent_info"] is None
    assert answer["parent_message_id"] == question["message_id"]
    assert answer["agent_info"] == {"type": "flow", "flow": "orders", "routing_mode": "parallel"}
    assert question["error_info"] is None and answer["error_info"] is None
    for unknown in ("entities", "sentiment", "confidence_score"):
        assert question[unknown] is None and answer[unknown] is None


def test_a_failed_question_carries_its_error_as_error_info(client, conversation):
    ask(conversation, "Do you have Barolo?", "failed", error=REFUSED)
    (question,) = client.get(
        f"/api/sessions/{conversation.pk}/history", headers=conversation_auth_headers(conversation)
    ).json()["messages"]
    assert question["error_info"] == {"code": REFUSED[0], "message": REFUSED[1]}


def test_a_message_without_a_turn_has_every_seed_field_null(client, conversation):
    Message.objects.create(conversation=conversation, role="user", content="imported", sequence=1)
    (message,) = client.get(
        f"/api/sessions/{conversation.pk}/history", headers=conversation_auth_headers(conversation)
    ).json()["messages"]
    assert {name: message[name] for name in SEED_FIELDS} == dict.fromkeys(SEED_FIELDS)


def test_values_stored_on_the_message_fill_the_seed_fields(client, conversation):
    turn = ask(conversation, "I am furious", "completed", answer="Sorry to hear that.")
    Message.objects.filter(pk=turn.user_message_id).update(
        metadata={"sentiment": "negative", "confidence_score": 0.91, "entities": {"mood": "x"}}
    )
    question = client.get(
        f"/api/sessions/{conversation.pk}/history", headers=conversation_auth_headers(conversation)
    ).json()["messages"][0]
    assert question["sentiment"] == "negative"
    assert question["confidence_score"] == 0.91
    assert question["entities"] == {"mood": "x"}


def test_the_schema_documents_the_seed_fields_and_the_legacy_login(client):
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()
    message = schema["components"]["schemas"]["HistoryMessage"]["properties"]
    assert set(message) >= SEED_FIELDS
    assert schema["paths"]["/auth/login"]["post"]["deprecated"] is True
