"""A check run started from the chatbot page (chatbots.checkruns) counts and queues quality's check
set through the CheckSet quality registers. (Asking and judging, over the real stack:
tests/e2e/test_versions_live.py and tests/browser/test_drafts_journey.py.)"""

from __future__ import annotations

import pytest

from chatbots.checkruns import check_run_start, enabled_check_count
from chatbots.models import CheckRun
from quality import tasks
from quality.models import AnswerCheck

pytestmark = pytest.mark.django_db


def test_a_run_counts_the_enabled_checks_and_is_queued_under_the_task_name_it_always_had(
    make_chatbot, monkeypatch, django_capture_on_commit_callbacks
):
    bot = make_chatbot()
    AnswerCheck.objects.create(chatbot=bot, question="How fast do you ship?")
    AnswerCheck.objects.create(chatbot=bot, question="Do you ship abroad?")
    AnswerCheck.objects.create(chatbot=bot, question="Old question", enabled=False)
    queued: list[int] = []
    monkeypatch.setattr(tasks.check_run_execute, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        run = check_run_start(chatbot=bot)

    assert enabled_check_count(chatbot=bot) == 2
    assert (run.status, run.total) == (CheckRun.Status.PENDING, 2)
    assert queued == [run.pk]
    assert tasks.check_run_execute.name == "chatbots.tasks.check_run_execute"
