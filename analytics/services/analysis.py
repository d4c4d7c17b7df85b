"""Analysis of a finished turn: its metrics, the passages behind it, and the verdict on it.

Runs in a Celery task on the `analytics` queue after the turn has been answered, so nothing
here ever delays a customer. Every step is idempotent per turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Iterator
from typing import Any, cast

from django.conf import settings

from aiclients import (
    CallStats,
    RetryPolicy,
    Timeouts,
    UpstreamError,
    UpstreamEvent,
    UpstreamRequest,
    make_async_client,
    stream_flowise,
    stream_openai,
)
from analytics.analyser import (
    Verdict,
    analysis_instructions,
    builtin_verdict,
    parse_verdict,
    transcript_text,
)
from analytics.models import ContextChunk, ConversationAnalysis
from analytics.services.metrics import turn_metrics_record
from chatbots.config_types import ChatbotConfig, FlowConfig
from chatbots.flow_router import flow_by_role
from chatbots.models import KnowledgeEntry
from chatbots.secrets import decrypt
from chatbots.selectors import chatbot_config_get
from chatbots.services import flow_prompt_render
from conversations.models import AICall, Message, Turn
from conversations.turn_types import HistoryMessage
from helpdesk.selectors import handoff_for

logger = logging.getLogger(__name__)


# --- context chunks ---------------------------------------------------------------------------


def _chunk_source(metadata: dict[str, Any]) -> str:
    for key in ("title", "source", "url", "filename", "file", "name"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value[:500]
    return ""


def _chunk_score(metadata: dict[str, Any]) -> float | None:
    value = metadata.get("score")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def context_chunks_store(*, message: Message) -> int:
    """Store the passages of an assistant message as rows; returns how many are stored now."""
    sources = (message.metadata or {}).get("sources") or []
    rows = []
    for position, source in enumerate(sources):
        if not isinstance(source, dict):
            continue
        raw = source.get("metadata")
        metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
        rows.append(
            ContextChunk(
                message=message,
                conversation_id=message.conversation_id,
                position=position,
                page_content=str(source.get("pageContent") or ""),
                source=_chunk_source(metadata),
                score=_chunk_score(metadata),
                metadata=metadata,
            )
        )
    # ignore_conflicts: a re-delivered task finds (message, position) taken and adds nothing.
    ContextChunk.objects.bulk_create(rows, ignore_conflicts=True)
    return ContextChunk.objects.filter(message=message).count()


# --- outcome ----------------------------------------------------------------------------------


def turn_outcome(*, turn: Turn, answer_call: AICall | None) -> tuple[str, str]:
    """(outcome, handoff reason): handed off beats everything; failed or empty is unanswered."""
    handed_off, reason = handoff_for(conversation_id=turn.conversation_id)
    if handed_off:
        return ConversationAnalysis.Outcome.HANDED_OFF, reason
    message = turn.assistant_message
    if turn.status != Turn.Status.COMPLETED or message is None or not message.content.strip():
        return ConversationAnalysis.Outcome.UNANSWERED, ""
    sources = (message.metadata or {}).get("sources") or []
    if answer_call is not None and answer_call.endpoint_kind == "builtin" and not sources:
        # The builtin answerer found no passage and said so.
        return ConversationAnalysis.Outcome.UNANSWERED, ""
    return ConversationAnalysis.Outcome.ANSWERED, ""


# --- the analysis flow ------------------------------------------------------------------------


def _flow_request(
    *, flow: FlowConfig, config: ChatbotConfig, transcript: str, instructions: str
) -> UpstreamRequest:
    endpoint = flow["endpoint"]
    rendered = flow_prompt_render(
        config=config,
        flow=flow,
        bot={"topics": ", ".join(config["topics"])},
        turn={"transcript": transcript, "instructions": instructions},
    )
    system_prompt = instructions if rendered is None else rendered
    flowise = endpoint["kind"] == "flowise"
    return UpstreamRequest(
        base_url=endpoint["base_url"],
        api_key=decrypt(endpoint["api_key_stored"]),
        target=flow["target"],
        # Flowise has no system message on its API: the instructions travel with the question.
        question=f"{system_prompt}\n\n{transcript}" if flowise else transcript,
        system_prompt=None if flowise else system_prompt,
        # A session of its own, so the analysis never enters the chat's memory in Flowise.
        session_id=str(uuid.uuid4()),
        chat_id=str(uuid.uuid4()),
    )


def _call_flow(
    flow: FlowConfig, req: UpstreamRequest
) -> tuple[str, dict[str, Any], UpstreamError | None]:
    """Run one analysis call to the end: (answer, AICall fields, the error if it failed)."""
    endpoint = flow["endpoint"]
    stats = CallStats()
    record: dict[str, Any] = {
        "endpoint_kind": endpoint["kind"],
        "endpoint_name": endpoint["name"][:100],
        "flow": flow["name"][:50],
        "purpose": "analysis",
        "question": req.question,
        "model": (flow["target"] or "")[:200],
        "status": AICall.Status.OK,
    }
    parts: list[str] = []
    started = time.monotonic()

    async def run() -> None:
        client = make_async_client(
            max_connections=2,
            connect_timeout=endpoint["connect_timeout"],
            read_timeout=endpoint["read_timeout"],
            trust_env=settings.UPSTREAM_TRUST_ENV,
        )
        timeouts = Timeouts(
            connect=endpoint["connect_timeout"],
            read_idle=endpoint["read_timeout"],
            total=min(endpoint["total_timeout"], settings.ANALYSIS_TIMEOUT_SECONDS),
        )
        retry = RetryPolicy(max_retries=settings.UPSTREAM_MAX_RETRIES)
        stream = stream_flowise if endpoint["kind"] == "flowise" else stream_openai
        async with client:
            events = stream(client, req, timeouts=timeouts, retry=retry, stats=stats)
            # Both clients' streams are async generators (typed as iterators): closable.
            async with contextlib.aclosing(cast(AsyncGenerator[UpstreamEvent, None], events)):
                async for event in events:
                    if event.kind == "token":
                        if stats.first_token_at is None:
                            stats.first_token_at = time.monotonic()
                        parts.append(event.text)

    error: UpstreamError | None = None
    try:
        asyncio.run(run())
    except UpstreamError as err:
        error = err
        record.update(status=AICall.Status.ERROR, error_code=err.code[:50])
    record.update(
        answer="".join(parts),
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        total_tokens=stats.total_tokens,
        latency_ms=round((time.monotonic() - started) * 1000),
        first_token_ms=(
            round((stats.first_token_at - started) * 1000) if stats.first_token_at else None
        ),
        attempts=max(1, stats.attempts),
        http_status=stats.status_code,
    )
    if stats.model:
        record["model"] = stats.model[:200]
    return "".join(parts), record, error


def _record_call(*, turn: Turn, record: dict[str, Any]) -> None:
    AICall.objects.create(
        chatbot_id=turn.conversation.chatbot_id,
        conversation_id=turn.conversation_id,
        turn=turn,
        user_id=turn.conversation.user_id,
        client_ip=turn.client_ip,
        **record,
    )


def _flow_verdict(
    *, turn: Turn, flow: FlowConfig, config: ChatbotConfig, transcript: str
) -> Verdict | str:
    """The analysis flow's verdict, or why there is none (the caller falls back)."""
    req = _flow_request(
        flow=flow,
        config=config,
        transcript=transcript,
        instructions=analysis_instructions(config["topics"]),
    )
    text, record, error = _call_flow(flow, req)
    _record_call(turn=turn, record=record)
    if error is not None:
        logger.warning("turn %s: analysis flow failed (%s)", turn.pk, error.code)
        return f"flow {flow['name']} failed: {error.code}"
    verdict = parse_verdict(text, topics=config["topics"], flow_name=flow["name"])
    if verdict is None:
        return f"flow {flow['name']} gave no JSON"
    return verdict


