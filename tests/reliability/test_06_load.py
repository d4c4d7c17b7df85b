"""Load: many conversations of five messages each through the whole pipeline at once.

Half the conversations talk to a builtin bot (knowledge-base search, unpaced), half to a bot on a
fast fake Flowise. Each sends its five messages one after the other over REST, as a widget does,
and follows every answer over one WebSocket — or, for every fourth conversation, by polling.
Fifty conversations are in flight at any moment. Every answer must arrive whole and in order,
with no 5xx, and every event must be in PostgreSQL afterwards.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
import websockets
from django.db.models import Count, F

from tests.fakes.flowise import FakeFlowise
from tests.reliability import harness

pytestmark = [pytest.mark.django_db(transaction=True)]

MESSAGES = 5
IN_FLIGHT = 50
QUESTIONS = [
    "How long does shipping take?",
    "Can I return an item?",
    "Do you ship to Sweden?",
    "What does shipping cost?",
    "Thanks, how do I reach you?",
]
ENTRIES = [
    ("Shipping", "We ship within two days to every address in Denmark and Sweden."),
    ("Returns", "You can return an item within thirty days for a full refund."),
    ("Prices", "Shipping costs 39 kroner and is free above 500 kroner."),
    ("Contact", "Write to hello@shop.example or call us on weekdays."),
]
FLOWISE_ANSWER = "Thanks for asking, here is a short and friendly answer from our fake Flowise."


@dataclass
class LoadStats:
    statuses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    reconnects: int = 0
    reconnect_reasons: Counter = field(default_factory=Counter)
    followed_by_polling: int = 0
    turns: int = 0


class Conversation:
    def __init__(self, index: int, bot: str, headers: dict, base_url: str, polling: bool):
        self.index, self.bot, self.headers, self.base_url = index, bot, headers, base_url
        self.polling = polling
        self.reply: dict | None = None
        self.ws = None

    async def send(self, client: httpx.AsyncClient, text: str, stats: LoadStats) -> dict | None:
        body: dict = {"chatbot_id": self.bot, "message_text": text}
        headers = dict(self.headers)
        if self.reply is not None:
            body["session_id"] = self.reply["session_id"]
            headers["Authorization"] = f"Bearer {self.reply['conversation_token']}"
        response = await client.post(
            f"{self.base_url}/api/process-message", json=body, headers=headers
        )
        harness.keep(response.text)
        stats.statuses[response.status_code] += 1
        if response.status_code != 200:
            stats.problems.append(
                f"conversation {self.index}: {response.status_code} {response.text[:200]}"
            )
            return None
        self.reply = response.json()
        return self.reply

    async def follow_ws(self, reply: dict, stats: LoadStats) -> list[tuple[dict, float]]:
        got: list[tuple[dict, float]] = []
        for attempt in range(5):
            try:
                if self.ws is None:
                    url = reply["websocket_url"] + "?token=" + reply["conversation_token"]
                    self.ws = await websockets.connect(url, open_timeout=30, max_size=None)
                    ready = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
                    assert ready["type"] == "ready", ready
                last = got[-1][0]["id"] if got else 0
                await self.ws.send(
                    json.dumps(
                        {"type": "resume", "turn_id": reply["turn_id"], "last_event_id": last}
                    )
                )
                while True:
                    message = json.loads(harness.keep(await asyncio.wait_for(self.ws.recv(), 60)))
                    if message.get("type") == "error":
                        stats.problems.append(f"conversation {self.index}: {message}")
                        return got
                    if message.get("type") == "event" and message["turn_id"] == reply["turn_id"]:
                        got.append((message, time.monotonic()))
                        if message["event"] == "end":
                            return got
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                stats.reconnects += 1
                stats.reconnect_reasons[type(exc).__name__] += 1
                if self.ws is not None:
                    await self.ws.close()
                self.ws = None
                await asyncio.sleep(0.25 * 2**attempt)  # back off as the widget does
        return got

    async def follow_polling(
        self, client: httpx.AsyncClient, reply: dict, stats: LoadStats
    ) -> list[tuple[dict, float]]:
        got: list[tuple[dict, float]] = []
        after = 0
        headers = {"Authorization": f"Bearer {reply['conversation_token']}"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            response = await client.get(
                f"{self.base_url}/api/stream-events/{reply['turn_id']}",
                params={"after": after},
                headers=headers,
            )
            harness.keep(response.text)
            stats.statuses[response.status_code] += 1
            if response.status_code != 200:
                stats.problems.append(f"poll {self.index}: {response.status_code}")
                return got
            body = response.json()
            now = time.monotonic()
            got += [(event, now) for event in body["events"]]
            after = body["last_event_id"]
            if not body["has_more"]:
                return got
            if not body["events"]:
                await asyncio.sleep(0.1)
        return got

    async def run(self, client: httpx.AsyncClient, stats: LoadStats) -> None:
        try:
            for question in QUESTIONS[:MESSAGES]:
                sent_at = time.monotonic()
                reply = await self.send(client, question, stats)
                if reply is None:
                    return
                if self.polling:
                    stats.followed_by_polling += 1
                    got = await self.follow_polling(client, reply, stats)
                else:
                    got = await self.follow_ws(reply, stats)
                stats.turns += 1
                events = [event for event, _ in got]
                ids = [event["id"] for event in events]
                if (
                    ids != list(range(1, len(ids) + 1))
                    or not events
                    or events[-1]["event"] != "end"
                ):
                    stats.problems.append(
                        f"turn {reply['turn_id']} ({'polling' if self.polling else 'websocket'}):"
                        f" events {ids[:5]}…{ids[-3:]}"
                    )
                    continue
                if events[-1]["data"]["status"] != "completed" or not harness.text_of(events):
                    stats.problems.append(f"turn {reply['turn_id']}: {events[-1]['data']}")
                first = next((at for event, at in got if event["event"] == "token"), None)
                if first is not None:
                    stats.first_token.append(first - sent_at)
                stats.answered.append(got[-1][1] - sent_at)
        finally:
            if self.ws is not None:
                await self.ws.close()


async def _load(conversations: list[Conversation]) -> LoadStats:
    stats = LoadStats()
    limit = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT * 2, max_keepalive_connections=IN_FLIGHT * 2)

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(conversation: Conversation) -> None:
            async with limit:
                await conversation.run(client, stats)

        await asyncio.gather(*(one(c) for c in conversations))
    return stats


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)


@pytest.mark.parametrize(
    "conversations",
    [
        pytest.param(100, id="100-conversations"),
        pytest.param(
            1000, id="1000-conversations", marks=[pytest.mark.slow, pytest.mark.timeout(900)]
        ),
    ],
)
def test_conversations_of_five_messages_all_complete_with_every_event_stored(rstack, conversations):
    from django.utils import timezone

    from conversations.models import Message, Turn
    from monitoring.models import ErrorLog

    harness.builtin_bot("load-builtin", ENTRIES)
    with FakeFlowise() as flowise:
        harness.flowise_bot(flowise, "load-flowise")
        flowise.scenario.update(answer=FLOWISE_ANSWER, record_emissions=False)
        headers = {bot: harness.widget_headers(bot) for bot in ("load-builtin", "load-flowise")}
        bots = ["load-builtin", "load-flowise"]
        plan = [
            Conversation(i, bots[i % 2], headers[bots[i % 2]], rstack.base_url, polling=i % 4 == 3)
            for i in range(conversations)
        ]
        started_wall = timezone.now()
        started = time.monotonic()
        stats = asyncio.run(_load(plan))
        duration = time.monotonic() - started

        flowise_requests = len([r for r in flowise.requests if "/prediction/" in r.path])

    turns = Turn.objects.filter(
        conversation__chatbot__public_id__in=["load-builtin", "load-flowise"]
    )
    expected = conversations * MESSAGES
    by_status = dict(Counter(turns.values_list("status", flat=True)))
    events_missing = turns.annotate(stored=Count("events")).exclude(stored=F("last_event_id"))
    errors = dict(
        Counter(
            ErrorLog.objects.filter(created_at__gte=started_wall).values_list("category", flat=True)
        )
    )
    harness.record_figures(
        f"load_{conversations}x{MESSAGES}",
        conversations=conversations,
        messages_each=MESSAGES,
        in_flight=IN_FLIGHT,
        turns=expected,
        duration_s=round(duration, 1),
        turns_per_s=round(expected / duration, 1),
        http_statuses=dict(sorted((str(k), v) for k, v in stats.statuses.items())),
        followed_by_polling=stats.followed_by_polling,
        ws_reconnects=stats.reconnects,
        ws_reconnect_reasons=dict(stats.reconnect_reasons),
        first_token_p50_s=percentile(stats.first_token, 50),
        first_token_p95_s=percentile(stats.first_token, 95),
        first_token_p99_s=percentile(stats.first_token, 99),
        answer_p50_s=percentile(stats.answered, 50),
        answer_p95_s=percentile(stats.answered, 95),
        answer_max_s=round(max(stats.answered), 3) if stats.answered else None,
        turn_statuses=by_status,
        turns_with_missing_event_rows=events_missing.count(),
        error_log_entries=errors,
        client_problems=len(stats.problems),
    )
    assert stats.problems == [], (stats.problems[:10], dict(stats.reconnect_reasons))
    assert not any(status >= 500 for status in stats.statuses)
    assert stats.turns == expected
    assert by_status == {"completed": expected}
    assert not turns.exclude(error_code="").exists()
    assert events_missing.count() == 0
    assert not turns.filter(assistant_message__isnull=True).exists()
    messages = Message.objects.filter(
        conversation__chatbot__public_id__in=["load-builtin", "load-flowise"]
    )
    assert messages.filter(role="user").count() == expected
    assert messages.filter(role="assistant").count() == expected
    assert flowise_requests == expected // 2
    assert errors == {}
