"""Check runs (issue #26 item 3): the bot's check set (quality.AnswerCheck) asked of the draft
and of the live version, each question in its own preview conversation through the real turn
runner, each answer judged by quality.checks.evaluate_answer (docs/versions.md#check-runs).

A run is started by staff ("Run checks"), executed by a Celery task on the default queue
(chatbots.tasks.check_run_execute), polled by the admin's progress bar, and remembered by
the draft it judged (`draft_fingerprint`): publishing exactly that draft while it has failing
checks needs an explicit confirmation (chatbots.version_admin).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from django.contrib.admin.utils import quote
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from chatbots.models import Chatbot, CheckResult, CheckRun

logger = logging.getLogger(__name__)

# How long one check's answer may take before the run records it as failed.
ANSWER_WAIT_SECONDS = 120


def draft_fingerprint(*, chatbot: Chatbot) -> str:
    """Which draft this is: a hash of what publishing it would publish."""
    from chatbots.versions import snapshot_build

    snapshot = snapshot_build(chatbot=chatbot)
    return hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()


def _enabled_checks(chatbot: Chatbot):
    from quality.models import AnswerCheck

    return AnswerCheck.objects.filter(chatbot=chatbot, enabled=True).order_by("pk")


def check_run_start(*, chatbot: Chatbot, user=None) -> CheckRun:
    """A new run of the bot's enabled checks, queued for a worker."""
    from chatbots.tasks import check_run_execute

    live = chatbot.live_version if chatbot.publishing == Chatbot.Publishing.REVIEWED else None
    sides = 2 if live is not None else 1
    run = CheckRun.objects.create(
        chatbot=chatbot,
        draft_fingerprint=draft_fingerprint(chatbot=chatbot),
        live_version=live,
        total=_enabled_checks(chatbot).count() * sides,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    transaction.on_commit(lambda: check_run_execute.delay(run.pk))
    return run


def _ask(*, chatbot: Chatbot, preview: str, question: str, user) -> dict[str, Any]:
    """One question in a new preview conversation, answered by the real runner; waits for the
    answer. The turn runs here (conversations.tasks.run_turn called in this process); the copy
    queued for the turn workers finds it claimed and skips."""
    from analytics.services.analysis import handoff_for
    from chatbots.preview import preview_conversation_start
    from conversations.models import Conversation, Turn
    from conversations.services import message_submit
    from conversations.tasks import run_turn

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
    from quality.checks import evaluate_answer

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
        for check in _enabled_checks(chatbot):
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


# --- Reading ---------------------------------------------------------------------------------


def check_run_progress(*, run: CheckRun) -> dict[str, Any]:
    run.refresh_from_db(fields=["status", "done", "total", "error"])
    return {
        "status": run.status,
        "done": run.done,
        "total": run.total,
        "finished": run.status in (CheckRun.Status.FINISHED, CheckRun.Status.FAILED),
        "error": run.error,
    }


def check_run_rows(*, run: CheckRun) -> list[dict[str, Any]]:
    """Per check: the draft's and the live version's answers side by side, and the change in
    time to first token (draft minus live, ms)."""
    rows: dict[Any, dict[str, Any]] = {}
    for result in run.results.order_by("check_id_ref", "side"):
        row = rows.setdefault(
            result.check_id_ref, {"question": result.question, "draft": None, "live": None}
        )
        row[result.side] = result
    out = []
    for row in rows.values():
        draft, live = row["draft"], row["live"]
        row["ttft_change_ms"] = (
            draft.ttft_ms - live.ttft_ms
            if draft and live and draft.ttft_ms is not None and live.ttft_ms is not None
            else None
        )
        row["changed"] = bool(draft and live and draft.answer != live.answer)
        out.append(row)
    return out


def draft_failing_checks(*, chatbot: Chatbot) -> str:
    """The questions whose draft answer failed in the latest finished run of exactly the draft
    as it is now; "" when that run passed, or no run judged this draft."""
    run = (
        CheckRun.objects.filter(chatbot=chatbot, status=CheckRun.Status.FINISHED)
        .order_by("-created_at", "-pk")
        .first()
    )
    if run is None or run.draft_fingerprint != draft_fingerprint(chatbot=chatbot):
        return ""
    failed = run.results.filter(side=CheckResult.Side.DRAFT, passed=False)
    questions = [f"“{q[:80]}”" for q in failed.values_list("question", flat=True)]
    if not questions:
        return ""
    return f"{len(questions)} check(s) of run {run.pk}: " + ", ".join(questions[:10])


def checks_url(*, chatbot: Chatbot) -> str:
    return reverse("admin:chatbots_chatbot_checks", args=[quote(chatbot.pk)])