# --- the verdict ------------------------------------------------------------------------------


def _transcript(turn: Turn) -> list[HistoryMessage]:
    last = turn.assistant_message.sequence if turn.assistant_message else turn.user_message.sequence
    rows = list(
        Message.objects.filter(conversation_id=turn.conversation_id, sequence__lte=last)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("-sequence")
        .values("role", "content")[: settings.ANALYSIS_TRANSCRIPT_MESSAGES]
    )
    rows.reverse()
    return rows


def _source_hints(message: Message | None) -> tuple[list[list[str]], list[str]]:
    """Tags and titles of the knowledge entries behind an answer, best first."""
    if message is None:
        return [], []
    sources = [s for s in (message.metadata or {}).get("sources") or [] if isinstance(s, dict)]
    titles: list[str] = []
    entry_ids: list[int] = []
    for source in sources:
        raw = source.get("metadata")
        metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if metadata.get("title"):
            titles.append(str(metadata["title"]))
        if isinstance(metadata.get("entry_id"), int):
            entry_ids.append(metadata["entry_id"])
    tags_by_id = dict(
        KnowledgeEntry.objects.filter(
            pk__in=entry_ids, knowledge_base__chatbot_id=message.conversation.chatbot_id
        ).values_list("pk", "tags")
    )
    tags = [list(tags_by_id.get(i) or []) for i in entry_ids]
    for source in sources:  # Flowise documents may carry tags or a topic in their metadata
        raw = source.get("metadata")
        metadata = raw if isinstance(raw, dict) else {}
        extra = metadata.get("tags") or metadata.get("topic")
        if isinstance(extra, str):
            tags.append([extra])
        elif isinstance(extra, list):
            tags.append([str(t) for t in extra])
    return tags, titles


