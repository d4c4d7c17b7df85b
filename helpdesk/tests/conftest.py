"""Fixtures of the helpdesk tests: a Freshdesk fake, a conversation and its token."""

from __future__ import annotations

import pytest

from conversations.access import conversation_token_issue
from conversations.models import Conversation, Message
from helpdesk.models import HelpdeskConnection
from tests.fakes.freshdesk import FakeFreshdesk

ALWAYS_OPEN = {
    day: [["00:00", "23:59"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


@pytest.fixture
def freshdesk():
    with FakeFreshdesk() as fake:
        yield fake


@pytest.fixture
def open_bot(make_chatbot):
    return make_chatbot(opening_hours=ALWAYS_OPEN, language="en")


@pytest.fixture
def closed_bot(make_chatbot):
    return make_chatbot(opening_hours={"mon": [["09:00", "09:01"]]}, language="da")


def connect(chatbot, fake, **extra) -> HelpdeskConnection:
    fields = {"domain": fake.url, "api_key": fake.scenario.api_key, **extra}
    connection = HelpdeskConnection(chatbot=chatbot, **fields)
    connection.full_clean()
    connection.save()
    return connection


def conversation_with_messages(chatbot) -> tuple[Conversation, str]:
    conversation = Conversation.objects.create(chatbot=chatbot)
    lines = [
        (Message.Role.USER, "Where is my order 1001?"),
        (Message.Role.ASSISTANT, "Order #1001: it has been shipped."),
        (Message.Role.USER, "It never came <script>alert(1)</script> & I'm upset"),
    ]
    for sequence, (role, content) in enumerate(lines, start=1):
        Message.objects.create(
            conversation=conversation, role=role, content=content, sequence=sequence
        )
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=chatbot.pk)
    return conversation, token


class Widget:
    """The widget's calls for one conversation, with its token."""

    def __init__(self, client, conversation: Conversation, token: str | None):
        self.client = client
        self.conversation = conversation
        self.token = token

    def _headers(self) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}

    def url(self, name: str) -> str:
        return f"/api/sessions/{self.conversation.pk}/{name}"

    def get(self, name: str):
        return self.client.get(self.url(name), **self._headers())

    def post(self, name: str, data: dict):
        return self.client.post(
            self.url(name), data, content_type="application/json", **self._headers()
        )


@pytest.fixture
def widget(client, open_bot, freshdesk):
    connect(open_bot, freshdesk)
    conversation, token = conversation_with_messages(open_bot)
    return Widget(client, conversation, token)
