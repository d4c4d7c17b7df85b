"""Issue #26's journey in Chromium: a staff member edits a reviewed bot's draft, tries it in the
preview chat, runs the checks (progress bar, then the two answers side by side), sees the
failure block an unconfirmed publish, publishes anyway, and a customer gets the new answer only
from that moment. Only the staff account, the bot and its one check are made behind the pages'
back; the edit, the preview, the run and the publish are done in the browser."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from chatbots.models import Chatbot, TextRule
from chatbots.selectors import chatbot_turn_config_get
from chatbots.tests.factories import create_chatbot, create_entry, create_flow, create_kb
from chatbots.versions import chatbot_publishing_set
from tests.browser.conftest import admin_log_in, screenshot

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_turns_settle"),
]

STAFF = ("draft-staff", "a-long-staff-password-26")


@pytest.fixture
def staff(page, stack, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    User.objects.create_superuser(STAFF[0], "staff@shop.example", STAFF[1])
    page.set_viewport_size({"width": 1280, "height": 900})
    admin_log_in(page, stack.base_url, *STAFF)
    expect(page.locator("#logout-form")).to_have_count(1)
    return page


def test_edit_preview_check_and_publish_a_draft(staff, stack):
    from quality.models import AnswerCheck

    page = staff
    bot = create_chatbot(public_id="drafts-journey", name="Vinhuset", with_main_flow=False)
    kb = create_kb(chatbot=bot, name="faq")
    create_entry(knowledge_base=kb, title="Shipping", text="We ship within two days.")
    create_flow(chatbot=bot, name="main", is_main=True, knowledge_base=kb)
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)
    AnswerCheck.objects.create(
        chatbot=bot, question="How fast do you ship?", must_contain=["two days"]
    )
    base = f"{stack.base_url}/admin/chatbots/chatbot/{bot.pk}"

    # 1. Edit the draft: a text rule, through the chatbot form.
    page.goto(f"{base}/change/")
    page.locator("#text_rules-group .add-row a").click()
    row = page.locator("#text_rules-group tr.dynamic-text_rules").last
    row.locator("select[name$='-kind']").select_option("replace")
    row.locator("input[name$='-find']").fill("two days")
    row.locator("input[name$='-replace']").fill("48 hours")
    page.locator('input[name="_continue"]').click()
    page.wait_for_load_state("load")
    expect(page.locator(".messagelist")).to_contain_text("Saved as a draft")
    assert TextRule.objects.filter(chatbot=bot).count() == 1
    assert chatbot_turn_config_get(public_id=bot.public_id)["text_rules"] == []

    # 2. Preview chat: the draft answers with the new rule, with its sources and timings.
    page.get_by_role("link", name="Preview chat").click()
    page.locator("#preview-input").fill("How fast do you ship?")
    page.locator("#preview-send").click()
    log = page.locator("#preview-log")
    expect(log.locator(".timings")).to_contain_text("Status completed", timeout=20_000)
    expect(log.locator(".a").last).to_contain_text("48 hours")
    expect(log.locator(".source").first).to_contain_text("Shipping")
    screenshot(page, "drafts-preview-chat")

    # 3. Run the checks: a progress bar, then the draft's failure beside the live answer.
    page.goto(f"{base}/checks/")
    page.locator("#run-checks").click()
    expect(page.locator(".check-row")).to_have_count(1, timeout=60_000)
    row = page.locator(".check-row")
    expect(row).to_contain_text("✗ fail · The answer does not contain “two days”.")
    expect(row).to_contain_text("✓ pass · The answer contains “two days”.")
    expect(row).to_contain_text(re.compile(r"\(draft [+-]\d+ ms\)"))
    screenshot(page, "drafts-check-run")

    # 4. Publishing is refused until the failure is confirmed; then customers get the draft.
    page.goto(f"{base}/versions/")
    expect(page.locator("#draft-changes")).to_contain_text("Text rules changed (0 → 1 rules).")
    page.locator("#publish-draft").click()
    expect(page.locator(".messagelist .error")).to_contain_text("Publish anyway")
    assert chatbot_turn_config_get(public_id=bot.public_id)["text_rules"] == []
    page.locator("#id_note").fill("48 hours wording")
    page.locator("#id_confirm_failing").check()
    page.locator("#publish-draft").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Published version 2")
    expect(page.locator("#versions")).to_contain_text("Published with failing checks")
    screenshot(page, "drafts-published")
    assert len(chatbot_turn_config_get(public_id=bot.public_id)["text_rules"]) == 1
