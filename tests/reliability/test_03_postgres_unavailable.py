"""PostgreSQL unreachable for a few seconds while ten answers stream.

A private Daphne and worker reach PostgreSQL through a TCP proxy that the test cuts: every
open connection is dropped and new ones are refused, as when the database restarts or a network
path fails. The API must say so (503 and the error envelope, never a reply from memory), the
running answers must end either fully stored or with an error event, and nothing may be left
half written.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx
import pytest
import websockets

from tests.fakes.flowise import FakeFlowise
from tests.reliability import harness
from tests.reliability.harness import Followed, follow

# The scenario fixture writes the database; the mark makes pytest-django create the test
# database even when only this module runs (each test itself only reads what was recorded).
pytestmark = [pytest.mark.django_db]

TURNS = 10
CUT_SECONDS = 5.0
ANSWER = " ".join(f"p{i}" for i in range(60))
TOKENS_PER_SECOND = 10  # 6 s per answer
BOT = "pg-bot"


@dataclass
class Probe:
    what: str
    status: int  # 0: no HTTP answer at all
    body: str
    retry_after: str | None = None


@dataclass
class OutageRun:
    replies: list[dict]
    seen: dict[str, Followed]
    status: dict[str, str]
    stored: dict[str, str]
    row_problems: dict[str, list[str]]
    cut_at: float
    restored_at: float
    probes: list[Probe] = field(default_factory=list)
    after: list[Probe] = field(default_factory=list)
    after_turn_status: str = ""


async def _probe(client: httpx.AsyncClient, what: str, method: str, url: str, **kw) -> Probe:
    try:
        response = await client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        return Probe(what, 0, repr(exc))
    return Probe(
        what, response.status_code, harness.keep(response.text), response.headers.get("Retry-After")
    )


async def _probe_ws(reply: dict) -> Probe:
    """Connect and read until the first frame or the close; the body lists what came."""
    url = reply["websocket_url"] + "?token=" + reply["conversation_token"]
    frames: list[str] = []
    try:
        async with websockets.connect(url, open_timeout=5) as ws:
            while True:
                frame = harness.keep(await asyncio.wait_for(ws.recv(), 5))
                frames.append(frame)
                if '"ready"' in frame:
                    return Probe("websocket connect", 101, " ".join(frames))
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else "none (no close frame)"
        return Probe("websocket connect", 101, " ".join([*frames, f"closed with code {code}"]))
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        return Probe("websocket connect", 0, " ".join([*frames, repr(exc)]))


async def _probes(base_url: str, reply: dict, headers: dict) -> list[Probe]:
    token = {"Authorization": f"Bearer {reply['conversation_token']}"}
    async with httpx.AsyncClient(timeout=15) as client:
        return [
            await _probe(
                client,
                "POST /api/process-message (new conversation)",
                "POST",
                f"{base_url}/api/process-message",
                json={"chatbot_id": BOT, "message_text": "Are you there?"},
                headers=headers,
            ),
            await _probe(
                client,
                "POST /api/process-message (follow-up)",
                "POST",
                f"{base_url}/api/process-message",
                json={
                    "chatbot_id": BOT,
                    "message_text": "And now?",
                    "session_id": reply["session_id"],
                },
                headers={**headers, **token},
            ),
            await _probe(
                client,
                "GET /api/stream-events/<turn>",
                "GET",
                f"{base_url}/api/stream-events/{reply['turn_id']}",
                headers=token,
            ),
            await _probe(
                client,
                "GET /api/sessions/<id>/history",
                "GET",
                f"{base_url}/api/sessions/{reply['session_id']}/history",
                headers=token,
            ),
            await _probe(
                client,
                "GET /api/conversation-config/<bot>",
                "GET",
                f"{base_url}/api/conversation-config/{BOT}",
            ),
            await _probe_ws(reply),
        ]


async def _scenario(daphne: harness.Service, flowise, proxy: harness.PgProxy, headers: dict):
    replies = await harness.post_many(
        daphne.url, BOT, [f"Question {i}" for i in range(TURNS)], headers=headers
    )
    deadline = time.monotonic() + 30
    while len([r for r in flowise.requests if "/prediction/" in r.path]) < TURNS:
        assert time.monotonic() < deadline, "the worker did not start its turns"
        await asyncio.sleep(0.05)
    states = {r["turn_id"]: Followed(r["turn_id"]) for r in replies}
    followers = [
        asyncio.create_task(follow(r, state=states[r["turn_id"]], stall=10, timeout=90))
        for r in replies
    ]
    deadline = time.monotonic() + 30
    while any("metadata" not in s.kinds for s in states.values()):
        assert time.monotonic() < deadline, "the clients did not connect"
        await asyncio.sleep(0.05)
    flowise.gate.set()
    while any(s.kinds.count("token") < 3 for s in states.values()):
        assert time.monotonic() < deadline, "the answers did not start streaming"
        await asyncio.sleep(0.05)
    proxy.cut()
    cut_at = time.monotonic()
    await asyncio.sleep(0.5)
    probes = await _probes(daphne.url, replies[0], headers)
    await asyncio.sleep(max(0.0, cut_at + CUT_SECONDS - time.monotonic()))
    proxy.restore()
    restored_at = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*followers), 90)
    return replies, states, probes, cut_at, restored_at


@pytest.fixture(scope="module")
def outage(django_db_setup, django_db_blocker) -> OutageRun:
    from conversations.models import Turn

    proxy = harness.PgProxy().start()
    try:
        with (
            harness.scenario_database(django_db_blocker),
            harness.gated(FakeFlowise)(heartbeat_interval=1) as flowise,
            harness.Services(harness.base_env(broker_db=10)) as services,
        ):
            services.env.update(DATABASE_URL=proxy.database_url, DATABASE_CONNECT_TIMEOUT="2")
            harness.flowise_bot(flowise, BOT, read_timeout=30)
            flowise.scenario.update(answer=ANSWER, tokens_per_second=TOKENS_PER_SECOND)
            daphne = services.daphne("pg-daphne")
            services.worker("pg-worker", concurrency=20)
            services.wait_ready()
            headers = harness.widget_headers(BOT)
            replies, states, probes, cut_at, restored_at = asyncio.run(
                _scenario(daphne, flowise, proxy, headers)
            )
            turns = {str(t.pk): t for t in Turn.objects.filter(pk__in=list(states))}
            run = OutageRun(
                replies=replies,
                seen=states,
                status={t: turns[t].status for t in states},
                stored={t: harness.stored_answer(t) for t in states},
                row_problems={t: harness.turn_rows_consistent(t) for t in states},
                cut_at=cut_at,
                restored_at=restored_at,
                probes=probes,
            )
            # Once PostgreSQL is back the API works again and a new message is answered.
            run.after = asyncio.run(_probes(daphne.url, replies[0], headers))
            accepted = [
                json.loads(p.body)["turn_id"]
                for p in run.after
                if p.what.startswith("POST /api/process-message") and p.status == 200
            ]
            harness.wait_until(
                lambda: (
                    not Turn.objects.filter(
                        pk__in=accepted, status__in=["pending", "running"]
                    ).exists()
                ),
                30,
                "the message sent after the outage to be answered",
                interval=0.2,
            )
            statuses = set(Turn.objects.filter(pk__in=accepted).values_list("status", flat=True))
            run.after_turn_status = ",".join(sorted(statuses))
    finally:
        proxy.stop()
    during_cut = [
        at for s in run.seen.values() for at in s.arrived if run.cut_at < at < run.restored_at
    ]
    harness.record_figures(
        "postgres_unavailable",
        running_turns=TURNS,
        outage_s=CUT_SECONDS,
        completed=sum(1 for v in run.status.values() if v == "completed"),
        failed_with_error_event=sum(
            1 for t, v in run.status.items() if v == "failed" and "error" in run.seen[t].kinds
        ),
        turns_with_row_problems=sum(1 for v in run.row_problems.values() if v),
        events_delivered_during_outage=len(during_cut),
        api_during_outage={p.what: p.status for p in run.probes},
        websocket_during_outage=next(p.body for p in run.probes if p.what.startswith("websocket")),
        api_after_outage={p.what: p.status for p in run.after},
    )
    return run


def test_answers_keep_streaming_to_connected_clients_while_postgresql_is_down(outage):
    # Live frames travel through Redis; only the batched event rows wait for the database.
    for seen in outage.seen.values():
        assert any(outage.cut_at < at < outage.restored_at for at in seen.arrived)


def test_every_running_answer_ends_fully_stored_or_with_an_error_event(outage):
    for turn_id, seen in outage.seen.items():
        assert seen.done and seen.gapless(), (turn_id, seen.ids)
        status = outage.status[turn_id]
        assert status in ("completed", "failed"), (turn_id, status)
        if status == "completed":
            assert seen.text == ANSWER and outage.stored[turn_id] == ANSWER
        else:
            assert seen.kinds[-2:] == ["error", "end"]


def test_nothing_is_left_half_written(outage):
    assert {t: p for t, p in outage.row_problems.items() if p} == {}


def test_the_api_never_answers_from_memory_while_postgresql_is_down(outage):
    # A message "accepted" while the database is down would be a message lost.
    for probe in outage.probes:
        if probe.what.startswith(("POST", "GET /api/stream-events", "GET /api/sessions")):
            assert not 200 <= probe.status < 300, (probe.what, probe.body[:200])


def test_the_api_answers_503_with_the_error_envelope_while_postgresql_is_down(outage, request):
    for probe in outage.probes:
        if probe.what.startswith("websocket"):
            continue
        if probe.what.startswith("GET /api/conversation-config") and probe.status == 200:
            continue  # served from the configuration cache in Redis: still true
        assert probe.status == 503, (probe.what, probe.status, probe.body[:200])
        assert json.loads(probe.body)["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert probe.retry_after


def test_a_websocket_opened_while_postgresql_is_down_is_told_to_come_back(outage, request):
    probe = next(p for p in outage.probes if p.what.startswith("websocket"))
    assert "SERVICE_UNAVAILABLE" in probe.body and probe.body.endswith("code 4503")


def test_the_api_works_again_once_postgresql_is_back(outage):
    for probe in outage.after:
        if probe.what.startswith("websocket"):
            assert '"ready"' in probe.body
        else:
            assert probe.status == 200, (probe.what, probe.status, probe.body[:200])
    assert outage.after_turn_status == "completed"
