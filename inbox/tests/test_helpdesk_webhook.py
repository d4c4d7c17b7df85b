"""Helpdesk replies back into the chat: verified webhooks from Zendesk and Freshdesk."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from django.utils import timezone

from conversations.models import Conversation, Message
from helpdesk.models import Handoff, HelpdeskConnection

pytestmark = pytest.mark.django_db

SECRET = "whsec-test-1234"


@pytest.fixture
def ticket(customer, bot):
    """A conversation whose handoff became ticket 1001 of the bot's helpdesk."""
    customer.say("My parcel is late")
    conversation = Conversation.objects.get(pk=customer.session_id)
    Handoff.objects.create(
        conversation=conversation, kind="handoff", mode="ticket", state="created", ticket_id="1001"
    )
    return conversation


def connect(bot, kind: str, secret: str = SECRET) -> HelpdeskConnection:
    return HelpdeskConnection.objects.create(
        chatbot=bot, kind=kind, domain="acme", api_key="key", webhook_secret=secret
    )


def zendesk_headers(body: bytes, secret: str = SECRET, when: dt.datetime | None = None) -> dict:
    stamp = (when or timezone.now()).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = base64.b64encode(
        hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    ).decode()
    return {
        "X-Zendesk-Webhook-Signature": signature,
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def post(client, connection_id: int, body: bytes, headers: dict):
    return client.post(
        f"/api/helpdesk/webhooks/{connection_id}",
        body,
        content_type="application/json",
        headers=headers,
    )


REPLY = json.dumps(
    {"ticket_id": 1001, "comment_id": "c-1", "text": "We sent a new parcel.", "agent_name": "Bo"}
).encode()


def test_a_signed_zendesk_reply_is_stored_as_the_agents_message(client, bot, ticket):
    connection = connect(bot, "zendesk")
    response = post(client, connection.pk, REPLY, zendesk_headers(REPLY))
    assert response.status_code == 201, response.content
    message = Message.objects.get(pk=response.json()["message_id"])
    assert (message.role, message.content) == ("agent", "We sent a new parcel.")
    assert message.metadata["agent"] == {"name": "Bo"}
    assert message.conversation_id == ticket.pk
    # Helpdesks retry webhooks: the same comment is stored once.
    again = post(client, connection.pk, REPLY, zendesk_headers(REPLY))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert Message.objects.filter(role="agent").count() == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Zendesk-Webhook-Signature": "bm9wZQ==", "X-Zendesk-Webhook-Signature-Timestamp": "x"},
        "wrong secret",
        "stale",
        "other body",
    ],
)
def test_a_zendesk_reply_with_a_bad_signature_is_refused_and_stores_nothing(
    client, bot, ticket, headers
):
    connection = connect(bot, "zendesk")
    if headers == "wrong secret":
        headers = zendesk_headers(REPLY, secret="not-the-secret")
    elif headers == "stale":
        headers = zendesk_headers(REPLY, when=timezone.now() - dt.timedelta(minutes=10))
    elif headers == "other body":
        headers = zendesk_headers(REPLY.replace(b"new parcel", b"refund"))
    response = post(client, connection.pk, REPLY, headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "NOT_AUTHENTICATED"
    assert not Message.objects.filter(role="agent").exists()


def test_a_freshdesk_reply_needs_the_shared_secret_header(client, bot, ticket):
    connection = connect(bot, "freshdesk")
    wrong = post(client, connection.pk, REPLY, {"X-Chatbot-Webhook-Secret": "guess"})
    missing = post(client, connection.pk, REPLY, {})
    assert wrong.status_code == missing.status_code == 401
    ok = post(client, connection.pk, REPLY, {"X-Chatbot-Webhook-Secret": SECRET})
    assert ok.status_code == 201
    assert Message.objects.filter(role="agent").count() == 1


def test_unknown_connections_and_connections_without_a_secret_answer_the_same_401(
    client, bot, ticket
):
    connection = connect(bot, "freshdesk", secret="")
    for connection_id in (connection.pk, connection.pk + 1000, 2**40):
        response = post(client, connection_id, REPLY, {"X-Chatbot-Webhook-Secret": ""})
        assert response.status_code == 401, connection_id


def test_a_reply_to_a_ticket_of_another_chatbot_is_a_404(client, bot, ticket, make_chatbot):
    other = connect(make_chatbot(public_id="other-bot"), "freshdesk")
    response = post(client, other.pk, REPLY, {"X-Chatbot-Webhook-Secret": SECRET})
    assert response.status_code == 404
    assert not Message.objects.filter(role="agent").exists()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b'{"ticket_id": "1001"}',
        b'{"ticket_id": "1001", "text": "a\\u0000b"}',
        b'{"ticket_id": ["1001"], "text": "hi"}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_a_signed_but_malformed_body_is_a_400(client, bot, ticket, body):
    connection = connect(bot, "freshdesk")
    response = post(client, connection.pk, body, {"X-Chatbot-Webhook-Secret": SECRET})
    assert response.status_code == 400, response.content
    assert not Message.objects.filter(role="agent").exists()


def test_a_reply_while_a_person_chats_reaches_the_widget_on_the_human_turn(
    client, customer, bot, ticket, online, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        human = customer.post("person", {}).json()["turn_id"]
    connection = connect(bot, "freshdesk")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, connection.pk, REPLY, {"X-Chatbot-Webhook-Secret": SECRET})
    assert response.json()["pushed"] is True
    events = customer.events(human)
    assert events[-1]["event"] == "agent_message"
    assert events[-1]["data"]["text"] == "We sent a new parcel."
    assert events[-1]["data"]["agent"] == {"name": "Bo"}
    assert events[-1]["data"]["via"] == "freshdesk"
