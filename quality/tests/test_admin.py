"""The check set in the admin: "add this exchange to the checks" from a transcript, prefilled
with the question and offering the answer's phrases to pick; scoped to the user's shops."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Membership, Role
from chatbots.tests.factories import create_shop, shop_for_tests
from quality.models import AnswerCheck
from quality.tests.conftest import ask

pytestmark = pytest.mark.django_db

ANSWER = "Shipping is free over €50. Orders arrive within 2 days, see https://shop.example/ship."


def member(client, username: str, shop, role: str):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    Membership.objects.create(user=user, shop=shop, role=role)
    client.force_login(user)
    return user


@pytest.fixture
def answered(conversation):
    return ask(conversation, "Is shipping free?", answer=ANSWER)


def test_the_transcript_offers_each_answer_to_the_checks_and_shows_the_customers_vote(
    client, conversation, answered
):
    member(client, "olga", shop_for_tests(), Role.OWNER)
    answered.assistant_message.metadata["feedback"] = "down"
    answered.assistant_message.save()

    page = client.get(f"/admin/conversations/conversation/{conversation.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert f"/admin/quality/answercheck/add/?from_message={answered.assistant_message_id}" in html
    assert "Customer: not helpful" in html


def test_a_viewer_sees_the_transcript_without_the_add_link(client, conversation, answered):
    member(client, "vera", shop_for_tests(), Role.VIEWER)

    page = client.get(f"/admin/conversations/conversation/{conversation.pk}/change/")

    assert page.status_code == 200
    assert "Add this exchange to the checks" not in page.content.decode()


def test_the_add_form_is_prefilled_with_the_question_and_offers_the_answers_phrases(
    client, conversation, answered
):
    member(client, "olga", shop_for_tests(), Role.OWNER)

    page = client.get(
        f"/admin/quality/answercheck/add/?from_message={answered.assistant_message_id}"
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert re.search(r'<textarea name="question"[^>]*>\s*Is shipping free\?</textarea>', html)
    for phrase in ("€50", "2 days", "https://shop.example/ship", "Shipping is free over €50"):
        assert f'value="{phrase}"' in html, phrase
    # Nothing is picked for the staff member: the must-contain box starts empty.
    assert re.search(r'<textarea name="must_contain"[^>]*>\s*</textarea>', html)


def test_saving_keeps_the_picked_phrases_the_answer_and_who_made_it(client, conversation, answered):
    olga = member(client, "olga", shop_for_tests(), Role.OWNER)

    response = client.post(
        "/admin/quality/answercheck/add/",
        {
            "chatbot": conversation.chatbot_id,
            "question": "Is shipping free?",
            "picked_phrases": ["€50", "2 days"],
            "must_contain": "free shipping",
            "must_not_contain": "",
            "source_title": "",
            "expect_handoff": "",
            "expect_language": "en",
            "enabled": "on",
            "source": "transcript",
            "from_message": str(answered.assistant_message_id),
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    check = AnswerCheck.objects.get()
    assert check.must_contain == ["free shipping", "€50", "2 days"]
    assert check.expect_handoff is None
    assert (check.source, check.source_message_id, check.created_by) == (
        "transcript",
        answered.assistant_message_id,
        olga,
    )


def test_a_check_without_any_rule_is_refused(client, conversation):
    member(client, "olga", shop_for_tests(), Role.OWNER)

    response = client.post(
        "/admin/quality/answercheck/add/",
        {
            "chatbot": conversation.chatbot_id,
            "question": "Anything?",
            "must_contain": "",
            "must_not_contain": "",
            "expect_handoff": "",
            "enabled": "on",
            "source": "manual",
        },
    )

    assert response.status_code == 200
    assert "Give the check at least one rule." in response.content.decode()
    assert not AnswerCheck.objects.exists()


def test_another_shops_answer_prefills_nothing_and_is_not_linked(client, conversation, answered):
    member(client, "otto", create_shop(), Role.OWNER)
    from chatbots.tests.factories import create_chatbot

    own_bot = create_chatbot(shop=Membership.objects.get().shop, public_id="otto-bot")

    page = client.get(
        f"/admin/quality/answercheck/add/?from_message={answered.assistant_message_id}"
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "Is shipping free?" not in html and "€50" not in html

    client.post(
        "/admin/quality/answercheck/add/",
        {
            "chatbot": own_bot.pk,
            "question": "Mine",
            "must_contain": "x",
            "expect_handoff": "",
            "enabled": "on",
            "source": "transcript",
            "from_message": str(answered.assistant_message_id),
        },
    )
    assert AnswerCheck.objects.get().source_message_id is None


@pytest.mark.parametrize(
    "bad",
    [
        {"must_contain": "x" * 201},
        {"must_contain": "\n".join(f"p{i}" for i in range(21))},
        {"must_contain": "ok", "expect_language": "Dutch please"},
    ],
)
def test_too_long_or_too_many_phrases_or_a_bad_language_code_are_refused(client, conversation, bad):
    member(client, "olga", shop_for_tests(), Role.OWNER)

    response = client.post(
        "/admin/quality/answercheck/add/",
        {
            "chatbot": conversation.chatbot_id,
            "question": "Q",
            "expect_handoff": "",
            "enabled": "on",
            "source": "manual",
            **bad,
        },
    )

    assert response.status_code == 200
    assert not AnswerCheck.objects.exists()
