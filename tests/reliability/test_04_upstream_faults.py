"""Every way an AI service can fail, against both wire protocols (Flowise and OpenAI-compatible).

All cases run at once against the shared private stack, each bot with a fake of its own. Each
answer must end within its bound (the endpoint's timeout that applies, plus slack) with a clear
error event — or complete, where the fault is one a retry or a big buffer absorbs — and a retry
may only happen before the first token (the fake counts the requests it got).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import pytest

from tests.fakes.flowise import FakeFlowise
from tests.fakes.openai import FakeOpenAI
from tests.reliability import harness
from tests.reliability.harness import Followed, follow

# The scenario fixture writes the database; the mark makes pytest-django create the test
# database even when only this module runs (each test itself only reads what was recorded).
pytestmark = [pytest.mark.django_db]

CONNECT = 1.0  # endpoint connect_timeout
READ = 2.0  # endpoint read_timeout (longest silence)
RETRIES = 2  # UPSTREAM_MAX_RETRIES of the stack
BACKOFF = 0.5 + 1.0  # the longest two backoff waits (RetryPolicy: 0.5 s, doubling)
# Routing, scheduling and storing on a loaded 2-core machine: 2 s was too little at a load
# average of ~11 (a malformed frame, detected at once, took over 2 s to reach its end event).
SLACK = 5.0
# The timeout that ends a turn whose fault went unnoticed. Every other bound plus SLACK stays
# below it, so a generous slack still tells "ended by the fault's own rule" from "ran into the
# total timeout" (and the error code tells it too).
TOTAL = (1 + RETRIES) * CONNECT + BACKOFF + SLACK + 3.0
ANSWER = "The answer is here and it is long enough to be cut anywhere."
MEGABYTE = 1_000_000


@dataclass(frozen=True)
class Case:
    name: str
    knobs: dict
    code: dict[str, str | None]  # per protocol: the error code, None = the answer completes
    requests: dict[str, int]  # per protocol: requests the fake must have received
    bound: float  # seconds from the accepted message to the end event, before SLACK


def both(value):
    return {"flowise": value, "openai": value}


CASES = [
    Case(
        "connect_timeout",
        {"unaccepting": True},
        both("UPSTREAM_CONNECT_TIMEOUT"),
        both(0),
        (1 + RETRIES) * CONNECT + BACKOFF,
    ),
    Case(
        "stall_after_headers",
        {"delay_before_first_token": 60},
        both("UPSTREAM_TIMEOUT"),
        both(1),
        READ,
    ),
    Case("stall_mid_stream", {"stall_after_tokens": 3}, both("UPSTREAM_TIMEOUT"), both(1), READ),
    Case("status_503", {"status": 503}, both("UPSTREAM_UNAVAILABLE"), both(1 + RETRIES), BACKOFF),
    # OpenAI asks clients to retry a 500; Flowise's 500 is a flow error that would repeat.
    Case(
        "status_500",
        {"status": 500},
        both("UPSTREAM_UNAVAILABLE"),
        {"flowise": 1, "openai": 1 + RETRIES},
        BACKOFF,
    ),
    Case(
        "rate_limited_once_retry_after_1s",
        {"status": 429, "retry_after": 1, "fail_times": 1},
        both(None),
        both(2),
        1.0,
    ),
    Case(
        "rate_limited_retry_after_120s",
        {"status": 429, "retry_after": 120},
        both("UPSTREAM_RATE_LIMITED"),
        both(1),
        0.0,
    ),
    Case("reset_mid_stream", {"reset_after_tokens": 3}, both("UPSTREAM_TRUNCATED"), both(1), 0.0),
    Case(
        "reset_mid_stream_rst",
        {"reset_after_tokens": 3, "reset_with_rst": True},
        both("UPSTREAM_TRUNCATED"),
        both(1),
        0.0,
    ),
    Case(
        "malformed_frame",
        {"malformed_after_tokens": 3},
        both("UPSTREAM_BAD_RESPONSE"),
        both(1),
        0.0,
    ),
    Case(
        "endless_stream",
        {"answer": " ".join(["more"] * 20000), "tokens_per_second": 50},
        both("UPSTREAM_TIMEOUT"),
        both(1),
        TOTAL,
    ),
    Case("one_megabyte_token", {"big_token_bytes": MEGABYTE}, both(None), both(1), 0.0),
]
KINDS = ["flowise", "openai"]


@dataclass
class Outcome:
    seen: Followed
    waited: float | None  # seconds from the turn's start event to its end event (server time)
    from_post: float | None  # seconds from the accepted message to the end at the client
    requests: int
    attempts: int | None
    status: str
    stored: str


async def _run(base_url: str, bots: dict, headers: dict) -> dict:
    async def one(key, bot):
        reply = (await harness.post_many(base_url, bot, ["Hello?"], headers=headers[bot]))[0]
        seen = await follow(reply, stall=30, timeout=TOTAL + 30)
        return key, reply, seen

    results = await asyncio.gather(*(one(key, bot) for key, bot in bots.items()))
    return {key: (reply, seen) for key, reply, seen in results}


@pytest.fixture(scope="module")
def faults(rstack, django_db_setup, django_db_blocker) -> dict[tuple[str, str], Outcome]:
    from conversations.models import AICall, Turn

    outcomes: dict[tuple[str, str], Outcome] = {}
    with harness.scenario_database(django_db_blocker), contextlib.ExitStack() as stack:
        port = stack.enter_context(harness.unaccepting_port())
        fakes, bots = {}, {}
        for kind in KINDS:
            for case in CASES:
                fake = stack.enter_context((FakeFlowise if kind == "flowise" else FakeOpenAI)())
                fake.scenario.update(answer=ANSWER)
                fake.scenario.update({k: v for k, v in case.knobs.items() if k != "unaccepting"})
                make = harness.flowise_bot if kind == "flowise" else harness.openai_bot
                bot = f"fault-{kind}-{case.name}".replace("_", "-")
                make(fake, bot, connect_timeout=CONNECT, read_timeout=READ, total_timeout=TOTAL)
                if case.knobs.get("unaccepting"):
                    from chatbots.models import AIEndpoint

                    url = f"http://127.0.0.1:{port}" + ("/v1" if kind == "openai" else "")
                    AIEndpoint.objects.filter(name__endswith=bot).update(base_url=url)
                fakes[(kind, case.name)] = fake
                bots[(kind, case.name)] = bot
        headers = {bot: harness.widget_headers(bot) for bot in bots.values()}
        results = asyncio.run(_run(rstack.base_url, bots, headers))
        for key, (reply, seen) in results.items():
            turn = Turn.objects.get(pk=reply["turn_id"])
            call = AICall.objects.filter(turn_id=turn.pk).first()
            start, end = seen.first("start"), seen.first("end")
            outcomes[key] = Outcome(
                seen=seen,
                waited=harness.event_time(end[0]) - harness.event_time(start[0])
                if start and end
                else None,
                from_post=end[1] - reply["posted_at"] if end else None,
                requests=sum(
                    1
                    for r in fakes[key].requests
                    if r.method == "POST" and ("/prediction/" in r.path or "/chat/" in r.path)
                ),
                attempts=call.attempts if call else None,
                status=turn.status,
                stored=harness.stored_answer(reply["turn_id"]),
            )
    for kind in KINDS:
        harness.record_figures(
            f"upstream_faults_{kind}",
            **{
                case.name: {
                    "outcome": (outcomes[(kind, case.name)].seen.first("error") or [{}])[0]
                    .get("data", {})
                    .get("code", outcomes[(kind, case.name)].status),
                    "ended_after_s": round(outcomes[(kind, case.name)].waited or -1, 2),
                    "client_waited_s": round(outcomes[(kind, case.name)].from_post or -1, 2),
                    "bound_s": round(case.bound + SLACK, 1),
                    "requests": outcomes[(kind, case.name)].requests,
                }
                for case in CASES
            },
        )
    return outcomes


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_answer_ends_within_its_bound_with_a_clear_outcome(faults, kind, case):
    outcome = faults[(kind, case.name)]
    seen = outcome.seen
    assert seen.done, f"no end event; saw {seen.kinds[-3:]}"
    assert seen.gapless(), seen.ids
    assert outcome.waited is not None and outcome.waited <= case.bound + SLACK, outcome.waited
    code = case.code[kind]
    if code is None:
        assert outcome.status == "completed"
        assert seen.text == outcome.stored
        assert seen.kinds[-1] == "end" and "error" not in seen.kinds
    else:
        assert seen.kinds[-2:] == ["error", "end"], seen.kinds[-4:]
        error = seen.events[-2]["data"]
        assert error["code"] == code
        assert error["message"] and isinstance(error["retryable"], bool)
        assert outcome.status == "failed"
        # What the customer saw before the failure is what is stored.
        assert outcome.stored == seen.text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_retries_happen_only_before_the_first_token(faults, kind, case):
    outcome = faults[(kind, case.name)]
    if case.name == "connect_timeout":
        # Nothing reached a server: every attempt was a connect that timed out.
        assert outcome.attempts == 1 + RETRIES
        return
    assert outcome.requests == case.requests[kind]
    if outcome.seen.text and "error" in outcome.seen.kinds:
        assert outcome.requests == 1  # failed after tokens: never asked again


def test_a_one_megabyte_token_reaches_the_client_whole(faults):
    for kind in KINDS:
        text = faults[(kind, "one_megabyte_token")].seen.text
        assert "B" * MEGABYTE in text, kind
