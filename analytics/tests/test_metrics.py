"""Turn metrics: what is recorded for a finished turn, the processing-metrics percentiles, and
retention."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from analytics.models import ConversationAnalysis, TurnMetrics
from analytics.services.metrics import analytics_cleanup, turn_metrics_record

pytestmark = pytest.mark.django_db

URL = "/api/monitoring/processing-metrics"


@pytest.fixture
def shop(make_chatbot):
    return make_chatbot(public_id="vinhuset")


def openai_call(question: str, **fields) -> dict:
    return {
        "endpoint_kind": "openai",
        "endpoint_name": "OpenAI prod",
        "flow": "main",
        "purpose": "answer",
        "question": question,
        "answer": "An answer.",
        "model": "gpt-4o-mini",
        "status": "ok",
        "prompt_tokens": 120,
        "completion_tokens": 80,
        "total_tokens": 200,
        "latency_ms": 900,
        "first_token_ms": 210,
        **fields,
    }


def test_a_finished_turn_records_every_phase_its_tokens_and_tokens_per_second(
    shop, make_conversation, make_turn
):
    router = openai_call(
        "q", purpose="router", flow="router", prompt_tokens=30, completion_tokens=2, total_tokens=32
    )
    turn = make_turn(
        conversation=make_conversation(shop),
        question="Hvor er min ordre 1234?",
        timings={
            "config_load_ms": 4,
            "routing_ms": 150,
            "order_lookup_ms": 320,
            "upstream_connect_ms": 60,
            "first_token_ms": 600,
            "streaming_ms": 1600,
            "total_ms": 2210,
            "cache_ms": 7,
        },
        calls=[router, openai_call("Hvor er min ordre 1234?")],
    )

    metrics = turn_metrics_record(turn=turn)

    assert metrics.flow == "main" and metrics.status == "completed"
    assert (metrics.endpoint_kind, metrics.endpoint_name) == ("openai", "OpenAI prod")
    assert (metrics.config_load_ms, metrics.routing_ms, metrics.order_lookup_ms) == (4, 150, 320)
    assert (metrics.upstream_connect_ms, metrics.streaming_ms, metrics.total_ms) == (60, 1600, 2210)
    assert metrics.time_to_first_token_ms == 600  # turn start to the customer's first token
    assert metrics.first_token_ms == 210  # the answer call's own time to first token
    assert metrics.persistence_ms == 4  # measured after the commit (turn_timings_update)
    assert metrics.image_ms is None
    assert metrics.queue_ms is not None and metrics.queue_ms >= 0
    assert (metrics.prompt_tokens, metrics.completion_tokens, metrics.total_tokens) == (
        150,
        82,
        232,
    )
    assert metrics.tokens_per_second == 50.0  # 80 answer tokens over 1.6 s of streaming
    assert metrics.tokens_estimated is False
    assert metrics.ai_calls == 2
    assert metrics.extra == {"cache_ms": 7}
    assert metrics.created_at == turn.finished_at
    # The phases before the first token fit inside it, and the turn's parts inside its total.
    assert (
        metrics.config_load_ms + metrics.routing_ms + metrics.order_lookup_ms
        <= metrics.time_to_first_token_ms
    )
    assert metrics.time_to_first_token_ms + metrics.streaming_ms <= metrics.total_ms


def test_without_usage_from_the_service_tokens_per_second_counts_words(
    shop, make_conversation, make_turn
):
    turn = make_turn(
        conversation=make_conversation(shop),
        question="Hvad koster fragt?",
        answer="Fragt koster 49 kroner i hele Danmark.",  # 7 words
        timings={"first_token_ms": 20, "streaming_ms": 500, "total_ms": 530},
    )
    metrics = turn_metrics_record(turn=turn)
    assert metrics.tokens_estimated is True
    assert metrics.tokens_per_second == 14.0
    assert metrics.total_tokens is None


def test_recording_twice_updates_the_one_row(shop, make_conversation, make_turn):
    turn = make_turn(conversation=make_conversation(shop), question="x")
    turn_metrics_record(turn=turn)
    turn.timings = {**turn.timings, "persistence_ms": 9}  # e.g. re-stored timings
    turn.save(update_fields=["timings"])
    metrics = turn_metrics_record(turn=turn)
    assert TurnMetrics.objects.count() == 1
    assert metrics.persistence_ms == 9


# --- GET /api/monitoring/processing-metrics -----------------------------------------------------------


def metrics_for(
    shop, make_conversation, make_turn, totals: list[int], *, flow: str = "main", status="completed"
):
    for total in totals:
        turn = make_turn(
            conversation=make_conversation(shop),
            question="q",
            flow=flow,
            status=status,
            answer="" if status == "failed" else "An answer.",
            error={"code": "UPSTREAM_TIMEOUT", "message": "", "category": "network"}
            if status == "failed"
            else None,
            timings={
                "config_load_ms": 2,
                "first_token_ms": total // 4,
                "streaming_ms": total // 2,
                "total_ms": total,
            },
        )
        turn_metrics_record(turn=turn)


def test_processing_metrics_gives_percentiles_per_chatbot_and_flow_with_error_rate(
    staff_client, shop, make_chatbot, make_conversation, make_turn
):
    metrics_for(shop, make_conversation, make_turn, [100, 200, 300, 400])
    metrics_for(shop, make_conversation, make_turn, [1000], status="failed")
    metrics_for(shop, make_conversation, make_turn, [50], flow="order")
    other = make_chatbot(public_id="dilling")
    metrics_for(other, make_conversation, make_turn, [70])

    body = staff_client.get(URL, {"window": "24h"}).json()

    groups = {(g["chatbot"], g["flow"]): g for g in body["groups"]}
    assert set(groups) == {("vinhuset", "main"), ("vinhuset", "order"), ("dilling", "main")}
    main = groups[("vinhuset", "main")]
    assert (main["turns"], main["failed"], main["error_rate"]) == (5, 1, 0.2)
    # percentile_cont over 100, 200, 300, 400, 1000
    assert main["phases"]["total_ms"] == {"p50": 300.0, "p95": 880.0, "p99": 976.0}
    assert main["phases"]["config_load_ms"] == {"p50": 2.0, "p95": 2.0, "p99": 2.0}
    assert main["phases"]["order_lookup_ms"] is None  # no turn looked up an order
    assert groups[("vinhuset", "order")]["phases"]["total_ms"]["p50"] == 50.0

    only = staff_client.get(URL, {"window": "24h", "chatbot": "dilling"}).json()
    assert [(g["chatbot"], g["turns"]) for g in only["groups"]] == [("dilling", 1)]


def test_processing_metrics_only_counts_the_window(
    staff_client, shop, make_conversation, make_turn
):
    metrics_for(shop, make_conversation, make_turn, [100, 300])
    TurnMetrics.objects.filter(total_ms=300).update(
        created_at=timezone.now() - dt.timedelta(days=2)
    )
    day = staff_client.get(URL, {"window": "24h"}).json()["groups"]
    week = staff_client.get(URL, {"window": "7d"}).json()["groups"]
    assert day[0]["turns"] == 1 and week[0]["turns"] == 2


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"window": "forever"}, 400, "VALIDATION_ERROR"),
        ({"window": "0m"}, 400, "VALIDATION_ERROR"),
        ({"window": "31d"}, 400, "VALIDATION_ERROR"),
        ({"chatbot": "nobody"}, 404, "CHATBOT_NOT_FOUND"),
    ],
)
def test_processing_metrics_rejects_bad_parameters(staff_client, params, status, code):
    response = staff_client.get(URL, params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_processing_metrics_is_for_staff_only(client, member_client):
    assert client.get(URL).status_code in (401, 403)
    response = member_client.get(URL)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"


# --- retention ----------------------------------------------------------------------------------------


def test_cleanup_deletes_what_is_past_retention_in_batches_and_keeps_the_rest(
    settings, shop, make_conversation, make_turn
):
    from analytics.services.analysis import turn_analyse

    settings.METRICS_RETENTION_DAYS = 30
    settings.ANALYSIS_RETENTION_DAYS = 365
    turns = [make_turn(conversation=make_conversation(shop), question=f"q{i}") for i in range(5)]
    for turn in turns:
        turn_analyse(turn_id=str(turn.pk))
    old = timezone.now() - dt.timedelta(days=31)
    TurnMetrics.objects.filter(turn__in=turns[:3]).update(created_at=old)
    ConversationAnalysis.objects.filter(turn=turns[0]).update(
        created_at=timezone.now() - dt.timedelta(days=400)
    )

    result = analytics_cleanup(batch_size=2)

    assert result["turn_metrics"] == 3 and result["analyses"] == 1
    assert set(TurnMetrics.objects.values_list("turn_id", flat=True)) == {turns[3].pk, turns[4].pk}
    assert ConversationAnalysis.objects.count() == 4


# --- execution statistics (sequential against parallel routing) -----------------------------------


def routed_turn(shop, make_conversation, make_turn, *, mode: str, routing_ms: int, outcome=None):
    turn = make_turn(
        conversation=make_conversation(shop),
        question="q",
        timings={"routing_ms": routing_ms, "total_ms": 900},
    )
    turn.route = {"mode": mode, "flow": "main", **({"parallel": outcome} if outcome else {})}
    turn.save(update_fields=["route"])
    turn_metrics_record(turn=turn)


def test_execution_statistics_compare_sequential_and_parallel_routing(
    staff_client, shop, make_conversation, make_turn
):
    for ms in (100, 300):
        routed_turn(shop, make_conversation, make_turn, mode="sequential", routing_ms=ms)
    for ms in (200, 400):
        routed_turn(
            shop, make_conversation, make_turn, mode="parallel", routing_ms=ms, outcome="released"
        )
    routed_turn(
        shop, make_conversation, make_turn, mode="parallel", routing_ms=250, outcome="aborted"
    )
    metrics_for(shop, make_conversation, make_turn, [100])  # no router: not counted

    execution = {e["routing_mode"]: e for e in staff_client.get(URL).json()["execution"]}

    assert execution["sequential"] == {
        "routing_mode": "sequential",
        "routed_turns": 2,
        "router_wait_ms": {"p50": 200.0, "p95": 290.0},
        "main_flow_released": None,
        "main_flow_calls_aborted": None,
        "time_saved_ms": None,
        "time_saved_per_released_turn_ms": None,
    }
    parallel = execution["parallel"]
    assert (parallel["routed_turns"], parallel["router_wait_ms"]["p50"]) == (3, 250.0)
    assert (parallel["main_flow_released"], parallel["main_flow_calls_aborted"]) == (2, 1)
    assert (parallel["time_saved_ms"], parallel["time_saved_per_released_turn_ms"]) == (600, 300.0)
