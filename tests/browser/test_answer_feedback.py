"""A customer's thumbs down in the widget reaches the staff: the dashboard lists the answer and
one click makes a check of it (issue #26 items 3 and 4; docs/quality.md)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from quality.models import AnswerCheck, AnswerFeedback
from tests.browser.conftest import screenshot
from tests.browser.test_widget import finished_answer, flowise_bot, open_widget, send

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_turns_settle"),
]

STAFF = ("quality-staff", "a-long-test-password-26")
ANSWER = "Shipping is free over €50. Delivery takes 2 days."


def stored_vote(timeout: float = 10.0) -> AnswerFeedback:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vote = AnswerFeedback.objects.select_related("message").first()
        if vote is not None:
            return vote
        time.sleep(0.1)
    raise AssertionError("no vote stored")


def test_a_thumbs_down_in_the_widget_shows_in_the_dashboard_and_becomes_a_check(
    stack, flowise, page, browser, settings
):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = ANSWER
    open_widget(page, stack, bot)
    send(page, "Do you ship for free?")
    finished_answer(page)
    answer = page.locator(".cbw-msg[data-turn-id]").last
    down = answer.get_by_role("button", name="Not helpful")
    up = answer.get_by_role("button", name="Helpful", exact=True)
    expect(down).to_have_attribute("aria-pressed", "false")

    # Keyboard: Tab to the thumb and press Enter.
    down.focus()
    page.keyboard.press("Enter")
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_attribute("aria-pressed", "false")
    vote = stored_vote()
    assert (vote.value, vote.message.content) == ("down", ANSWER)
    screenshot(page, "feedback-thumbs-down")

    # The same tab reloaded: the history brings the vote back.
    page.reload()
    page.get_by_role("button", name="Open chat").click()
    again = page.locator(".cbw-bot:not(.cbw-greeting)").last
    expect(again.get_by_role("button", name="Not helpful")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert AnswerFeedback.objects.count() == 1

    # Staff: the dashboard lists the answer; "Add to checks" opens the prefilled form.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    User.objects.create_superuser(STAFF[0], "staff@shop.example", STAFF[1])
    staff = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    staff.goto(
        f"{stack.base_url}/admin/login/?next=/admin/analytics/conversationanalysis/dashboard/"
    )
    staff.get_by_label("Username").fill(STAFF[0])
    staff.get_by_label("Password").fill(STAFF[1])
    staff.get_by_role("button", name="Log in").click()
    section = staff.locator("#answer-feedback")
    expect(section).to_contain_text("0 % of 1 votes (0 up, 1 down)")
    row = section.locator("table.worst-answers tbody tr").first
    expect(row).to_contain_text("Do you ship for free?")
    expect(row).to_contain_text(ANSWER)
    section.scroll_into_view_if_needed()
    screenshot(staff, "feedback-dashboard")
    row.get_by_role("link", name="Add to checks").click()

    expect(staff.locator('textarea[name="question"]')).to_have_value("Do you ship for free?")
    staff.get_by_label("€50", exact=True).check()
    staff.get_by_label("2 days", exact=True).check()
    screenshot(staff, "feedback-add-check")
    staff.locator('input[name="_save"]').click()
    expect(staff.locator(".messagelist .success")).to_have_count(1)

    check = AnswerCheck.objects.get()
    assert check.chatbot_id == bot.pk
    assert check.question == "Do you ship for free?"
    assert check.must_contain == ["€50", "2 days"]
    assert (check.source, check.source_message_id) == ("feedback", vote.message_id)
    staff.context.close()
