"""Staff previews and check runs (chatbots/preview.py) are nobody's analytics: not in the
conversation index, the dashboard's conversations, the inbox or turn analysis."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.models import ConversationSummary
from analytics.selectors import dashboard_conversations
from analytics.services.conversation_index import conversation_index_sync
from analytics.tests.conftest import ai_call
from chatbots.preview import preview_conversation_start
from conversations.models import AICall
from conversations.services import conversation_start

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 11, 8, 12, 0, tzinfo=dt.UTC)


def called(conversation, question: str) -> None:
    row = ai_call(
        chatbot_id=conversation.chatbot_id,
        conversation=conversation,
        question=question,
        user_id=conversation.user_id,
    )
    AICall.objects.filter(pk=row.pk).update(created_at=T0)


def test_a_preview_is_not_indexed_nor_counted_with_customers(make_chatbot, admin_user):
    bot = make_chatbot(public_id="indexed")
    customer = conversation_start(chatbot=bot, user_id="anna")
    preview, _ = preview_conversation_start(chatbot=bot, choice="draft", user=admin_user)
    called(customer, "Har I rødvin?")
    called(preview, "How fast do you ship?")

    conversation_index_sync()

    indexed = set(ConversationSummary.objects.values_list("conversation_id", flat=True))
    assert indexed == {customer.pk}
    today = dt.date.today()
    counted = dashboard_conversations(date_from=today, date_to=today, chatbot_id=bot.pk)
    assert set(counted.values_list("pk", flat=True)) == {customer.pk}


def test_a_preview_that_asks_for_a_person_never_waits_in_the_inbox(make_chatbot, admin_user):
    from conversations.models import Conversation
    from inbox.selectors import inbox_counts

    bot = make_chatbot(public_id="inboxed")
    customer = conversation_start(chatbot=bot, user_id="anna")
    preview, _ = preview_conversation_start(chatbot=bot, choice="draft", user=admin_user)
    Conversation.objects.filter(pk__in=[customer.pk, preview.pk]).update(
        handling=Conversation.Handling.WAITING
    )

    assert inbox_counts(user=admin_user)["waiting"] == 1
