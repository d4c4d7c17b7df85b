"""A turn worker killed (SIGKILL) while it streams ten of twenty answers.

Two workers share the twenty turns; one is killed mid-answer. Clients of its turns must hear
`WORKER_LOST` within the reaper's bound, the other worker's turns must finish untouched, no user
message may be lost, and a task delivered again (as Redis does after the visibility timeout)
must never run a turn a second time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from django.db import connection
from django.test import override_settings

from tests.fakes.flowise import FakeFlowise
from tests.reliability import harness
from tests.reliability.harness import Followed, follow, post_message

# The scenario fixture writes the database; the mark makes pytest-django create the test
# database even when only this module runs (each test itself only reads what was recorded).
pytestmark = [pytest.mark.django_db]

TURNS = 20
HEARTBEAT_SECONDS = 1
STALE_SECONDS = 3
REAPER_EVERY = 0.5
# A dead worker's turn is noticed when its heartbeat is STALE_SECONDS old (at most one
# heartbeat after its last one) and the next reaper run fails it; 10 s for everything else on
# a loaded machine (the kill, the reaper's query and its events, the client's delivery). A turn
# the reaper missed would never end: the clients follow for 60 s.
BOUND = STALE_SECONDS + HEARTBEAT_SECONDS + REAPER_EVERY + 10
ANSWER = " ".join(f"w{i}" for i in range(100))
BROKER_DB = 11


@dataclass
class TurnOutcome:
    turn_id: str
    on_killed_worker: bool
    status: str
    error_code: str
    seen: Followed
    stored: str
    has_answer_row: bool
    predictions: int
    ai_calls: int
    row_problems: list[str]


@dataclass
class KilledRun:
    outcomes: list[TurnOutcome]
    user_messages: list[str]  # contents of the stored user messages
    questions: list[str]
    skipped_redeliveries: int
    killed_at: float


def _reap_once() -> int:
    from conversations.services import turns_reap_stale

    try:
        return turns_reap_stale()
    finally:
        connection.close()


async def _run(replies: list[dict], killed: harness.Service, broker_url: str):
    states = {r["turn_id"]: Followed(r["turn_id"]) for r in replies}
    followers = [
        asyncio.create_task(follow(r, state=states[r["turn_id"]], stall=30, timeout=60))
        for r in replies
    ]
    deadline = time.monotonic() + 30
    # Kill only once every answer is visibly streaming.
    while any(s.kinds.count("token") < 2 for s in states.values()):
        assert time.monotonic() < deadline, "the answers did not start streaming"
        await asyncio.sleep(0.05)
    killed_at = time.monotonic()
    killed.kill()
    # Every task delivered a second time, as Redis re-delivers an unacknowledged task.
    await asyncio.to_thread(harness.redeliver, broker_url, list(states))

    async def reaper() -> None:
        while True:
            await asyncio.to_thread(_reap_once)
            await asyncio.sleep(REAPER_EVERY)

    reaping = asyncio.create_task(reaper())
    try:
        await asyncio.wait_for(asyncio.gather(*followers), 45)
    finally:
        reaping.cancel()
    return states, killed_at


@pytest.fixture(scope="module")
def killed_run(django_db_setup, django_db_blocker) -> KilledRun:
    from conversations.models import AICall, Message, Turn

    with (
        harness.scenario_database(django_db_blocker),
        override_settings(TURN_STALE_SECONDS=STALE_SECONDS),
        FakeFlowise() as flowise,
        harness.Services(harness.base_env(broker_db=BROKER_DB)) as services,
    ):
        harness.flowise_bot(flowise, "kill-bot")
        flowise.scenario.update(answer=ANSWER, tokens_per_second=12)  # about 8 s per answer
        timing = {
            "TURN_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "TURN_STALE_SECONDS": str(STALE_SECONDS),
        }
        daphne = services.daphne("kill-daphne", **timing)
        worker_a = services.worker("kill-worker-a", concurrency=10, **timing)
        worker_b = services.worker("kill-worker-b", concurrency=10, **timing)
        services.wait_ready()
        questions = [f"Question number {i}?" for i in range(TURNS)]
        replies = [post_message(daphne.url, "kill-bot", q) for q in questions]
        states, killed_at = asyncio.run(_run(replies, worker_a, services.env["CELERY_BROKER_URL"]))
        # The redelivered tasks wait for worker B's threads; each must find its turn taken.
        skipped = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            skipped = worker_b.log_text().count("'skipped'")
            if skipped >= TURNS:
                break
            time.sleep(0.2)
        requests = [r for r in flowise.requests if "/prediction/" in r.path]
        outcomes = []
        for reply in replies:
            turn = Turn.objects.get(pk=reply["turn_id"])
            outcomes.append(
                TurnOutcome(
                    turn_id=reply["turn_id"],
                    on_killed_worker=turn.worker.endswith(f":{worker_a.pid}"),
                    status=turn.status,
                    error_code=turn.error_code,
                    seen=states[reply["turn_id"]],
                    stored=harness.stored_answer(reply["turn_id"]),
                    has_answer_row=turn.assistant_message_id is not None,
                    predictions=sum(
                        1
                        for r in requests
                        if (r.json or {}).get("overrideConfig", {}).get("sessionId")
                        == reply["session_id"]
                    ),
                    ai_calls=AICall.objects.filter(turn_id=turn.pk).count(),
                    row_problems=harness.turn_rows_consistent(reply["turn_id"]),
                )
            )
        user_messages = list(
            Message.objects.filter(
                role="user", conversation__chatbot__public_id="kill-bot"
            ).values_list("content", flat=True)
        )
    run = KilledRun(outcomes, user_messages, questions, skipped, killed_at)
    lost = [o for o in outcomes if o.on_killed_worker]
    delays = [o.seen.first("error")[1] - killed_at for o in lost if o.seen.first("error")]
    harness.record_figures(
        "worker_killed",
        turns=TURNS,
        on_killed_worker=len(lost),
        completed_elsewhere=sum(1 for o in outcomes if o.status == "completed"),
        worker_lost_errors=sum(1 for o in lost if o.error_code == "WORKER_LOST"),
        error_after_kill_max_s=round(max(delays), 2) if delays else None,
        error_after_kill_min_s=round(min(delays), 2) if delays else None,
        bound_s=BOUND,
        redelivered_tasks=TURNS,
        redelivered_skipped=skipped,
        predictions_max_per_turn=max(o.predictions for o in outcomes),
        reaped_turns_missing_event_rows=sum(1 for o in lost if o.row_problems),
        reaped_turns_with_stored_partial_answer=sum(1 for o in lost if o.has_answer_row),
    )
    return run


def test_both_workers_were_answering_when_one_was_killed(killed_run):
    on_killed = sum(1 for o in killed_run.outcomes if o.on_killed_worker)
    assert 0 < on_killed < TURNS


def test_clients_of_the_killed_workers_turns_hear_worker_lost_within_the_reapers_bound(
    killed_run,
):
    for outcome in (o for o in killed_run.outcomes if o.on_killed_worker):
        seen = outcome.seen
        assert seen.done, f"turn {outcome.turn_id}: no end event; saw {seen.kinds[-5:]}"
        assert seen.gapless(), seen.ids
        assert seen.kinds[-2:] == ["error", "end"], seen.kinds[-5:]
        error, arrived = seen.first("error")
        assert error["data"]["code"] == "WORKER_LOST"
        assert error["data"]["message"]
        assert arrived - killed_run.killed_at <= BOUND
        assert outcome.status == "failed" and outcome.error_code == "WORKER_LOST"


def test_turns_on_the_surviving_worker_complete_with_every_token(killed_run):
    for outcome in (o for o in killed_run.outcomes if not o.on_killed_worker):
        assert outcome.status == "completed", outcome.error_code
        assert outcome.seen.gapless() and outcome.seen.kinds[-1] == "end"
        assert outcome.seen.text == ANSWER
        assert outcome.stored == ANSWER
        assert outcome.row_problems == []


def test_every_user_message_is_kept(killed_run):
    assert sorted(killed_run.user_messages) == sorted(killed_run.questions)


def test_no_turn_runs_twice_even_when_its_task_is_delivered_again(killed_run):
    # Each of the twenty tasks was delivered twice; the second delivery found its turn taken.
    assert killed_run.skipped_redeliveries >= TURNS
    for outcome in killed_run.outcomes:
        assert outcome.predictions == 1, outcome.turn_id
        assert outcome.ai_calls <= 1


def test_the_broker_never_redelivers_a_turn_that_is_still_within_its_time_limit():
    from django.conf import settings

    # Redis re-delivers an unacknowledged task after the visibility timeout; a turn may run up
    # to TURN_TOTAL_TIMEOUT, and the worker waits that plus 120 s for it.
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility > settings.TURN_TOTAL_TIMEOUT + 120


def test_events_a_client_saw_before_the_worker_died_are_kept_in_postgresql(killed_run, request):
    lost = [o for o in killed_run.outcomes if o.on_killed_worker]
    assert [p for o in lost for p in o.row_problems] == []


def test_what_a_client_saw_before_the_worker_died_is_stored_as_an_incomplete_answer(
    killed_run, request
):
    lost = [o for o in killed_run.outcomes if o.on_killed_worker]
    for outcome in lost:
        assert outcome.has_answer_row and outcome.stored == outcome.seen.text