def turn_verdict(*, turn: Turn, outcome: str) -> Verdict:
    """The analysis flow's judgement when the bot has one that answers, else the heuristic."""
    config = chatbot_config_get(public_id=turn.conversation.chatbot.public_id)
    # Without its configuration (the bot deleted meanwhile) no flow runs: its row's topics.
    topics = config["topics"] if config else list(turn.conversation.chatbot.topics)
    messages = _transcript(turn)
    fallback_reason = ""
    flow = flow_by_role(config, "analysis") if config else None
    if config and flow is not None and flow["endpoint"]["kind"] in ("flowise", "openai"):
        result = _flow_verdict(
            turn=turn, flow=flow, config=config, transcript=transcript_text(messages)
        )
        if isinstance(result, Verdict):
            return result
        fallback_reason = result
    tags, titles = _source_hints(turn.assistant_message)
    return builtin_verdict(
        topics=topics,
        question=turn.user_message.content,
        customer_texts=[m["content"] for m in messages if m["role"] == "user"],
        source_tags=tags,
        source_titles=titles,
        outcome=outcome,
        reason=fallback_reason,
    )


def turn_analyse(*, turn_id: str, force: bool = False) -> ConversationAnalysis | None:
    """Metrics, context chunks and the analysis of a finished turn. Safe to run twice.

    Returns None for a turn that does not exist or has not finished. With `force`, an existing
    analysis is replaced (re-analysis); otherwise it is returned untouched.
    """
    turn = (
        Turn.objects.select_related("conversation__chatbot", "assistant_message", "user_message")
        .filter(pk=turn_id)
        .first()
    )
    if turn is None or not turn.is_finished:
        return None
    if turn.conversation.preview is not None:
        return None  # a staff preview (chatbots/preview.py) is nobody's analytics
    turn_metrics_record(turn=turn)
    if turn.assistant_message is not None:
        context_chunks_store(message=turn.assistant_message)
    existing = ConversationAnalysis.objects.filter(turn=turn).first()
    if existing is not None and not force:
        return existing
    answer_call = turn.ai_calls.filter(purpose="answer").order_by("-pk").first()
    outcome, reason = turn_outcome(turn=turn, answer_call=answer_call)
    verdict = turn_verdict(turn=turn, outcome=outcome)
    row = ConversationAnalysis(
        turn=turn,
        conversation_id=turn.conversation_id,
        chatbot_id=turn.conversation.chatbot_id,
        topic=verdict.topic,
        score=verdict.score,
        sentiment=verdict.sentiment,
        outcome=outcome,
        handoff_reason=reason,
        analyser=verdict.analyser,
        details=verdict.details,
        turn_finished_at=turn.finished_at,
    )
    # The unique turn decides races between two deliveries: the first insert wins, and a
    # re-analysis (force) overwrites in the same statement.
    fields = ["topic", "score", "sentiment", "outcome", "handoff_reason", "analyser", "details"]
    ConversationAnalysis.objects.bulk_create(
        [row],
        update_conflicts=force,
        ignore_conflicts=not force,
        unique_fields=["turn"] if force else None,
        update_fields=[*fields, "updated_at"] if force else None,
    )
    return ConversationAnalysis.objects.get(turn=turn)


def turns_in_range(
    *, date_from: dt.datetime, date_to: dt.datetime, chatbot_id: int | None = None
) -> Iterator[str]:
    """Ids of the turns finished in [date_from, date_to), oldest first."""
    turns = Turn.objects.filter(
        status__in=Turn.FINISHED,
        finished_at__gte=date_from,
        finished_at__lt=date_to,
        conversation__preview__isnull=True,
    )
    if chatbot_id is not None:
        turns = turns.filter(conversation__chatbot_id=chatbot_id)
    for turn_id in turns.order_by("finished_at").values_list("pk", flat=True).iterator(2000):
        yield str(turn_id)


def analyses_rerun(
    *, date_from: dt.datetime, date_to: dt.datetime, chatbot_id: int | None = None
) -> int:
    """Re-analyse every turn finished in the range, here and now; returns how many."""
    done = 0
    for turn_id in turns_in_range(date_from=date_from, date_to=date_to, chatbot_id=chatbot_id):
        if turn_analyse(turn_id=turn_id, force=True) is not None:
            done += 1
    return done
