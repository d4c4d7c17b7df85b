"""Read side of analytics: processing-metric percentiles, the conversation index, the dashboard,
transcripts and exports."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import DatabaseError, connection, transaction
from django.db.models import Avg, Count, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate

from analytics.models import (
    INDEX_SEARCH_CONFIG,
    ContextChunk,
    ConversationAnalysis,
    ConversationSummary,
    SyncState,
    TurnMetrics,
)
from conversations.models import AICall, Conversation, Message, Turn
from helpdesk.models import ConversationRating
from quality.selectors import feedback_figures

# --- processing metrics -------------------------------------------------------------------------

METRIC_PHASES = TurnMetrics.PHASES
PERCENTILES = (0.5, 0.95, 0.99)


def processing_metrics(
    *,
    since: dt.datetime,
    until: dt.datetime,
    chatbot_id: int | None = None,
    chatbot_ids: list[int] | None = None,
) -> list[dict[str, Any]]:
    """p50/p95/p99 of every phase per chatbot and flow, with counts and error rate.

    Percentiles are computed in PostgreSQL (percentile_cont, NULLs ignored), so a phase that
    did not happen in a turn (no routing, no order look-up) does not drag its figures to zero.
    """
    columns = ",\n".join(
        f"percentile_cont(%(pct)s::float8[]) WITHIN GROUP (ORDER BY m.{name}) AS {name}"
        for name in (*METRIC_PHASES, "tokens_per_second")
    )
    where = "m.created_at >= %(since)s AND m.created_at < %(until)s"
    if chatbot_id is not None:
        where += " AND m.chatbot_id = %(chatbot_id)s"
    if chatbot_ids is not None:
        # The caller's shops' chatbots only (accounts.access); None means every chatbot.
        where += " AND m.chatbot_id = ANY(%(chatbot_ids)s)"
    sql = f"""
        SELECT c.public_id, m.flow, count(*) AS turns,
               count(*) FILTER (WHERE m.status = 'failed') AS failed,
               count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled,
               sum(m.total_tokens) AS tokens,
               {columns}
        FROM analytics_turnmetrics m
        JOIN chatbots_chatbot c ON c.id = m.chatbot_id
        WHERE {where}
        GROUP BY c.public_id, m.flow
        ORDER BY c.public_id, m.flow
    """  # only our own column names are interpolated above
    params: dict[str, Any] = {
        "pct": list(PERCENTILES),
        "since": since,
        "until": until,
        "chatbot_id": chatbot_id,
        "chatbot_ids": chatbot_ids,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [_metrics_group(row) for row in cursor.fetchall()]


def _percentiles(values: list[float] | None) -> dict[str, float] | None:
    """{"p50": …, "p95": …, "p99": …} rounded to 0.1; None when the phase never happened."""
    if values is None:
        return None
    return {f"p{round(p * 100)}": round(v, 1) for p, v in zip(PERCENTILES, values, strict=True)}


def _metrics_group(row: tuple) -> dict[str, Any]:
    """One (chatbot, flow) row of `processing_metrics`' query as the API shows it."""
    public_id, flow, turns, failed, cancelled, tokens, *percentiles = row
    figures = {
        name: _percentiles(values)
        for name, values in zip((*METRIC_PHASES, "tokens_per_second"), percentiles, strict=True)
    }
    return {
        "chatbot": public_id,
        "flow": flow,
        "turns": turns,
        "failed": failed,
        "cancelled": cancelled,
        "error_rate": round(failed / turns, 4) if turns else 0.0,
        "tokens": tokens,
        "tokens_per_second": figures.pop("tokens_per_second"),
        "phases": figures,
    }


