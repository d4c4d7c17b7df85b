"""Redis killed (SIGKILL) and restarted on the same port while fifty answers stream.

A dedicated redis-server carries the channel layer, the event logs and the Celery queue of a
private Daphne and worker. It runs once without persistence (the restart comes back empty: event
logs and queued tasks are gone, so PostgreSQL must carry every resume) and once with an
append-only file (the restart replays it). Clients behave like the widget: when the socket
closes or stays silent they reconnect and resume from the last event id they saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.fakes.flowise import FakeFlowise
from tests.reliability import harness
from tests.reliability.harness import Followed, follow

# The scenario fixture writes the database; the mark makes pytest-django create the test
# database even when only this module runs (each test itself only reads what was recorded).
pytestmark = [pytest.mark.django_db]

RUNNING = 50
QUEUED = 3  # beyond the worker's 50 threads: still in the Redis queue when Redis dies
DOWN_SECONDS = 2.0
STALL_SECONDS = 6.0  # the client reconnects after this much silence
ANSWER = " ".join(f"t{i}" for i in range(50))
TOKENS_PER_SECOND = 10  # 5 s per answer
BROKER_DB = 1


@dataclass
class RestartRun:
    mode: str
    running: list[str]
    queued: list[str]
    seen: dict[str, Followed]
    status: dict[str, str]
    stored: dict[str, str]
    row_problems: dict[str, list[str]]
    during_outage: list[int] = field(default_factory=list)
    outage_bodies: list[tuple[str, str | None]] = field(default_factory=list)  # body, Retry-After
    recovered_after: float | None = None
    accepted_during_outage: dict[str, str] = field(default_factory=dict)  # turn id -> status


def _post_during_outage(url: str, headers: dict, body: dict, out: list, bodies: list, stop):
    while not stop.is_set():
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=10)
            out.append(response.status_code)
            bodies.append((harness.keep(response.text), response.headers.get("Retry-After")))
        except httpx.HTTPError as exc:
            out.append(0)
            bodies.append((repr(exc), None))
        time.sleep(0.3)


async def _scenario(
    daphne_url: str,
    bot: str,
    headers: dict,
    flowise,
    redis: harness.RedisServer,
    send_during_outage,
):
    replies = await harness.post_many(
        daphne_url,
        bot,
        [f"Tell me story {i}" for i in range(RUNNING + QUEUED)],
        headers=headers,
    )
    # The worker's threads hold RUNNING turns at the fake's gate; the rest wait in the queue.
    deadline = time.monotonic() + 30
    while len([r for r in flowise.requests if "/prediction/" in r.path]) < RUNNING:
        assert time.monotonic() < deadline, "the worker did not start its turns"
        await asyncio.sleep(0.05)
    states = {r["turn_id"]: Followed(r["turn_id"]) for r in replies}
    followers = {
        r["turn_id"]: asyncio.create_task(
            follow(r, state=states[r["turn_id"]], stall=STALL_SECONDS, timeout=90)
        )
        for r in replies
    }
    # Every client is connected and has replayed its turn's start before the answers flow.
    deadline = time.monotonic() + 30
    while sum(1 for s in states.values() if "metadata" in s.kinds) < RUNNING:
        assert time.monotonic() < deadline, "the clients did not connect"
        await asyncio.sleep(0.05)
    flowise.gate.set()
    deadline = time.monotonic() + 30
    while sum(1 for s in states.values() if s.kinds.count("token") >= 3) < RUNNING:
        assert time.monotonic() < deadline, "the answers did not start streaming"
        await asyncio.sleep(0.05)
    running = [t for t, s in states.items() if s.kinds.count("token") >= 3]
    queued = [t for t in states if t not in running]
    redis.kill()
    stop = threading.Event()
    sender = threading.Thread(target=send_during_outage, args=(stop,), daemon=True)
    sender.start()
    await asyncio.sleep(DOWN_SECONDS)
    stop.set()
    redis.start()
    restarted = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(followers[t] for t in running)), 90)
    recovered_after = time.monotonic() - restarted
    # Queued turns run once threads are free again: give them one answer's time more.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(followers[t] for t in queued)),
            len(ANSWER.split()) / TOKENS_PER_SECOND + 8,
        )
    for task in followers.values():
        task.cancel()
    await asyncio.gather(*followers.values(), return_exceptions=True)
    sender.join(15)
    return states, running, queued, recovered_after


@pytest.fixture(scope="module", params=["no-persistence", "appendonly"])
def restart_run(request, django_db_setup, django_db_blocker) -> RestartRun:
    from conversations.models import Turn

    mode = request.param
    redis = harness.RedisServer(appendonly=mode == "appendonly").start()
    try:
        with (
            harness.scenario_database(django_db_blocker),
            harness.gated(FakeFlowise)(heartbeat_interval=1) as flowise,
            harness.Services(harness.base_env(broker_db=10)) as services,
        ):
            services.env.update(
                REDIS_URL=redis.url(0),
                CELERY_BROKER_URL=redis.url(BROKER_DB),
                # The reaper runs inside the worker (embedded beat), as it would in production.
                TURN_REAPER_INTERVAL_SECONDS="2",
                # The reaper sends run_turn again for turns pending this long.
                TURN_PENDING_REDISPATCH_SECONDS="3",
            )
            bot = f"redis-bot-{mode}"
            harness.flowise_bot(flowise, bot, read_timeout=30)
            flowise.scenario.update(answer=ANSWER, tokens_per_second=TOKENS_PER_SECOND)
            daphne = services.daphne(f"redis-{mode}-daphne")
            services.worker(
                f"redis-{mode}-worker",
                concurrency=RUNNING,
                queues="turns,maintenance,celery",
                beat=True,
                TURN_DB_THREADS="12",
            )
            services.wait_ready()
            codes: list[int] = []
            bodies: list[tuple[str, str | None]] = []
            headers = harness.widget_headers(bot)
            outage_body = {"chatbot_id": bot, "message_text": "Anyone there?"}

            def send_during_outage(stop):
                _post_during_outage(
                    f"{daphne.url}/api/process-message", headers, outage_body, codes, bodies, stop
                )

            states, running, queued, recovered_after = asyncio.run(
                _scenario(daphne.url, bot, headers, flowise, redis, send_during_outage)
            )
            turns = {str(t.pk): t for t in Turn.objects.filter(pk__in=list(states))}
            run = RestartRun(
                mode=mode,
                running=running,
                queued=queued,
                seen=states,
                status={t: turns[t].status for t in states},
                stored={t: harness.stored_answer(t) for t in states},
                row_problems={
                    t: harness.turn_rows_consistent(t) if turns[t].is_finished else []
                    for t in states
                },
                during_outage=codes,
                outage_bodies=bodies,
                recovered_after=recovered_after,
            )
            # A message the API accepted while Redis was down must be answered like any other.
            accepted = [
                json.loads(body)["turn_id"]
                for code, (body, _) in zip(codes, bodies, strict=True)
                if code == 200
            ]
            deadline = time.monotonic() + len(ANSWER.split()) / TOKENS_PER_SECOND + 10
            while Turn.objects.filter(pk__in=accepted, status__in=["pending", "running"]).exists():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            run.accepted_during_outage = dict(
                (str(pk), status)
                for pk, status in Turn.objects.filter(pk__in=accepted).values_list("pk", "status")
            )
    finally:
        redis.stop()
    harness.record_figures(
        f"redis_restarted_{mode.replace('-', '_')}",
        running_turns=RUNNING,
        queued_turns=QUEUED,
        down_s=DOWN_SECONDS,
        completed=sum(1 for t in run.running if run.status[t] == "completed"),
        complete_stored_answers=sum(1 for t in run.running if run.stored[t] == ANSWER),
        clients_gapless_and_complete=sum(
            1 for t in run.running if run.seen[t].gapless() and run.seen[t].text == ANSWER
        ),
        duplicated_or_lost_events=sum(1 for t in run.running if not run.seen[t].gapless()),
        reconnects_total=sum(run.seen[t].reconnects for t in run.running),
        all_answers_done_after_restart_s=round(run.recovered_after, 2),
        queued_answered=sum(1 for t in run.queued if run.status[t] == "completed"),
        queued_left_pending=sum(1 for t in run.queued if run.status[t] == "pending"),
        accepted_during_outage_answered=sum(
            1 for status in run.accepted_during_outage.values() if status == "completed"
        ),
        accepted_during_outage=len(run.accepted_during_outage),
        messages_during_outage=dict(
            sorted((str(code), run.during_outage.count(code)) for code in set(run.during_outage))
        ),
    )
    return run


def test_every_running_turn_completes_with_its_whole_answer_stored(restart_run):
    for turn_id in restart_run.running:
        assert restart_run.status[turn_id] == "completed", turn_id
        assert restart_run.stored[turn_id] == ANSWER
        assert restart_run.row_problems[turn_id] == []


def test_clients_reconnect_and_see_every_token_exactly_once(restart_run):
    for turn_id in restart_run.running:
        seen = restart_run.seen[turn_id]
        assert seen.done, f"{turn_id}: no end; saw {seen.kinds[-3:]} errors {seen.errors[:2]}"
        assert seen.gapless(), f"{turn_id}: lost or duplicated events: {seen.ids}"
        assert seen.text == ANSWER


def test_a_message_accepted_while_redis_was_down_is_answered(restart_run):
    for turn_id, status in restart_run.accepted_during_outage.items():
        assert status == "completed", turn_id


def test_a_turn_still_queued_when_redis_restarts_is_answered(restart_run, request):
    for turn_id in restart_run.queued:
        assert restart_run.status[turn_id] == "completed", turn_id
        assert restart_run.seen[turn_id].text == ANSWER


def test_a_message_sent_while_redis_is_down_is_refused_with_503_and_retry_after(
    restart_run, request
):
    assert restart_run.during_outage, "no request was tried during the outage"
    assert 503 in restart_run.during_outage
    for code, (body, retry_after) in zip(
        restart_run.during_outage, restart_run.outage_bodies, strict=True
    ):
        # 200: sent as Redis came back, accepted (and answered: see the test above).
        assert code in (200, 503), (code, body[:300])
        if code == 503:
            assert '"SERVICE_UNAVAILABLE"' in body and retry_after
