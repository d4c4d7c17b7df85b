"""Analysis of finished turns: the analysis flow (fake OpenAI / Flowise), the builtin heuristic,
outcomes, context chunks, idempotency, re-analysis and the hook into finished turns."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command

from analytics.analyser import parse_verdict, sentiment_of, topic_of
from analytics.models import ContextChunk, ConversationAnalysis, TurnMetrics
from analytics.services.analysis import turn_analyse
from chatbots.models import AIEndpoint, Flow
from conversations.models import AICall
from tests.fakes.flowise import FakeFlowise
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.django_db

VERDICT = {"topic": "retur", "score": 4, "sentiment": "positive"}


@pytest.fixture
def shop(make_chatbot):
    return make_chatbot(public_id="vinhuset", topics=["levering", "retur", "produkt"])


@pytest.fixture
def openai_server():
    with FakeOpenAI(api_key="sk-analysis-0123456789") as server:
        yield server


@pytest.fixture
def flowise_server():
    with FakeFlowise() as server:
        yield server


def analysis_flow(make_endpoint, make_flow, chatbot, *, kind: str, url: str, **endpoint):
    endpoint = make_endpoint(kind=kind, base_url=url, read_timeout=5, total_timeout=10, **endpoint)
    return make_flow(chatbot=chatbot, name="analysis", role=Flow.Role.ANALYSIS, endpoint=endpoint)


def openai_analysis_flow(make_endpoint, make_flow, chatbot, server):
    """The analysis flow on the fake OpenAI-compatible `server`, with the key it expects."""
    return analysis_flow(
        make_endpoint,
        make_flow,
        chatbot,
        kind=AIEndpoint.Kind.OPENAI,
        url=server.url + "/v1",
        api_key="sk-analysis-0123456789",
    )


# --- the analysis flow ----------------------------------------------------------------------------


def test_an_openai_analysis_flow_judges_the_turn_and_is_logged_as_an_ai_call(
    shop, make_conversation, make_turn, make_endpoint, make_flow, openai_server
):
    openai_analysis_flow(make_endpoint, make_flow, shop, openai_server)
    openai_server.scenario.answer = "Sure! " + json.dumps(VERDICT)
    conversation = make_conversation(shop)
    turn = make_turn(
        conversation=conversation,
        question="Hvordan returnerer jeg en vare?",
        answer="Du kan returnere inden 30 dage.",
        kind="openai",
    )

    analysis = turn_analyse(turn_id=str(turn.pk))

    assert (analysis.topic, analysis.score, analysis.sentiment) == ("retur", 4, "positive")
    assert analysis.analyser == "flow:analysis"
    assert analysis.outcome == "answered"
    request = openai_server.requests[-1].json
    system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
    assert "levering, retur, produkt, other" in system and "JSON" in system
    assert "Customer: Hvordan returnerer jeg en vare?" in user
    assert "Chatbot: Du kan returnere inden 30 dage." in user
    call = AICall.objects.get(turn=turn, purpose="analysis")
    assert call.status == "ok" and call.endpoint_kind == "openai" and call.flow == "analysis"
    assert call.total_tokens and call.latency_ms is not None
    assert json.loads(call.answer.removeprefix("Sure! ")) == VERDICT


def test_a_flowise_analysis_flow_gets_instructions_and_transcript_in_its_own_session(
    shop, make_conversation, make_turn, make_endpoint, make_flow, flowise_server
):
    analysis_flow(
        make_endpoint, make_flow, shop, kind=AIEndpoint.Kind.FLOWISE, url=flowise_server.url
    )
    flowise_server.scenario.answer = json.dumps(
        {"topic": "Levering", "score": 9, "sentiment": "negativ"}
    )
    conversation = make_conversation(shop)
    turn = make_turn(conversation=conversation, question="Hvor er min pakke?")

    analysis = turn_analyse(turn_id=str(turn.pk))

    # Topic names match case-insensitively; a score out of ten is scaled to 1-5.
    assert (analysis.topic, analysis.score, analysis.sentiment) == ("levering", 5, "negative")
    body = flowise_server.requests[-1].json
    assert "Customer: Hvor er min pakke?" in body["question"]
    assert "levering, retur, produkt" in body["question"]
    assert body["overrideConfig"]["sessionId"] != str(conversation.pk)


def test_a_topic_outside_the_list_becomes_other():
    verdict = parse_verdict(
        '{"topic": "weather", "score": "2", "sentiment": "neutral"}',
        topics=["levering", "retur"],
        flow_name="analysis",
    )
    assert (verdict.topic, verdict.score, verdict.sentiment) == ("other", 2, "neutral")
    assert verdict.details["raw_topic"] == "weather"
    assert parse_verdict("I cannot judge this.", topics=[], flow_name="analysis") is None


@pytest.mark.parametrize(
    ("knobs", "reason"),
    [
        ({"status": 401}, "failed: UPSTREAM_AUTH"),
        ({"answer": "I am not sure what you want."}, "gave no JSON"),
    ],
)
def test_a_failing_analysis_flow_falls_back_to_the_builtin_analyser(
    shop, make_conversation, make_turn, make_endpoint, make_flow, openai_server, knobs, reason
):
    openai_analysis_flow(make_endpoint, make_flow, shop, openai_server)
    openai_server.configure(**knobs)
    turn = make_turn(conversation=make_conversation(shop), question="Kan jeg returnere min vare?")

    analysis = turn_analyse(turn_id=str(turn.pk))

    assert analysis.analyser.startswith("builtin (flow analysis ")
    assert reason in analysis.analyser
    assert analysis.topic == "retur"  # keyword match of the builtin analyser
    call = AICall.objects.get(turn=turn, purpose="analysis")
    assert call.status == ("error" if "status" in knobs else "ok")


# --- the builtin analyser -------------------------------------------------------------------------


def test_the_builtin_analyser_takes_the_topic_from_the_tags_of_the_passages_behind_the_answer(
    shop, make_conversation, make_turn, make_kb, make_entry
):
    kb = make_kb(chatbot=shop)
    entry = make_entry(
        knowledge_base=kb, title="Fragt", text="Vi sender i morgen.", tags=["levering"]
    )
    turn = make_turn(
        conversation=make_conversation(shop),
        question="Hvornår kommer min ordre?",
        answer="Her er hvad vores hjælpesider siger …",
        sources=[
            {
                "pageContent": entry.text,
                "metadata": {"title": "Fragt", "entry_id": entry.pk, "score": 0.4},
            }
        ],
    )

    analysis = turn_analyse(turn_id=str(turn.pk))

    assert analysis.analyser == "builtin"
    assert analysis.topic == "levering"
    assert analysis.details["heuristic"] is True
    assert analysis.details["topic_from"] == "knowledge tags"
    assert analysis.outcome == "answered" and analysis.score == 4


def test_the_builtin_analyser_reads_topic_keywords_and_danish_and_english_sentiment():
    assert topic_of(
        topics=["levering", "retur"],
        question="Hvad koster leveringen?",
        source_tags=[],
        source_titles=[],
    ) == ("levering", "keywords")
    assert (
        topic_of(topics=["levering"], question="Hej", source_tags=[], source_titles=[])[0]
        == "other"
    )
    assert (
        topic_of(topics=[], question="x", source_tags=[["wine"]], source_titles=["Red"])[0]
        == "wine"
    )
    assert sentiment_of(["Tusind tak, det var perfekt!"])[0] == "positive"
    assert sentiment_of(["Jeg er virkelig skuffet, varen var ødelagt"])[0] == "negative"
    assert sentiment_of(["This is not good at all"])[0] == "negative"
    assert sentiment_of(["When do you open?"])[0] == "neutral"


def test_an_answer_from_the_builtin_answerer_that_found_nothing_is_unanswered(
    shop, make_conversation, make_turn
):
    turn = make_turn(
        conversation=make_conversation(shop),
        question="Sælger I biler?",
        answer="Det kan jeg desværre ikke finde svar på i vores hjælpesider.",
        sources=None,
    )
    analysis = turn_analyse(turn_id=str(turn.pk))
    assert analysis.outcome == "unanswered"
    assert analysis.score == 1


def test_a_failed_turn_is_unanswered_and_its_metrics_keep_the_error(
    shop, make_conversation, make_turn
):
    turn = make_turn(
        conversation=make_conversation(shop),
        question="Hello?",
        answer="",
        status="failed",
        error={"code": "UPSTREAM_TIMEOUT", "message": "…", "category": "network"},
        timings={"config_load_ms": 2, "routing_ms": 1, "total_ms": 30000},
    )
    analysis = turn_analyse(turn_id=str(turn.pk))
    assert analysis.outcome == "unanswered"
    metrics = TurnMetrics.objects.get(turn=turn)
    assert (metrics.status, metrics.error_code, metrics.error_category) == (
        "failed",
        "UPSTREAM_TIMEOUT",
        "network",
    )
    assert metrics.time_to_first_token_ms is None


def test_a_handoff_in_the_helpdesk_makes_the_outcome_handed_off(shop, make_conversation, make_turn):
    try:
        handoff = apps.get_model("helpdesk", "Handoff")
    except LookupError:
        pytest.skip("the helpdesk app has no Handoff model (yet)")
    conversation = make_conversation(shop)
    turn = make_turn(conversation=conversation, question="Jeg vil tale med et menneske")
    try:
        handoff.objects.create(conversation=conversation, reason="customer asked")
    except Exception as exc:  # its required fields are the helpdesk's business
        pytest.skip(f"cannot create a helpdesk Handoff here: {exc}")
    analysis = turn_analyse(turn_id=str(turn.pk), force=True)
    assert analysis.outcome == "handed_off"
    assert analysis.handoff_reason


# --- idempotency, chunks, re-analysis ------------------------------------------------------------------


def test_analysing_a_turn_twice_keeps_one_analysis_one_metrics_row_and_its_chunks_once(
    shop, make_conversation, make_turn
):
    sources = [
        {"pageContent": "Returns within 30 days.", "metadata": {"title": "Returns", "score": 0.8}},
        {"pageContent": "Shipping is free.", "metadata": {"source": "shipping.pdf"}},
    ]
    turn = make_turn(conversation=make_conversation(shop), question="retur?", sources=sources)

    first = turn_analyse(turn_id=str(turn.pk))
    second = turn_analyse(turn_id=str(turn.pk))

    assert first.pk == second.pk
    assert ConversationAnalysis.objects.filter(turn=turn).count() == 1
    assert TurnMetrics.objects.filter(turn=turn).count() == 1
    chunks = list(ContextChunk.objects.filter(message=turn.assistant_message).order_by("position"))
    assert [(c.source, c.score, c.page_content) for c in chunks] == [
        ("Returns", 0.8, "Returns within 30 days."),
        ("shipping.pdf", None, "Shipping is free."),
    ]


def test_re_analysis_replaces_the_analysis_of_a_turn(shop, make_conversation, make_turn):
    turn = make_turn(conversation=make_conversation(shop), question="Hvad med levering?")
    first = turn_analyse(turn_id=str(turn.pk))
    assert first.topic == "levering"
    shop.topics = ["fragt"]
    shop.save()
    redone = turn_analyse(turn_id=str(turn.pk), force=True)
    assert redone.pk == first.pk
    assert redone.topic == "other"
    assert ConversationAnalysis.objects.count() == 1


def test_the_management_command_re_analyses_a_date_range(
    shop, make_conversation, make_turn, capsys
):
    turn = make_turn(conversation=make_conversation(shop), question="Hvad med levering?")
    turn_analyse(turn_id=str(turn.pk))
    ConversationAnalysis.objects.update(topic="stale")
    day = turn.finished_at.date().isoformat()
    call_command("reanalyse_turns", "--from", day, "--to", day, "--chatbot", shop.public_id)
    assert "Re-analysed 1 turns" in capsys.readouterr().out
    assert ConversationAnalysis.objects.get().topic == "levering"


def test_an_unfinished_or_unknown_turn_is_not_analysed(shop, make_conversation):
    from conversations import services

    turn, _ = services.message_submit(conversation=make_conversation(shop), text="hi")
    assert turn_analyse(turn_id=str(turn.pk)) is None
    assert turn_analyse(turn_id="00000000-0000-0000-0000-000000000000") is None
    assert not ConversationAnalysis.objects.exists()


# --- the hook -------------------------------------------------------------------------------------


def test_a_finished_turn_is_queued_for_analysis_on_the_analytics_queue(
    shop, make_conversation, make_turn, django_capture_on_commit_callbacks
):
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("analytics")
    with django_capture_on_commit_callbacks(execute=True):
        turn = make_turn(conversation=make_conversation(shop), question="Hej")
    messages = [json.loads(raw) for raw in broker.lrange("analytics", 0, -1)]
    broker.delete("analytics")
    queued = [
        m["headers"] for m in messages if m["headers"]["task"] == "analytics.tasks.analyse_turn"
    ]
    assert len(queued) == 1
    assert str(turn.pk) in queued[0]["argsrepr"]