def execution_statistics(
    *,
    since: dt.datetime,
    until: dt.datetime,
    chatbot_id: int | None = None,
    chatbot_ids: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Sequential against parallel routing (seed 000's execution statistics), per mode.

    For turns that had a router: how long the router made the customer wait (routing_ms,
    p50/p95); in parallel mode, how often the main flow started beside the router served the
    answer ("released": the router's time overlapped the answer, so that much was saved against
    running one after the other) or was stopped unused ("aborted": a wasted main-flow call).
    The mode and outcome come from the turn's route, written by the runner.
    """
    where = "m.created_at >= %(since)s AND m.created_at < %(until)s AND m.routing_ms IS NOT NULL"
    if chatbot_id is not None:
        where += " AND m.chatbot_id = %(chatbot_id)s"
    if chatbot_ids is not None:
        where += " AND m.chatbot_id = ANY(%(chatbot_ids)s)"
    sql = f"""
        SELECT coalesce(t.route->>'mode', 'sequential') AS mode,
               count(*) AS routed_turns,
               percentile_cont(ARRAY[0.5, 0.95]::float8[])
                   WITHIN GROUP (ORDER BY m.routing_ms) AS router_wait,
               count(*) FILTER (WHERE t.route->>'parallel' = 'released') AS released,
               count(*) FILTER (WHERE t.route->>'parallel' = 'aborted') AS aborted,
               sum(m.routing_ms) FILTER (WHERE t.route->>'parallel' = 'released') AS saved_ms
        FROM analytics_turnmetrics m
        JOIN conversations_turn t ON t.id = m.turn_id
        WHERE {where}
        GROUP BY 1
        ORDER BY 1
    """  # only fixed text is interpolated above
    params = {"since": since, "until": until, "chatbot_id": chatbot_id, "chatbot_ids": chatbot_ids}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    out = []
    for mode, routed, wait, released, aborted, saved_ms in rows:
        parallel = mode == "parallel"
        out.append(
            {
                "routing_mode": mode,
                "routed_turns": routed,
                "router_wait_ms": (
                    {"p50": round(wait[0], 1), "p95": round(wait[1], 1)} if wait else None
                ),
                "main_flow_released": released if parallel else None,
                "main_flow_calls_aborted": aborted if parallel else None,
                "time_saved_ms": (int(saved_ms or 0) if parallel else None),
                "time_saved_per_released_turn_ms": (
                    round((saved_ms or 0) / released, 1) if parallel and released else None
                ),
            }
        )
    return out


# --- the conversation index -----------------------------------------------------------------------


def index_state() -> SyncState | None:
    return SyncState.objects.filter(name=SyncState.CONVERSATION_INDEX).first()


def _iso_sql(column: str) -> str:
    """SQL for Python's `isoformat()` of a time in UTC, "Z" for "+00:00": the fraction of a
    second only when there is one, and then all six digits."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, CASE WHEN date_trunc('second', {utc}) = {utc} "
        """THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)"""
    )


# One indexed conversation as the API shows it, built by PostgreSQL: a page is one JSON text
# to parse, where converting 50 rows of times, ids and arrays in Python cost more than the
# query (bench/conversation_index.py). inet's own text form is the address Django reads.
SUMMARY_JSON_SQL = f"""json_build_object(
    'conversationId', s.conversation_id::text, 'chatbot', c.public_id, 'username', s.username,
    'firstMessageTime', {_iso_sql("s.first_message_time")},
    'lastMessageTime', {_iso_sql("s.last_message_time")},
    'messageCount', s.message_count, 'firstQuestion', s.first_question,
    'lastQuestion', s.last_question, 'model', s.model, 'clientIp', s.client_ip,
    'totalTokens', s.total_tokens, 'createdAt', {_iso_sql("s.created_at")},
    'updatedAt', {_iso_sql("s.updated_at")}, 'messageIds', s.message_ids::text[])"""
ORDER_SQL = "s.last_message_time DESC, s.conversation_id DESC"
# With many matches, a search page is first looked for among the newest conversations: twice
# as many as should hold the rows wanted (offset + size), given how common the words are.
SEARCH_WINDOW_FACTOR = 2
# A one-word search with more matches than the count limit walks the recency index testing
# each row (the planner's own way) when the word's share says the page is within this many
# rows: cheaper than reading every match's entry from the full-text index.
SEARCH_WALK_ROWS = 1000


# Words in more than this share of conversations are searched the planner's own way (it
# scans recent conversations testing each, and finds a page within a few hundred rows).
COMMON_WORD_SHARE = 0.2
_word_stats: dict[str, Any] = {"at": 0.0, "shares": {}}


def _common_word_share(q: str) -> float:
    """How common the searched words are, from PostgreSQL's statistics of the index column
    (refreshed by ANALYZE; read at most once a minute). 0 when any word is not common."""
    if time.monotonic() - _word_stats["at"] > 60:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
                "WHERE tablename = 'analytics_conversationsummary' AND attname = 'search'"
            )
            row = cursor.fetchone()
        shares = dict(zip(row[0], row[1], strict=False)) if row and row[0] else {}
        _word_stats.update(at=time.monotonic(), shares=shares)
    words = [w for w in re.findall(r"\w+", q.lower()) if w != "or"]
    shares = _word_stats["shares"]
    return min((shares.get(w, 0.0) for w in words), default=0.0)


