"""The inbox's figures: handoff rate, time to first human reply, CSAT per agent, per shop."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from accounts.models import Membership
from chatbots.tests.factories import create_chatbot
from conversations.models import Conversation, Message
from helpdesk.models import ConversationRating
from inbox import services
from inbox.selectors import inbox_figures

pytestmark = pytest.mark.django_db

URL = "/admin/inbox/api/figures"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def handed_over(customer, agent, *, reply_after: int | None, score: int | None):
    customer.session_id = None
    customer.say("Help")
    customer.post("person", {})
    conversation = Conversation.objects.get(pk=customer.session_id)
    if reply_after is not None:
        message = services.agent_reply(conversation_id=conversation.pk, agent=agent, text="Hi")
        Message.objects.filter(pk=message.pk).update(
            created_at=conversation.handoff_at + dt.timedelta(seconds=reply_after)
        )
    if score is not None:
        ConversationRating.objects.create(conversation=conversation, score=score)
    return conversation


def test_the_figures_count_handoffs_first_replies_and_csat_per_agent_of_the_shop_only(
    customer, online, second_agent, outsider, django_assert_max_num_queries
):
    handed_over(customer, online, reply_after=30, score=4)
    handed_over(customer, online, reply_after=90, score=2)
    handed_over(customer, second_agent, reply_after=None, score=None)
    customer.session_id = None
    customer.say("Just the bot")
    # Another shop's conversation counts for nobody here.
    their_shop = Membership.objects.get(user=outsider).shop
    Conversation.objects.create(chatbot=create_chatbot(shop=their_shop, public_id="other"))

    online.refresh_from_db()
    with django_assert_max_num_queries(5):  # memberships, 3 aggregates, the reply times
        inbox_figures(user=online, days=7)
    body = signed_in(online).get(f"{URL}?days=7").json()
    assert body["conversations"] == 4
    assert body["handoffs"] == 3
    assert body["handoff_rate"] == 0.75
    assert body["first_human_reply_seconds"] == {"answered": 2, "median": 60.0, "max": 90.0}
    assert body["csat_per_agent"] == [{"agent": "Anna", "csat": 3.0, "ratings": 2}]
    assert signed_in(outsider).get(URL).json()["conversations"] == 1


@pytest.mark.parametrize("days", ["0", "91", "-1", "x", "99999999999"])
def test_a_bad_period_is_a_400(online, days):
    response = signed_in(online).get(f"{URL}?days={days}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
