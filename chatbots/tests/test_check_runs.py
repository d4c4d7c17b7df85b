"""Check runs and the publish guard (issue #26 item 3): the latest run of exactly the current
draft with failures blocks an unconfirmed publish; a confirmed one is recorded on the version
and in the history. (The run itself, over the real stack: tests/e2e/test_versions_live.py.)"""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from reversion.models import Version

from chatbots.checkruns import check_run_rows, draft_failing_checks, draft_fingerprint
from chatbots.models import Chatbot, CheckResult, CheckRun, TextRule
from chatbots.versions import chatbot_publishing_set

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def bot(make_chatbot):
    bot = make_chatbot(public_id="checked")
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)
    TextRule.objects.create(chatbot=bot, kind="exclamation", replace=".")
    bot.refresh_from_db()
    return bot


def finished_run(bot: Chatbot, *, draft_passed: bool) -> CheckRun:
    run = CheckRun.objects.create(
        chatbot=bot,
        status=CheckRun.Status.FINISHED,
        draft_fingerprint=draft_fingerprint(chatbot=bot),
        live_version=bot.live_version,
        total=2,
        done=2,
    )
    for side, passed, ttft in (("draft", draft_passed, 240), ("live", True, 200)):
        CheckResult.objects.create(
            run=run,
            check_id_ref=1,
            question="How fast do you ship?",
            side=side,
            answer=f"{side} answer",
            ttft_ms=ttft,
            rules=[{"rule": "must_contain", "passed": passed, "why": "…", "checked": True}],
            passed=passed,
        )
    return run


def publish(client, bot: Chatbot, **data):
    return client.post(f"/admin/chatbots/chatbot/{bot.pk}/versions/publish/", data)


def test_a_failing_run_of_this_draft_blocks_an_unconfirmed_publish(admin_client, bot):
    finished_run(bot, draft_passed=False)
    assert "How fast do you ship?" in draft_failing_checks(chatbot=bot)
    page = admin_client.get(f"/admin/chatbots/chatbot/{bot.pk}/versions/").content.decode()
    assert "Publish anyway" in page

    response = publish(admin_client, bot)

    assert (
        "latest check run of this draft failed"
        in [str(m) for m in get_messages(response.wsgi_request)][-1]
    )
    assert bot.versions.count() == 1


def test_a_confirmed_publish_with_failing_checks_is_recorded(admin_client, bot):
    finished_run(bot, draft_passed=False)

    publish(admin_client, bot, confirm_failing="on", note="known")

    version = bot.versions.get(number=2)
    assert version.confirmed_failing_checks
    assert "How fast do you ship?" in version.failing_checks
    comments = [v.revision.comment for v in Version.objects.get_for_object(bot)]
    assert any("Confirmed with failing checks" in c for c in comments)


def test_a_run_of_an_earlier_draft_or_a_passing_run_does_not_block(admin_client, bot):
    finished_run(bot, draft_passed=False)
    TextRule.objects.create(chatbot=bot, kind="replace", find="a", replace="b")
    assert draft_failing_checks(chatbot=bot) == ""
    finished_run(bot, draft_passed=True)
    assert draft_failing_checks(chatbot=bot) == ""
    publish(admin_client, bot)
    assert bot.versions.count() == 2


def test_results_are_side_by_side_with_the_change_in_time_to_first_token(bot):
    run = finished_run(bot, draft_passed=False)
    (row,) = check_run_rows(run=run)
    assert (row["draft"].answer, row["live"].answer) == ("draft answer", "live answer")
    assert row["ttft_change_ms"] == 40
    assert row["changed"]


def test_the_progress_and_results_pages_are_for_staff_of_the_bot(admin_client, client, bot):
    run = finished_run(bot, draft_passed=True)
    base = f"/admin/chatbots/chatbot/{bot.pk}/checks/{run.pk}/"
    assert admin_client.get(base + "progress/").json() == {
        "status": "finished",
        "done": 2,
        "total": 2,
        "finished": True,
        "error": "",
    }
    page = admin_client.get(base).content.decode()
    assert "draft answer" in page and "live answer" in page and "(draft +40 ms)" in page
    assert client.get(base + "progress/").status_code == 302  # no session: the login page
