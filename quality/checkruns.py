"""Check runs executed (docs/versions.md#check-runs): each question of a bot's check set asked of
the draft and of the live version, each in its own preview conversation through the real turn
runner, and each answer judged by quality.checks.evaluate_answer.

The run's rows, the start, the progress and the results pages are chatbots' (chatbots/checkruns.py,
chatbots.version_admin); asking needs conversations, which sits above chatbots, so it is done here
and reached through the CheckSet this app registers with chatbots.checkruns when it loads.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from chatbots.models import Chatbot, CheckResult, CheckRun
from conversations.models import Conversation, Turn
from conversations.preview import preview_conversation_start
from conversations.services import message_submit
from conversations.tasks import run_turn
from helpdesk.selectors import handoff_for
from quality.checks import evaluate_answer
from quality.models import AnswerCheck

logger = logging.getLogger(__name__)

# How long one check's answer may take before the run records it as failed.
ANSWER_WAIT_SECONDS = 120


def enabled_checks(*, chatbot: Chatbot) -> QuerySet[AnswerCheck]:
    return AnswerCheck.objects.filter(chatbot=chatbot, enabled=True).order_by("pk")


def enabled_check_count(*, chatbot: Chatbot) -> int:
    return enabled_checks(chatbot=chatbot).count()


def _ask(*, chatbot: Chatbot, preview: str, question: str, user) -> dict[str, Any]:
    """One question in a new preview conversation, answered by the real runner; waits for the
    answer. The turn runs here (conversations.tasks.run_turn called in this process); the copy
    queued for the turn workers finds it claimed and skips."""
    conversation, _token = preview_conversation_start(
        chatbot=chatbot, choice=preview, user=user, purpose="checks"
    )
    turn, _ = message_submit(conversation=conversation, text=question)
    try:
        run_turn(str(turn.pk))
    except Exception:  # the turn records its own failure; a worker may still finish it
        logger.warning("check run: turn %s did not run here", turn.pk, exc_info=True)
    deadline = time.monotonic() + ANSWER_WAIT_SECONDS
    while True:
        turn = Turn.objects.select_related("assistant_message").get(pk=turn.pk)
        if turn.is_finished or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    message = turn.assistant_message
    handling = Conversation.objects.filter(pk=conversation.pk).values_list("handling", flat=True)
    handed_off = handoff_for(conversation_id=conversation.pk)[0] or (
        handling.first() not in (None, Conversation.Handling.BOT)
    )
    return {
        "conversation_id": conversation.pk,
        "answer": message.content if message else "",
        "sources": (message.metadata or {}).get("sources") if message else None,
        "handoff": handed_off,
        "turn_status": turn.status,
        "error": (
            f"{turn.error_code}: {turn.error_message}"
            if turn.error_code
            else ("" if turn.is_finished else "No answer in time.")
        ),
        "ttft_ms": (turn.timings or {}).get("first_token_ms"),
    }


def check_run_execute(*, run_id: int) -> CheckRun | None:
    """Ask every check of the run of each side and store the verdicts; progress as it goes."""
    run = CheckRun.objects.select_related("chatbot", "live_version", "created_by").get(pk=run_id)
    if run.status != CheckRun.Status.PENDING:
        return run  # a second delivery of the task
    CheckRun.objects.filter(pk=run.pk).update(status=CheckRun.Status.RUNNING)
    chatbot = run.chatbot
    sides = [(CheckResult.Side.DRAFT, "draft")]
    if run.live_version is not None:
        sides.append((CheckResult.Side.LIVE, str(run.live_version.number)))
    user = run.created_by or _system_user()
    try:
        for check in enabled_checks(chatbot=chatbot):
            for side, preview in sides:
                asked = _ask(chatbot=chatbot, preview=preview, question=check.question, user=user)
                verdicts = evaluate_answer(
                    check=check,
                    answer_text=asked["answer"],
                    sources=asked["sources"],
                    handoff=asked["handoff"],
                    language=None,  # no language detector: the rule says "not checked"
                )
                rules = [
                    {"rule": r.rule, "passed": r.passed, "why": r.why, "checked": r.checked}
                    for r in verdicts
                ]
                answered = asked["turn_status"] == "completed"
                if not answered:
                    rules.append(
                        {
                            "rule": "answered",
                            "passed": False,
                            "why": f"The turn did not complete ({asked['error'] or asked['turn_status']}).",
                            "checked": True,
                        }
                    )
                CheckResult.objects.create(
                    run=run,
                    check_id_ref=check.pk,
                    question=check.question,
                    side=side,
                    conversation_id=asked["conversation_id"],
                    answer=asked["answer"],
                    turn_status=asked["turn_status"],
                    error=asked["error"],
                    ttft_ms=asked["ttft_ms"],
                    rules=rules,
                    passed=all(rule["passed"] for rule in rules),
                )
                CheckRun.objects.filter(pk=run.pk).update(done=run.results.count())
    except Exception as exc:
        logger.exception("check run %s failed", run.pk)
        CheckRun.objects.filter(pk=run.pk).update(
            status=CheckRun.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        return CheckRun.objects.get(pk=run.pk)
    CheckRun.objects.filter(pk=run.pk).update(
        status=CheckRun.Status.FINISHED, finished_at=timezone.now()
    )
    return CheckRun.objects.get(pk=run.pk)


def _system_user():
    """The user a run with no starter (deleted since) is attributed to in the preview's
    metadata: none; preview_conversation_start needs only pk and username."""

    class _Nobody:
        pk = None

        @staticmethod
        def get_username() -> str:
            return "check run"

    return _Nobody()