@contextlib.contextmanager
def _bitmap_scans_only():
    """Plan full-text searches through the GIN index (and btree ranges) only.

    PostgreSQL misjudges how many rows match a word, and then either scans the table or walks
    the recency index testing every row (measured: 15-60 ms at 100,000 conversations for words
    in 1-5% of them); a bitmap scan reads only the matching rows (1-5 ms). Inside a caller's
    transaction the settings are put back afterwards (SET LOCAL outlives a savepoint).
    """
    nested = connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
        yield
        if nested:
            cursor.execute(
                "SET LOCAL enable_seqscan = DEFAULT; SET LOCAL enable_indexscan = DEFAULT"
            )


def _index_where(
    *,
    username: str | None,
    chatbot_id: int | None,
    chatbot_ids: list[int] | None,
    model: str | None,
    q: str | None,
    date_from: dt.datetime | None,
    date_to: dt.datetime | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause over the index (`s`) and its parameters; a filter left empty is not
    applied. Written by hand: compiling the ORM's query cost more than running it."""
    filters: list[tuple[str, Any]] = []
    if username:
        filters.append(("s.username = %s", username))
    if chatbot_id is not None:
        filters.append(("s.chatbot_id = %s", chatbot_id))
    if chatbot_ids is not None:
        # The caller's shops' chatbots only (accounts.access); None means every chatbot.
        filters.append(("s.chatbot_id = ANY(%s)", list(chatbot_ids)))
    if model:
        filters.append(("s.model = %s", model))
    if q:
        # Only our own constant is interpolated; the words are a parameter.
        search = f"s.search @@ websearch_to_tsquery('{INDEX_SEARCH_CONFIG}'::regconfig, %s)"
        filters.append((search, q))
    if date_from is not None:
        filters.append(("s.last_message_time >= %s", date_from))
    if date_to is not None:
        filters.append(("s.last_message_time <= %s", date_to))
    where = " AND ".join(clause for clause, _value in filters) or "TRUE"
    return where, [value for _clause, value in filters]


def _count_sql(where: str) -> str:
    """Matches up to the parameter after the filters' (the count limit + 1)."""
    return (
        "SELECT count(*) FROM "
        f"(SELECT FROM analytics_conversationsummary s WHERE {where} LIMIT %s) AS capped"
    )


def _page_sql(where: str) -> str:
    """The page as one JSON array (parameters: the filters', size, offset). Its ids come from
    the indexes alone (rows skipped by the offset are never read from the table)."""
    return f"""
        SELECT coalesce(json_agg({SUMMARY_JSON_SQL} ORDER BY {ORDER_SQL}), '[]')::text
        FROM (
            SELECT s.conversation_id FROM analytics_conversationsummary s WHERE {where}
            ORDER BY {ORDER_SQL} LIMIT %s OFFSET %s
        ) AS page
        JOIN analytics_conversationsummary s USING (conversation_id)
        JOIN chatbots_chatbot c ON c.id = s.chatbot_id
    """


def _fetch(sql: str, params: list[Any]) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _count(where: str, params: list[Any]) -> int:
    return _fetch(_count_sql(where), [*params, settings.CONVERSATION_INDEX_COUNT_LIMIT + 1])[0]


def _page(where: str, params: list[Any], *, offset: int, size: int) -> list[dict[str, Any]]:
    return json.loads(_fetch(_page_sql(where), [*params, size, offset])[0])


def _window_page(
    where: str, params: list[Any], *, offset: int, size: int, word_share: float, all_rows: int
) -> list[dict[str, Any]] | None:
    """The page from among the newest conversations only, when that window holds all of it
    (the full-text bitmap intersected with a recency range instead of sorting every match);
    None when there is no window to try or it holds too few. More matches than the count
    limit: at least that share of conversations match, more if the statistics say so. The
    window's start assumes activity spread evenly between the oldest and newest conversation;
    too narrow a guess only costs the fallback."""
    matching = max(word_share, settings.CONVERSATION_INDEX_COUNT_LIMIT / all_rows)
    share = SEARCH_WINDOW_FACTOR * (offset + size) / matching / all_rows
    if share >= 1:
        return None
    span = ConversationSummary.objects.aggregate(
        oldest=Min("last_message_time"), newest=Max("last_message_time")
    )
    if span["newest"] is None:
        return None
    cutoff = span["newest"] - (span["newest"] - span["oldest"]) * share
    with _bitmap_scans_only():
        found = _page(
            f"{where} AND s.last_message_time >= %s", [*params, cutoff], offset=offset, size=size
        )
    return found if len(found) == size else None


def _search_page_rows(
    where: str,
    params: list[Any],
    *,
    q: str,
    word_share: float,
    offset: int,
    size: int,
    counts: dict[str, int],
) -> tuple[int, list[dict[str, Any]] | None]:
    """(matches up to the count limit + 1, the page or None when it is to be read the planner's
    own way) of a search whose words are not common (`word_share`: _common_word_share). The
    count and a page of few matches are read through bitmap scans. With many matches, a
    one-word search whose share puts the page within SEARCH_WALK_ROWS rows walks the recency
    index; others try a window of recent conversations first."""
    with _bitmap_scans_only():
        counted = _count(where, params)
        if counted <= settings.CONVERSATION_INDEX_COUNT_LIMIT:
            return counted, _page(where, params, offset=offset, size=size)
    one_word = re.fullmatch(r"\w+", q.strip()) is not None
    if one_word and word_share and (offset + size) / word_share <= SEARCH_WALK_ROWS:
        return counted, None
    found = None
    if counts.get("all"):
        found = _window_page(
            where, params, offset=offset, size=size, word_share=word_share, all_rows=counts["all"]
        )
    if found is None:
        with _bitmap_scans_only():
            found = _page(where, params, offset=offset, size=size)
    return counted, found


def conversation_index_page(
    *,
    page: int = 1,
    size: int = 50,
    username: str | None = None,
    chatbot_id: int | None = None,
    chatbot_ids: list[int] | None = None,
    model: str | None = None,
    q: str | None = None,
    date_from: dt.datetime | None = None,
    date_to: dt.datetime | None = None,
    state: SyncState | None = None,
) -> dict[str, Any]:
    """One page of indexed conversations, newest activity first (seed 004's list, plus search
    and filters). The date range applies to the last activity, the order of the list.

    `total` is exact for the whole index and per chatbot (counts kept by the sync). With other
    filters it is exact up to CONVERSATION_INDEX_COUNT_LIMIT matches and then says so
    (`totalRelation: "gte"`), like Elasticsearch's `track_total_hits`: counting every one of
    100,000 matches would cost many times the page itself.
    """
    where, params = _index_where(
        username=username,
        chatbot_id=chatbot_id,
        chatbot_ids=chatbot_ids,
        model=model,
        q=q,
        date_from=date_from,
        date_to=date_to,
    )
    offset = (page - 1) * size
    limit = settings.CONVERSATION_INDEX_COUNT_LIMIT
    only_chatbot = not (username or model or q or date_from or date_to or chatbot_ids is not None)
    counts = (state.counts or {}) if state is not None else {}
    found: list[dict[str, Any]] | None = None
    if only_chatbot and "all" in counts:
        counted = counts["all"] if chatbot_id is None else counts.get(str(chatbot_id), 0)
    elif q and (word_share := _common_word_share(q)) < COMMON_WORD_SHARE:
        counted, found = _search_page_rows(
            where, params, q=q, word_share=word_share, offset=offset, size=size, counts=counts
        )
    else:  # the planner's own way: the count and the page in one statement
        counted, text = _fetch(
            f"SELECT ({_count_sql(where)}), ({_page_sql(where)})",
            [*params, limit + 1, *params, size, offset],
        )
        found = json.loads(text)
    if found is None:  # the planner's own way (here it walks the recency index)
        found = _page(where, params, offset=offset, size=size)
    exact = only_chatbot and "all" in counts
    total = counted if exact else min(counted, limit)
    return {
        "conversations": found,
        "total": total,
        "totalRelation": "gte" if not exact and counted > limit else "eq",
        "page": page,
        "size": size,
        "totalPages": -(-total // size),
    }


def conversation_index_stats() -> dict[str, Any]:
    state = index_state()
    count = ConversationSummary.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('analytics_conversationsummary')")
        size = cursor.fetchone()[0]
    return {
        "indexExists": bool(state and state.exists),
        "conversationCount": count,
        "indexSize": size,
        "documentCount": count,
        "watermark": state.watermark if state else 0,
        "pendingCalls": len(state.pending_ids) if state else 0,
        "lastSync": (state.last_result or None) if state else None,
    }


def conversation_calls(*, conversation_id: Any) -> list[dict[str, Any]]:
    """Every AI call of a conversation, oldest first (seed 004's messages of a conversation)."""
    calls = (
        AICall.objects.filter(conversation_id=conversation_id)
        .exclude(purpose="analysis")
        .order_by("created_at", "id")
        .values(
            "id",
            "created_at",
            "question",
            "answer",
            "model",
            "flow",
            "purpose",
            "endpoint_kind",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "latency_ms",
            "first_token_ms",
            "status",
            "error_code",
            "client_ip",
            "user_id",
            "chatbot__public_id",
        )
    )
    return [
        {
            "id": str(c["id"]),
            "timestamp": c["created_at"].isoformat().replace("+00:00", "Z"),
            "userQuestion": c["question"],
            "response": c["answer"],
            "model": c["model"],
            "flow": c["flow"],
            "purpose": c["purpose"],
            "endpointKind": c["endpoint_kind"],
            "promptTokens": c["prompt_tokens"],
            "completionTokens": c["completion_tokens"],
            "totalTokens": c["total_tokens"],
            "latencyMs": c["latency_ms"],
            "firstTokenMs": c["first_token_ms"],
            "status": c["status"],
            "errorCode": c["error_code"],
            "clientIp": c["client_ip"],
            "username": c["user_id"],
            "chatbot": c["chatbot__public_id"],
        }
        for c in calls
    ]


# --- latest analysis of each conversation ---------------------------------------------------------


def latest_analyses(conversations: QuerySet | None = None) -> QuerySet:
    """The newest analysis of each conversation (optionally of some conversations only).

    A conversation is counted once, as it stood after its last analysed turn.
    """
    analyses = ConversationAnalysis.objects.all()
    if conversations is not None:
        analyses = analyses.filter(conversation__in=conversations.values("pk"))
    latest_ids = analyses.order_by("conversation_id", "-created_at", "-pk").distinct(
        "conversation_id"
    )
    return ConversationAnalysis.objects.filter(pk__in=latest_ids.values("pk"))


def conversations_with_latest(queryset: QuerySet) -> QuerySet:
    """Conversations annotated with their latest analysis' fields (one indexed look-up each)."""
    newest = ConversationAnalysis.objects.filter(conversation=OuterRef("pk")).order_by(
        "-created_at", "-pk"
    )
    return queryset.annotate(
        latest_topic=Subquery(newest.values("topic")[:1]),
        latest_score=Subquery(newest.values("score")[:1]),
        latest_sentiment=Subquery(newest.values("sentiment")[:1]),
        latest_outcome=Subquery(newest.values("outcome")[:1]),
        latest_handoff_reason=Subquery(newest.values("handoff_reason")[:1]),
        latest_analyser=Subquery(newest.values("analyser")[:1]),
        latest_analysed_at=Subquery(newest.values("created_at")[:1]),
    )


# --- helpdesk, read defensively -------------------------------------------------------------------


def helpdesk_model(name: str):
    try:
        return apps.get_model("helpdesk", name)
    except LookupError:
        return None


def _rating_field(model) -> str | None:
    for name in ("rating", "score", "stars", "value"):
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        return name
    return None


def ratings_of(conversations: QuerySet) -> list[dict[str, Any]] | None:
    """Rating value -> count for these conversations, or None without helpdesk ratings."""
    model = helpdesk_model("ConversationRating")
    field = _rating_field(model) if model is not None else None
    if field is None:
        return None
    try:
        rows = list(
            model.objects.filter(conversation__in=conversations)
            .values(field)
            .annotate(n=Count("pk"))
            .order_by(field)
        )
    except (FieldError, DatabaseError):
        return None
    return [{"value": row[field], "count": row["n"]} for row in rows]


def conversations_rated(queryset: QuerySet, value: str) -> QuerySet:
    model = helpdesk_model("ConversationRating")
    field = _rating_field(model) if model is not None else None
    if field is None:
        return queryset.none()
    return queryset.filter(pk__in=model.objects.filter(**{field: value}).values("conversation_id"))


def handoffs_count(conversations: QuerySet) -> int | None:
    model = helpdesk_model("Handoff")
    if model is None:
        return None
    try:
        return model.objects.filter(conversation__in=conversations).count()
    except (FieldError, DatabaseError):
        return None


# --- the dashboard --------------------------------------------------------------------------------


def _days(date_from: dt.date, date_to: dt.date) -> list[dt.date]:
    return [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]


def _bounds(date_from: dt.date, date_to: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    return start, end


def dashboard_conversations(
    *,
    date_from: dt.date,
    date_to: dt.date,
    chatbot_id: int | None,
    chatbot_ids: list[int] | None = None,
) -> QuerySet:
    """The conversations a dashboard describes: started in the range (UTC days, inclusive),
    of one chatbot or of `chatbot_ids` (the viewer's shops'; None means every chatbot)."""
    start, end = _bounds(date_from, date_to)
    # Staff previews (chatbots/preview.py) are not customers' conversations.
    conversations = Conversation.objects.filter(
        created_at__gte=start, created_at__lt=end, preview__isnull=True
    )
    if chatbot_id is not None:
        conversations = conversations.filter(chatbot_id=chatbot_id)
    if chatbot_ids is not None:
        conversations = conversations.filter(chatbot_id__in=chatbot_ids)
    return conversations


def _daily_timings(
    *, date_from: dt.date, date_to: dt.date, chatbot_id: int | None, chatbot_ids: list[int] | None
) -> dict[dt.date, dict[str, Any]]:
    start, end = _bounds(date_from, date_to)
    where = "created_at >= %(start)s AND created_at < %(end)s"
    if chatbot_id is not None:
        where += " AND chatbot_id = %(chatbot_id)s"
    if chatbot_ids is not None:
        where += " AND chatbot_id = ANY(%(chatbot_ids)s)"
    sql = f"""
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY time_to_first_token_ms),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY time_to_first_token_ms),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY tokens_per_second),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY tokens_per_second)
        FROM analytics_turnmetrics WHERE {where} GROUP BY 1 ORDER BY 1
    """
    with connection.cursor() as cursor:
        cursor.execute(
            sql, {"start": start, "end": end, "chatbot_id": chatbot_id, "chatbot_ids": chatbot_ids}
        )
        return {
            day: {
                "turns": n,
                "ttft_p50": ttft50,
                "ttft_p95": ttft95,
                "tps_p50": tps50,
                "tps_p95": tps95,
            }
            for day, n, ttft50, ttft95, tps50, tps95 in cursor.fetchall()
        }


def _value_counts(
    latest: QuerySet[ConversationAnalysis], field: str, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """How many of the latest analyses have each value of `field`, most frequent first."""
    rows = latest.values(field).annotate(n=Count("pk")).order_by("-n", field)
    rows = rows[:limit] if limit else rows
    return [{"value": row[field], "count": row["n"]} for row in rows]


def _analysis_figures(latest: QuerySet[ConversationAnalysis]) -> dict[str, Any]:
    """The analysed part of the dashboard: topics, scores, sentiments, outcomes, handoff
    reasons; every fixed value listed, with 0 when no conversation has it."""
    scores = {row["value"]: row["count"] for row in _value_counts(latest, "score")}
    sentiments = {row["value"]: row["count"] for row in _value_counts(latest, "sentiment")}
    outcomes = {row["value"]: row["count"] for row in _value_counts(latest, "outcome")}
    reasons = (
        latest.filter(outcome=ConversationAnalysis.Outcome.HANDED_OFF)
        .exclude(handoff_reason="")
        .values("handoff_reason")
        .annotate(n=Count("pk"))
        .order_by("-n", "handoff_reason")[:10]
    )
    return {
        "analysed": sum(outcomes.values()),
        "topics": _value_counts(latest, "topic", limit=12),
        "scores": [{"value": s, "count": scores.get(s, 0)} for s in (1, 2, 3, 4, 5)],
        "unscored": scores.get(None, 0),
        "sentiments": [
            {"value": s, "count": sentiments.get(s, 0)} for s in ("positive", "neutral", "negative")
        ],
        "outcomes": [
            {"value": o.value, "label": o.label, "count": outcomes.get(o.value, 0)}
            for o in ConversationAnalysis.Outcome
        ],
        "handoff_reasons": [{"value": r["handoff_reason"], "count": r["n"]} for r in reasons],
    }


def _failed_turn_counts(conversations: QuerySet[Conversation]) -> list[dict[str, Any]]:
    rows = (
        Turn.objects.filter(conversation__in=conversations, status=Turn.Status.FAILED)
        .values("error_category")
        .annotate(n=Count("pk"))
        .order_by("-n", "error_category")
    )
    return [
        {
            "value": r["error_category"] or "uncategorised",
            "key": r["error_category"],
            "count": r["n"],
        }
        for r in rows
    ]


def dashboard_data(
    *,
    date_from: dt.date,
    date_to: dt.date,
    chatbot_id: int | None,
    chatbot_ids: list[int] | None = None,
) -> dict:
    """Everything the staff dashboard draws, for conversations started in the range."""
    conversations = dashboard_conversations(
        date_from=date_from, date_to=date_to, chatbot_id=chatbot_id, chatbot_ids=chatbot_ids
    )
    days = _days(date_from, date_to)
    per_day = dict(
        conversations.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    timings = _daily_timings(
        date_from=date_from, date_to=date_to, chatbot_id=chatbot_id, chatbot_ids=chatbot_ids
    )
    analysis = _analysis_figures(latest_analyses(conversations))
    return {
        "days": [{"day": day, "count": per_day.get(day, 0)} for day in days],
        "conversations": sum(per_day.values()),
        "analysed": analysis.pop("analysed"),
        **analysis,
        "helpdesk_handoffs": handoffs_count(conversations),
        "errors": _failed_turn_counts(conversations),
        "timings": [{"day": day, **timings.get(day, {"turns": 0})} for day in days],
        "ratings": ratings_of(conversations),
    }


@dataclass(frozen=True)
class DashboardFigures:
    """What the staff dashboard shows for a date range and bot, before any chart is drawn."""

    figures: dict[str, Any]  # dashboard_data
    execution: list[dict[str, Any]]  # execution_statistics: sequential against parallel
    people: dict[str, Any]  # the live inbox's handoffs, first human reply, CSAT per agent
    feedback: dict[str, Any]  # customers' thumbs on single answers (quality)


def dashboard_figures(
    *,
    date_from: dt.date,
    date_to: dt.date,
    chatbot_id: int | None,
    chatbot_ids: list[int] | None = None,
) -> DashboardFigures:
    """The dashboard's figures over conversations started from `date_from` to `date_to` (UTC
    days, inclusive), of one bot or of `chatbot_ids` (the viewer's shops' bots) when not None."""
    since = dt.datetime.combine(date_from, dt.time.min, tzinfo=dt.UTC)
    until = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    figures = dashboard_data(
        date_from=date_from, date_to=date_to, chatbot_id=chatbot_id, chatbot_ids=chatbot_ids
    )
    execution = execution_statistics(
        since=since, until=until, chatbot_id=chatbot_id, chatbot_ids=chatbot_ids
    )
    people = Conversation.objects.filter(created_at__gte=since, created_at__lt=until)
    if chatbot_id is not None:
        people = people.filter(chatbot_id=chatbot_id)
    if chatbot_ids is not None:
        people = people.filter(chatbot_id__in=chatbot_ids)
    return DashboardFigures(
        figures=figures,
        execution=execution,
        people=human_figures(conversations=people),
        feedback=feedback_figures(
            date_from=date_from, date_to=date_to, chatbot_id=chatbot_id, chatbot_ids=chatbot_ids
        ),
    )


def human_figures(*, conversations: QuerySet[Conversation]) -> dict[str, Any]:
    """Handoff rate, time to first human reply and CSAT per agent of these conversations (the
    inbox page's last days, the dashboard's date range and bot)."""
    total = conversations.count()
    handed = conversations.filter(handoff_at__isnull=False)
    first_reply = (
        Message.objects.filter(
            conversation=OuterRef("pk"),
            role=Message.Role.AGENT,
            created_at__gte=OuterRef("handoff_at"),
        )
        .values("conversation")
        .annotate(first=Min("created_at"))
        .values("first")
    )
    waits = [
        (row["first"] - row["handoff_at"]).total_seconds()
        for row in handed.annotate(first=Subquery(first_reply)).values("handoff_at", "first")
        if row["first"] is not None
    ]
    handoffs = handed.count()
    ratings = (
        ConversationRating.objects.filter(
            conversation__in=conversations, conversation__assigned_agent__isnull=False
        )
        .values(
            "conversation__assigned_agent",
            "conversation__assigned_agent__first_name",
            "conversation__assigned_agent__username",
        )
        .annotate(csat=Avg("score"), ratings=Count("pk"))
        .order_by("conversation__assigned_agent__username")
    )
    return {
        "conversations": total,
        "handoffs": handoffs,
        "handoff_rate": round(handoffs / total, 4) if total else None,
        "first_human_reply_seconds": {
            "answered": len(waits),
            "median": round(statistics.median(waits), 1) if waits else None,
            "max": round(max(waits), 1) if waits else None,
        },
        "csat_per_agent": [
            {
                "agent": row["conversation__assigned_agent__first_name"]
                or row["conversation__assigned_agent__username"],
                "csat": round(float(row["csat"]), 2),
                "ratings": row["ratings"],
            }
            for row in ratings
        ],
    }


# --- transcript and export -----------------------------------------------------------------------


def conversation_transcript(*, conversation: Conversation) -> list[dict[str, Any]]:
    """The conversation's messages in order; a customer message carries its turn (status,
    timings, events, metrics, analysis), an answer its context chunks. Three queries."""
    messages = list(conversation.messages.order_by("sequence"))
    turns = {
        turn.user_message_id: turn
        for turn in Turn.objects.filter(conversation=conversation)
        .select_related("analysis", "metrics")
        .annotate(event_count=Count("events"))
    }
    chunks: dict[Any, list[ContextChunk]] = {}
    for chunk in ContextChunk.objects.filter(conversation=conversation).order_by(
        "message_id", "position"
    ):
        chunks.setdefault(chunk.message_id, []).append(chunk)
    rows = []
    for message in messages:
        turn = turns.get(message.pk)
        rows.append(
            {
                "message": message,
                "turn": turn,
                "analysis": getattr(turn, "analysis", None) if turn else None,
                "metrics": getattr(turn, "metrics", None) if turn else None,
                "chunks": chunks.get(message.pk, []),
            }
        )
    return rows


EXPORT_FIELDS = (
    "conversation_id",
    "chatbot",
    "user_id",
    "status",
    "created_at",
    "last_activity_at",
    "message_count",
    "turns",
    "failed_turns",
    "first_question",
    "topic",
    "score",
    "sentiment",
    "outcome",
    "handoff_reason",
    "analyser",
    "analysed_at",
)


def conversations_export(queryset: QuerySet, *, with_turns: bool = False) -> Iterator[dict]:
    """One dict per conversation with its latest analysis; streamed in chunks of 500.

    With `with_turns`, each also lists the analysis of every turn (for JSONL).
    """
    first_question = Message.objects.filter(
        conversation=OuterRef("pk"), role=Message.Role.USER
    ).order_by("sequence")
    rows = (
        conversations_with_latest(queryset)
        .select_related("chatbot")
        .annotate(
            turn_count=Count("turns", distinct=True),
            failed_count=Count("turns", filter=Q(turns__status=Turn.Status.FAILED), distinct=True),
            first_question=Subquery(first_question.values("content")[:1]),
        )
        .order_by("created_at", "pk")
    )
    if with_turns:
        rows = rows.prefetch_related("analyses")
    for conversation in rows.iterator(chunk_size=500):
        row = {
            "conversation_id": str(conversation.pk),
            "chatbot": conversation.chatbot.public_id,
            "user_id": conversation.user_id,
            "status": conversation.status,
            "created_at": conversation.created_at.isoformat(),
            "last_activity_at": conversation.last_activity_at.isoformat(),
            "message_count": conversation.message_count,
            "turns": conversation.turn_count,
            "failed_turns": conversation.failed_count,
            "first_question": conversation.first_question or "",
            "topic": conversation.latest_topic or "",
            "score": conversation.latest_score,
            "sentiment": conversation.latest_sentiment or "",
            "outcome": conversation.latest_outcome or "",
            "handoff_reason": conversation.latest_handoff_reason or "",
            "analyser": conversation.latest_analyser or "",
            "analysed_at": (
                conversation.latest_analysed_at.isoformat()
                if conversation.latest_analysed_at
                else ""
            ),
        }
        if with_turns:
            row["analyses"] = [
                {
                    "turn_id": str(a.turn_id),
                    "topic": a.topic,
                    "score": a.score,
                    "sentiment": a.sentiment,
                    "outcome": a.outcome,
                    "handoff_reason": a.handoff_reason,
                    "analyser": a.analyser,
                    "created_at": a.created_at.isoformat(),
                }
                for a in sorted(conversation.analyses.all(), key=lambda a: a.created_at)
            ]
        yield row
