"""End to end: a real turn is analysed by a real Celery worker on the `analytics` queue.

The shared e2e worker (tests/e2e/conftest.py) consumes `turns,celery`; until it also consumes
`analytics`, this module starts its own worker for that queue with the stack's environment.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from analytics.models import ContextChunk, ConversationAnalysis, ConversationSummary, TurnMetrics
from analytics.services.conversation_index import conversation_index_sync
from chatbots.tests.factories import create_chatbot, create_entry, create_flow, create_kb
from conversations.models import AICall, Turn
from devstack.workers import celery_worker_cmd
from tests.e2e.client import answer_text, post_message, ws_events
from tests.e2e.conftest import ARTIFACTS, ROOT, _wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def analytics_worker(stack):
    log = ARTIFACTS / "e2e-analytics-worker.log"
    worker = subprocess.Popen(
        celery_worker_cmd(f"e2e-analytics-{id(stack)}", "analytics", "threads", 4),
        cwd=ROOT,
        env=stack.env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(lambda: b" ready." in log.read_bytes(), 60, "analytics worker", log)
        yield log
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()


def wait_for_row(model, timeout: float = 30, **lookup):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = model.objects.filter(**lookup).first()
        if row is not None:
            return row
        time.sleep(0.1)
    raise AssertionError(f"no {model.__name__} for {lookup} within {timeout}s")


def test_a_finished_turn_gets_its_analysis_metrics_and_chunks_from_the_analytics_worker(
    stack, analytics_worker
):
    bot = create_chatbot(
        public_id="analytics-e2e",
        with_main_flow=False,
        language="en",
        topics=["shipping", "returns"],
    )
    kb = create_kb(chatbot=bot, name="faq")
    create_entry(
        knowledge_base=kb,
        title="Delivery times",
        text="We ship within two days to Denmark.",
        tags=["shipping"],
    )
    create_flow(chatbot=bot, name="main", is_main=True, knowledge_base=kb)

    reply = post_message(stack.base_url, "analytics-e2e", "How fast do you ship? Thanks!")
    events = asyncio.run(ws_events(reply))
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "completed"
    assert "two days" in answer_text(events)

    analysis = wait_for_row(ConversationAnalysis, turn_id=reply["turn_id"])
    assert analysis.topic == "shipping"  # from the matched entry's tag
    assert analysis.outcome == "answered"
    assert analysis.sentiment == "positive" and analysis.score == 5
    assert analysis.analyser == "builtin"

    metrics = TurnMetrics.objects.get(turn_id=reply["turn_id"])
    turn = Turn.objects.get(pk=reply["turn_id"])
    assert metrics.status == "completed" and metrics.flow == "main"
    assert metrics.endpoint_kind == "builtin"
    for phase in (
        "config_load_ms",
        "routing_ms",
        "time_to_first_token_ms",
        "streaming_ms",
        "total_ms",
    ):
        assert getattr(metrics, phase) is not None, phase
    assert metrics.total_ms == turn.timings["total_ms"]
    # Plausible phases: what happens before the first token fits inside it, and the phases of
    # the turn add up to no more than its total.
    assert metrics.config_load_ms + metrics.routing_ms <= metrics.time_to_first_token_ms
    assert metrics.config_load_ms + metrics.routing_ms + metrics.streaming_ms <= metrics.total_ms
    assert metrics.time_to_first_token_ms + metrics.streaming_ms <= metrics.total_ms + 1
    assert metrics.queue_ms is not None and metrics.queue_ms >= 0
    assert metrics.tokens_per_second is not None and metrics.tokens_estimated

    chunks = list(ContextChunk.objects.filter(message_id=turn.assistant_message_id))
    assert [c.source for c in chunks] == ["Delivery times"]
    assert chunks[0].page_content == "We ship within two days to Denmark."

    assert conversation_index_sync()["messagesProcessed"] >= 1
    summary = ConversationSummary.objects.get(conversation_id=reply["session_id"])
    assert summary.first_question == "How fast do you ship? Thanks!"
    assert summary.message_ids == list(
        AICall.objects.filter(conversation_id=reply["session_id"])
        .order_by("id")
        .values_list("id", flat=True)
    )
