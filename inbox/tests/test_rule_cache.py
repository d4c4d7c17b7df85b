"""The turn start asks a cached "has this bot a handoff rule?" (inbox.services.message_may_route,
#23's short path); saving or deleting a rule forgets the answer, so the rule applies at once."""

from __future__ import annotations

import pytest

from conversations.models import Turn
from inbox import services
from inbox.models import HandoffRule

pytestmark = pytest.mark.django_db


def test_a_rule_made_after_the_bot_answered_applies_to_the_next_message(customer, online, bot):
    # The first message caches "no rule" for this bot.
    assert Turn.objects.get(pk=customer.say("a complaint")["turn_id"]).kind == Turn.Kind.AI
    assert services.handoff_rule_exists(bot.pk) is False
    HandoffRule.objects.create(chatbot=bot, keywords="complaint")
    assert Turn.objects.get(pk=customer.say("another complaint")["turn_id"]).kind == "human"


def test_deleting_the_rule_lets_the_bot_take_messages_without_asking(customer, online, bot):
    rule = HandoffRule.objects.create(chatbot=bot, keywords="complaint")
    assert Turn.objects.get(pk=customer.say("hello")["turn_id"]).kind == Turn.Kind.AI
    assert services.message_may_route(chatbot_id=bot.pk, handling="bot") is True
    rule.delete()
    assert services.message_may_route(chatbot_id=bot.pk, handling="bot") is False
    # A conversation a person has (or waits for) always asks the router.
    assert services.message_may_route(chatbot_id=bot.pk, handling="waiting_for_agent") is True
