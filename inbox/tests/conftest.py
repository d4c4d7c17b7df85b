"""Fixtures of the inbox tests: a bot in opening hours, agents of its shop and of another."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Membership, Role
from chatbots.tests.factories import create_shop, shop_for_tests
from conversations.access import conversation_token_issue
from inbox import services

ALWAYS_OPEN = {
    day: [["00:00", "23:59"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


def member(username: str, shop, role: str, first_name: str = ""):
    user = get_user_model().objects.create_user(
        username, password="pw", is_staff=True, first_name=first_name
    )
    Membership.objects.create(user=user, shop=shop, role=role)
    return user


@pytest.fixture
def bot(make_chatbot):
    return make_chatbot(public_id="shop", opening_hours=ALWAYS_OPEN, language="en")


@pytest.fixture
def agent(bot):
    return member("anna", shop_for_tests(), Role.AGENT, first_name="Anna")


@pytest.fixture
def second_agent(bot):
    return member("bo", shop_for_tests(), Role.AGENT, first_name="Bo")


@pytest.fixture
def viewer(bot):
    return member("vera", shop_for_tests(), Role.VIEWER)


@pytest.fixture
def outsider(db):
    return member("otto", create_shop(), Role.OWNER)


@pytest.fixture
def online(agent):
    """Anna has the inbox open."""
    services.agent_presence_set(user_id=agent.pk, shop_ids=[shop_for_tests().pk], online=True)
    return agent


class Customer:
    """The widget's REST calls for one conversation."""

    def __init__(self, client, bot):
        self.client = client
        self.bot = bot
        self.session_id = None
        self.token = None

    def say(self, text: str):
        body = {"chatbot_id": self.bot.public_id, "message_text": text}
        headers = {}
        if self.session_id:
            body["session_id"] = self.session_id
            headers["Authorization"] = f"Bearer {self.token}"
        else:
            headers = {"X-Widget-Key": self.bot.widget_key, "Origin": self.bot.allowed_origins[0]}
        response = self.client.post(
            "/api/process-message", body, content_type="application/json", headers=headers
        )
        assert response.status_code == 200, response.content
        data = response.json()
        self.session_id = data["session_id"]
        self.token = data["conversation_token"]
        return data

    def post(self, name: str, body: dict, token: str | None = "mine"):
        token = self.token if token == "mine" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(
            f"/api/sessions/{self.session_id}/{name}",
            body,
            content_type="application/json",
            headers=headers,
        )

    def events(self, turn_id: str, after: int = 0) -> list[dict]:
        response = self.client.get(
            f"/api/stream-events/{turn_id}?after={after}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.content
        return response.json()["events"]

    def issue_token(self, conversation) -> None:
        self.session_id = str(conversation.pk)
        self.token = conversation_token_issue(
            conversation_id=conversation.pk, chatbot_id=conversation.chatbot_id
        )


@pytest.fixture
def customer(client, bot):
    return Customer(client, bot)
