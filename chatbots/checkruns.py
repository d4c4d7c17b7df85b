"""Check runs (issue #26 item 3): the bot's check set (quality.AnswerCheck) asked of the draft
and of the live version, each question in its own preview conversation through the real turn
runner, each answer judged by quality.checks.evaluate_answer (docs/versions.md#check-runs).

A run is started by staff ("Run checks"), executed by a Celery task on the default queue
(quality.tasks, registered as chatbots.tasks.check_run_execute), polled by the admin's progress
bar, and remembered by the draft it judged (`draft_fingerprint`): publishing exactly that draft
while it has failing checks needs an explicit confirmation (chatbots.version_admin).

This module keeps what reads and writes chatbots' own rows (CheckRun, CheckResult). Asking the
questions and judging the answers needs conversations and quality, which sit above chatbots:
quality does it (quality/checkruns.py) and registers its CheckSet here when it loads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from django.contrib.admin.utils import quote
from django.db import transaction
from django.urls import reverse

from chatbots.models import Chatbot, CheckResult, CheckRun


class EnabledCount(Protocol):
    def __call__(self, *, chatbot: Chatbot) -> int: ...


class ExecuteLater(Protocol):
    def __call__(self, *, run_id: int) -> None: ...


@dataclass(frozen=True)
class CheckSet:
    """What quality provides for a bot's check runs: how many checks it has enabled, and how a
    run is handed to a worker (by its id, after the transaction that created it commits)."""

    enabled_count: EnabledCount
    execute_later: ExecuteLater


_check_set: list[CheckSet] = []


def register_check_set(check_set: CheckSet) -> None:
    _check_set[:] = [check_set]


def _registered() -> CheckSet:
    if not _check_set:
        raise RuntimeError("No check set registered: the quality app is not loaded.")
    return _check_set[0]


def enabled_check_count(*, chatbot: Chatbot) -> int:
    """How many questions a run of this bot asks of each side."""
    return _registered().enabled_count(chatbot=chatbot)


def draft_fingerprint(*, chatbot: Chatbot) -> str:
    """Which draft this is: a hash of what publishing it would publish."""
    from chatbots.versions import snapshot_build

    snapshot = snapshot_build(chatbot=chatbot)
    return hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()


def check_run_start(*, chatbot: Chatbot, user=None) -> CheckRun:
    """A new run of the bot's enabled checks, queued for a worker."""
    check_set = _registered()
    live = chatbot.live_version if chatbot.publishing == Chatbot.Publishing.REVIEWED else None
    sides = 2 if live is not None else 1
    run = CheckRun.objects.create(
        chatbot=chatbot,
        draft_fingerprint=draft_fingerprint(chatbot=chatbot),
        live_version=live,
        total=check_set.enabled_count(chatbot=chatbot) * sides,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    transaction.on_commit(lambda: check_set.execute_later(run_id=run.pk))
    return run


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
