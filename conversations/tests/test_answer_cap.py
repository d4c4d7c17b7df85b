"""ANSWER_MAX_CHARS: a runaway answer is cut at the cap, its upstream stopped, and the turn fails
with UPSTREAM_TOO_LARGE, keeping what was streamed as an incomplete answer.

The turns run through the worker's real runtime against the fake Flowise over HTTP.
"""

from __future__ import annotations

import pytest

from chatbots.models import AIEndpoint
from conversations.models import AICall, StreamEvent, Turn
from conversations.runner import MESSAGES, turn_run
from conversations.runtime import get_runtime
from monitoring.tests.factories import create_turn

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "0123456789" * 30  # 300 characters


@pytest.fixture
def flowise_turn(flowise, make_chatbot, make_endpoint, make_flow):
    """A pending turn of a bot whose main flow streams from the fake Flowise."""

    def make() -> Turn:
        endpoint = make_endpoint(
            kind=AIEndpoint.Kind.FLOWISE,
            base_url=flowise.url,
            api_key="fw-key-0123456789",
            read_timeout=5.0,
            total_timeout=60,
        )
        bot = make_chatbot(with_main_flow=False)
        make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
        return create_turn(chatbot=bot)

    return make


def run(turn: Turn) -> str:
    runtime = get_runtime()
    return runtime.submit(turn_run(runtime, str(turn.pk))).result(60)


def stream_of(turn: Turn) -> list[dict]:
    return list(StreamEvent.objects.filter(turn_id=turn.pk).order_by("seq").values("event", "data"))


def test_an_answer_past_the_cap_is_cut_there_and_fails_with_upstream_too_large(
    flowise, flowise_turn, settings
):
    settings.ANSWER_MAX_CHARS = 1000  # three whole tokens and a third of the fourth
    # 10 s of tokens at this pace: the turn ends long before unless the upstream is stopped.
    flowise.scenario.update(tokens=[TOKEN] * 5000, tokens_per_second=500)
    turn = flowise_turn()

    assert run(turn) == "failed"

    turn.refresh_from_db()
    assert turn.status == Turn.Status.FAILED
    assert turn.error_code == "UPSTREAM_TOO_LARGE"
    streamed = (TOKEN * 4)[:1000]
    assert turn.assistant_message.content == streamed
    assert turn.assistant_message.metadata["incomplete"] is True
    events = stream_of(turn)
    assert [e["event"] for e in events][-2:] == ["error", "end"]
    assert "".join(e["data"]["text"] for e in events if e["event"] == "token") == streamed
    error = events[-2]["data"]
    assert error["code"] == "UPSTREAM_TOO_LARGE"
    assert error["message"] == MESSAGES["too_large"]
    assert error["retryable"] is False
    call = AICall.objects.get(turn_id=turn.pk)
    assert (call.status, call.error_code) == ("error", "UPSTREAM_TOO_LARGE")
    assert len(call.answer) == 1000
    # Flowise was told to stop generating, and it did: far from all tokens left it.
    assert len(flowise.aborts) == 1
    assert len(flowise.emissions) < 5000


def test_an_answer_exactly_at_the_cap_completes(flowise, flowise_turn, settings):
    settings.ANSWER_MAX_CHARS = 900
    flowise.scenario.update(tokens=[TOKEN] * 3)
    turn = flowise_turn()

    assert run(turn) == "completed"

    turn.refresh_from_db()
    assert turn.assistant_message.content == TOKEN * 3
    assert "incomplete" not in turn.assistant_message.metadata
    assert flowise.aborts == []


def test_a_token_that_starts_past_the_cap_adds_nothing(flowise, flowise_turn, settings):
    settings.ANSWER_MAX_CHARS = 600
    flowise.scenario.update(tokens=[TOKEN] * 3)
    turn = flowise_turn()

    assert run(turn) == "failed"

    turn.refresh_from_db()
    assert turn.error_code == "UPSTREAM_TOO_LARGE"
    assert turn.assistant_message.content == TOKEN * 2


def test_a_flowise_answer_whose_end_never_comes_completes_the_turn_with_a_recorded_warning(
    flowise, flowise_turn, settings
):
    # Real Flowise 3.1.4: every token, then only heartbeats (docs/streaming.md).
    settings.UPSTREAM_ANSWER_TAIL_SECONDS = 0.5
    flowise.scenario.update(answer="Your order has shipped.", no_end=True, heartbeat_interval=0.1)
    turn = flowise_turn()

    assert run(turn) == "completed"

    turn.refresh_from_db()
    assert turn.error_code == ""
    assert turn.assistant_message.content == "Your order has shipped."
    [warning] = turn.route["warnings"]
    assert warning["code"] == "UPSTREAM_END_MISSING"
    events = stream_of(turn)
    assert [e["event"] for e in events][-1] == "end"
    assert "error" not in [e["event"] for e in events]
