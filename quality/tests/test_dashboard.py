"""The dashboard's feedback section: thumbs-up rate per flow and topic for the range and bot,
the answers most often marked down with their links; previews and other shops left out."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Membership, Role
from analytics.models import ConversationAnalysis
from chatbots.tests.factories import create_chatbot, create_kb, create_shop, shop_for_tests
from conversations.models import Conversation
from conversations.services import conversation_start
from quality.models import AnswerFeedback
from quality.selectors import feedback_figures
from quality.tests.conftest import ask

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/analytics/conversationanalysis/dashboard/"
TODAY = timezone.now().date()


def voted(bot, question, answer, value, *, flow="main", topic=None, comment="", preview=None):
    conversation = conversation_start(chatbot=bot, user_id="v")
    if preview:
        Conversation.objects.filter(pk=conversation.pk).update(preview=preview)
    turn = ask(conversation, question, answer=answer, flow=flow)
    if topic:
        ConversationAnalysis.objects.create(
            turn=turn, conversation=conversation, chatbot=bot, topic=topic
        )
    return AnswerFeedback.objects.create(
        message=turn.assistant_message,
        conversation=conversation,
        chatbot=bot,
        value=value,
        comment=comment,
    )


@pytest.fixture
def bot(make_chatbot):
    bot = make_chatbot(public_id="wine-bot")
    voted(bot, "Ship to Belgium?", "Only the Netherlands.", "down", flow="main", topic="shipping")
    voted(bot, "Ship to BE?", "Only the  netherlands.", "down", topic="shipping", comment="wrong")
    voted(bot, "Where is my order?", "Order 1234 left today.", "up", flow="orders", topic="order")
    voted(bot, "Hi", "Hello!", "up", flow="main")
    voted(bot, "Returns?", "30 days.", "down", flow="main", topic="returns")
    # A staff preview of a draft: never in the figures.
    voted(bot, "Draft?", "Draft answer.", "down", flow="main", preview="draft")
    return bot


def test_figures_per_flow_and_topic_and_the_worst_answers(bot):
    figures = feedback_figures(date_from=TODAY, date_to=TODAY, chatbot_id=bot.pk)

    assert (figures["total"], figures["up"], figures["down"], figures["up_rate"]) == (
        5,
        2,
        3,
        0.4,
    )
    assert [(r["label"], r["total"], r["up"], r["up_rate"]) for r in figures["per_flow"]] == [
        ("main", 4, 1, 0.25),
        ("orders", 1, 1, 1.0),
    ]
    assert [(r["label"], r["total"], r["down"]) for r in figures["per_topic"]] == [
        ("shipping", 2, 2),
        ("order", 1, 0),
        ("returns", 1, 1),
        ("(not analysed)", 1, 0),
    ]
    worst = figures["worst"]
    assert [(w["answer_excerpt"], w["count"]) for w in worst] == [
        ("Only the  netherlands.", 2),  # the same text, spacing and case aside: the latest shown
        ("30 days.", 1),
    ]
    assert worst[0]["question_excerpt"] == "Ship to BE?"
    assert worst[0]["comments"] == ["wrong"]


def test_the_range_and_the_bot_filter_the_votes(bot):
    other = create_chatbot(shop=bot.shop, public_id="other-bot")
    voted(other, "Q", "A", "down")
    AnswerFeedback.objects.filter(chatbot=bot, value="up").update(
        created_at=timezone.now() - dt.timedelta(days=3)
    )

    today = feedback_figures(date_from=TODAY, date_to=TODAY, chatbot_id=bot.pk)
    both = feedback_figures(date_from=TODAY - dt.timedelta(days=7), date_to=TODAY)

    assert (today["total"], today["up"]) == (3, 0)
    assert (both["total"], both["up"]) == (6, 2)


def test_the_dashboard_shows_the_section_with_its_links_to_checks_and_knowledge(client, bot):
    kb = create_kb(chatbot=bot, name="FAQ")
    owner = get_user_model().objects.create_user("olga", password="pw", is_staff=True)
    Membership.objects.create(user=owner, shop=shop_for_tests(), role=Role.OWNER)
    client.force_login(owner)

    html = client.get(DASHBOARD).content.decode()

    assert "Answer feedback (thumbs up / down)" in html
    assert "<strong>40 %</strong> of 5 votes (2 up, 3 down)" in html
    worst = AnswerFeedback.objects.filter(comment="wrong").get()
    assert (
        f"/admin/quality/answercheck/add/?from_message={worst.message_id}&amp;source=feedback"
    ) in html
    assert (
        f"/admin/chatbots/knowledgeentry/add/?title=Ship+to+BE%3F&amp;knowledge_base={kb.pk}"
        in html
    )


def test_a_member_sees_only_their_shops_votes_and_a_viewer_gets_no_add_links(client, bot):
    elsewhere = create_chatbot(shop=create_shop(), public_id="elsewhere-bot")
    voted(elsewhere, "Secret question", "Elsewhere answer", "down")
    viewer = get_user_model().objects.create_user("vera", password="pw", is_staff=True)
    Membership.objects.create(user=viewer, shop=shop_for_tests(), role=Role.VIEWER)
    client.force_login(viewer)

    html = client.get(DASHBOARD).content.decode()

    assert "of 5 votes" in html
    assert "Elsewhere answer" not in html
    assert "Only the  netherlands." in html
    assert "Add to checks" not in html and "Add to knowledge" not in html


def test_a_range_without_votes_says_so(client, bot):
    client.force_login(get_user_model().objects.create_superuser("op", password="pw"))
    past = TODAY - dt.timedelta(days=100)

    html = client.get(DASHBOARD, {"date_from": past, "date_to": past}).content.decode()

    assert "No thumbs up or down on answers in this range." in html


def test_the_add_to_knowledge_link_opens_a_prefilled_knowledge_entry_form(client, bot):
    kb = create_kb(chatbot=bot, name="FAQ")
    client.force_login(get_user_model().objects.create_superuser("op", password="pw"))
    [worst, _] = feedback_figures(date_from=TODAY, date_to=TODAY, chatbot_id=bot.pk)["worst"]

    html = client.get(worst["add_knowledge_url"]).content.decode()

    assert 'value="Ship to BE?"' in html
    assert f'<option value="{kb.pk}" selected>' in html
