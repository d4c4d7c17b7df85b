"""The conversation index (seed 004): one summary row per conversation, merged from AICall rows.

A sync reads only the AI calls above the watermark (the highest AICall id already merged),
aggregates them per conversation in PostgreSQL and merges the aggregates into the index with
one `INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE` per batch: counts and tokens add up,
first/last question and times are taken from whichever side is earlier/later (ties broken by
call id, so merging batches gives exactly what one big batch would).

Two things make it exact:

* Every sync, init, delete and prune locks the one SyncState row (`select_for_update`) for its
  whole transaction. Without that, two overlapping syncs would read the same watermark and
  merge the same calls twice (double counts), or a delete could interleave with a merge.
* Ids are handed out when a call is inserted, but transactions commit in any order: call 101
  can be visible while call 100's transaction is still open. Moving the watermark past 100
  would skip it forever. So each batch also lists, in the same statement (same snapshot), the
  ids below its top that it could not see among calls from the last
  CONVERSATION_INDEX_GAP_HORIZON_SECONDS; those are kept in SyncState.pending_ids and merged by
  a later sync once they commit. Ids still missing after the horizon were rolled back.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from analytics.models import ConversationSummary, SyncState

NAME = SyncState.CONVERSATION_INDEX
logger = logging.getLogger(__name__)

MERGE_SQL = """
WITH agg AS (
    SELECT
        -- Analytics' own analysis calls are about a conversation, not part of it; a staff
        -- preview (chatbots/preview.py) is nobody's conversation.
        CASE WHEN a.purpose = 'analysis' OR c.preview IS NOT NULL THEN NULL
             ELSE a.conversation_id END AS cid,
        count(*) AS n,
        (array_agg(a.chatbot_id ORDER BY a.created_at DESC, a.id DESC))[1] AS chatbot_id,
        (array_agg(a.user_id ORDER BY a.created_at DESC, a.id DESC)
            FILTER (WHERE a.user_id <> ''))[1] AS username,
        min(a.created_at) AS first_time,
        max(a.created_at) AS last_time,
        (array_agg(a.id ORDER BY a.created_at, a.id))[1] AS first_id,
        (array_agg(a.id ORDER BY a.created_at DESC, a.id DESC))[1] AS last_id,
        (array_agg(a.model ORDER BY a.created_at DESC, a.id DESC)
            FILTER (WHERE a.model <> ''))[1] AS model,
        (array_agg(a.client_ip ORDER BY a.created_at DESC, a.id DESC)
            FILTER (WHERE a.client_ip IS NOT NULL))[1] AS client_ip,
        coalesce(sum(a.total_tokens), 0) AS tokens,
        array_agg(a.id ORDER BY a.id) AS ids
    FROM conversations_aicall a
    LEFT JOIN conversations_conversation c ON c.id = a.conversation_id
    WHERE (a.id > %(lo)s AND a.id <= %(hi)s) OR a.id = ANY(%(extra)s::bigint[])
    GROUP BY 1
),
up AS (
    INSERT INTO analytics_conversationsummary AS s (
        conversation_id, chatbot_id, username, first_message_time, last_message_time,
        message_count, first_question, last_question, first_call_id, last_call_id, model,
        client_ip, total_tokens, message_ids, created_at, updated_at
    )
    SELECT agg.cid, agg.chatbot_id, coalesce(agg.username, ''), agg.first_time, agg.last_time,
           agg.n, f.question, l.question, agg.first_id, agg.last_id, coalesce(agg.model, ''),
           agg.client_ip, agg.tokens, agg.ids, %(now)s, %(now)s
    FROM agg
    JOIN conversations_aicall f ON f.id = agg.first_id
    JOIN conversations_aicall l ON l.id = agg.last_id
    WHERE agg.cid IS NOT NULL
    ON CONFLICT (conversation_id) DO UPDATE SET
        -- Every expression reads the row as it was (s.*) and the batch (EXCLUDED.*).
        -- chatbot_id is kept: a conversation belongs to one chatbot for good.
        username = CASE WHEN s.username = '' THEN EXCLUDED.username
                        WHEN EXCLUDED.username <> ''
                             AND (EXCLUDED.last_message_time, EXCLUDED.last_call_id)
                                 > (s.last_message_time, s.last_call_id)
                        THEN EXCLUDED.username ELSE s.username END,
        first_message_time = LEAST(s.first_message_time, EXCLUDED.first_message_time),
        first_question = CASE WHEN (EXCLUDED.first_message_time, EXCLUDED.first_call_id)
                                   < (s.first_message_time, s.first_call_id)
                              THEN EXCLUDED.first_question ELSE s.first_question END,
        first_call_id = CASE WHEN (EXCLUDED.first_message_time, EXCLUDED.first_call_id)
                                  < (s.first_message_time, s.first_call_id)
                             THEN EXCLUDED.first_call_id ELSE s.first_call_id END,
        last_message_time = GREATEST(s.last_message_time, EXCLUDED.last_message_time),
        last_question = CASE WHEN (EXCLUDED.last_message_time, EXCLUDED.last_call_id)
                                  > (s.last_message_time, s.last_call_id)
                             THEN EXCLUDED.last_question ELSE s.last_question END,
        last_call_id = CASE WHEN (EXCLUDED.last_message_time, EXCLUDED.last_call_id)
                                 > (s.last_message_time, s.last_call_id)
                            THEN EXCLUDED.last_call_id ELSE s.last_call_id END,
        model = CASE WHEN s.model = '' THEN EXCLUDED.model
                     WHEN EXCLUDED.model <> ''
                          AND (EXCLUDED.last_message_time, EXCLUDED.last_call_id)
                              > (s.last_message_time, s.last_call_id)
                     THEN EXCLUDED.model ELSE s.model END,
        client_ip = CASE WHEN s.client_ip IS NULL THEN EXCLUDED.client_ip
                         WHEN EXCLUDED.client_ip IS NOT NULL
                              AND (EXCLUDED.last_message_time, EXCLUDED.last_call_id)
                                  > (s.last_message_time, s.last_call_id)
                         THEN EXCLUDED.client_ip ELSE s.client_ip END,
        message_count = s.message_count + EXCLUDED.message_count,
        total_tokens = s.total_tokens + EXCLUDED.total_tokens,
        -- Ids stay sorted: appending is enough unless a late commit filled an older gap.
        message_ids = CASE
            WHEN EXCLUDED.message_ids[1] > s.message_ids[cardinality(s.message_ids)]
            THEN s.message_ids || EXCLUDED.message_ids
            ELSE ARRAY(SELECT DISTINCT x FROM unnest(s.message_ids || EXCLUDED.message_ids) AS x
                       ORDER BY x)
        END,
        updated_at = EXCLUDED.updated_at
    RETURNING s.conversation_id, s.chatbot_id, (s.xmax = 0) AS inserted
),
missing AS (
    -- Ids in this batch's recent range that this statement's snapshot cannot see.
    SELECT coalesce(array_agg(g), '{}') AS ids
    FROM generate_series(%(gap_from)s + 1, %(hi)s) AS g
    WHERE NOT EXISTS (SELECT 1 FROM conversations_aicall c WHERE c.id = g)
),
seen AS (
    SELECT coalesce(array_agg(c.id), '{}') AS ids
    FROM conversations_aicall c WHERE c.id = ANY(%(extra)s::bigint[])
)
SELECT (SELECT coalesce(sum(n), 0)::bigint FROM agg),
       (SELECT coalesce(array_agg(conversation_id), '{}') FROM up),
       (SELECT coalesce(json_object_agg(chatbot_id, n), '{}')
          FROM (SELECT chatbot_id, count(*) AS n FROM up WHERE inserted GROUP BY 1) AS x),
       (SELECT ids FROM missing),
       (SELECT ids FROM seen)
"""


def _state_locked(*, skip_locked: bool = False) -> SyncState | None:
    """The index's state row, locked until the end of the caller's transaction.

    None only with `skip_locked` when another sync holds it.
    """
    # The row is created once and never deleted, so every caller locks the same row.
    SyncState.objects.bulk_create([SyncState(name=NAME)], ignore_conflicts=True)
    return SyncState.objects.select_for_update(skip_locked=skip_locked).filter(name=NAME).first()


def _recount(state: SyncState) -> None:
    """Exact counts per chatbot (one index-only scan); the caller saves `counts`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT chatbot_id, count(*) FROM analytics_conversationsummary GROUP BY chatbot_id"
        )
        counts = {str(chatbot_id): n for chatbot_id, n in cursor.fetchall()}
    counts["all"] = sum(counts.values())
    state.counts = counts


def conversation_index_recount() -> None:
    """Refresh the per-chatbot counts (after rows left the index other than by us: a chatbot
    deleted with its conversations)."""
    with transaction.atomic():
        state = _state_locked()
        _recount(state)
        state.save(update_fields=["counts"])


def conversation_index_init() -> bool:
    """Create the index if it does not exist; True when it was created now."""
    with transaction.atomic():
        state = _state_locked()
        if state.exists:
            return False
        state.exists = True
        state.save(update_fields=["exists"])
        return True


def _truncate(state: SyncState) -> None:
    with connection.cursor() as cursor:
        # Deferred foreign-key checks of rows written earlier in this transaction must run
        # first: PostgreSQL refuses TRUNCATE while they are pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE analytics_conversationsummary")
    state.watermark = 0
    state.pending_ids = {}
    state.last_result = {}
    state.counts = {"all": 0}


def conversation_index_delete() -> bool:
    """Drop every indexed conversation; True when there was an index to delete.

    TRUNCATE holds an exclusive lock until commit, so list requests wait for it, not fail.
    """
    with transaction.atomic():
        state = _state_locked()
        existed = state.exists
        _truncate(state)
        state.exists = False
        state.save(update_fields=["exists", "watermark", "pending_ids", "last_result", "counts"])
        return existed


def _merge_batch(
    cursor, *, lo: int, hi: int, extra: list[int], gap_from: int, now: dt.datetime
) -> tuple[int, list, dict[str, int], list[int], list[int]]:
    cursor.execute(
        MERGE_SQL,
        {"lo": lo, "hi": hi, "extra": extra, "gap_from": max(gap_from, lo), "now": now},
    )
    return cursor.fetchone()


def _clean_search_pending_list(cursor) -> None:
    """Merge the search index's pending list now, in bulk: every search scans that list in
    full, so left to grow (up to gin_pending_list_limit) it would slow searches down. Needs
    ownership of the index; without it autovacuum does the merge, later."""
    try:
        with transaction.atomic():
            cursor.execute("SELECT gin_clean_pending_list('summary_search'::regclass)")
    except DatabaseError as exc:
        logger.warning("conversation index: could not merge the search pending list: %s", exc)


@dataclass
class _Merged:
    """What the batches of one sync merged."""

    processed: int = 0
    created: int = 0
    conversations: set = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)


def _sync_bounds(cursor, state: SyncState, *, settled_before: dt.datetime) -> tuple[int, int]:
    """The newest call id (where this sync ends) and the id under which a gap is a rollback,
    not a transaction that has yet to commit."""
    cursor.execute("SELECT coalesce(max(id), 0) FROM conversations_aicall")
    top = max(cursor.fetchone()[0], state.watermark)
    # The newest call older than the horizon: no open transaction can still hold an id
    # below it, so gaps under it are rollbacks, not late commits.
    cursor.execute(
        "SELECT coalesce(max(id), %s) FROM conversations_aicall "
        "WHERE id > %s AND id <= %s AND created_at <= %s",
        [state.watermark, state.watermark, top, settled_before],
    )
    settled = cursor.fetchone()[0]
    if state.watermark == 0:
        # First sync (or after a reset): ids below the oldest call were deleted by
        # retention or rolled back; only a call older than every visible one whose
        # transaction is still open would be missed (a later reset picks it up).
        cursor.execute("SELECT coalesce(min(id), 1) - 1 FROM conversations_aicall")
        settled = max(settled, cursor.fetchone()[0])
    return top, settled


def _merge_batches(
    cursor,
    state: SyncState,
    pending: dict[int, str],
    *,
    top: int,
    settled: int,
    batch_size: int,
    now: dt.datetime,
) -> _Merged:
    """Merge from the watermark to `top` in batches of `batch_size` ids (the first batch also
    retries the pending ids); `pending` loses the ids now seen and gains the gaps found."""
    merged = _Merged(counts=dict(state.counts or {}))
    merged.counts.pop("all", None)
    lo = state.watermark
    extra = sorted(pending)
    while True:
        hi = min(lo + batch_size, top)
        n, ids, created_per_chatbot, missing, seen = _merge_batch(
            cursor, lo=lo, hi=hi, extra=extra, gap_from=settled, now=now
        )
        merged.processed += n
        for chatbot_id, count in created_per_chatbot.items():
            merged.created += count
            merged.counts[chatbot_id] = merged.counts.get(chatbot_id, 0) + count
        merged.conversations.update(ids)
        for call_id in seen:
            pending.pop(call_id, None)
        for call_id in missing:
            pending[call_id] = now.isoformat()
        extra = []
        lo = hi
        if lo >= top:
            return merged


def _sync_locked(state: SyncState, *, batch_size: int) -> dict[str, Any]:
    """One sync under the state's lock: bounds, batches, then the result (seed 004's shape)
    saved on the state with the new watermark, pending ids and counts."""
    started_at = timezone.now()
    t0 = time.monotonic()
    horizon = dt.timedelta(seconds=settings.CONVERSATION_INDEX_GAP_HORIZON_SECONDS)
    pending: dict[int, str] = {int(k): v for k, v in (state.pending_ids or {}).items()}
    with connection.cursor() as cursor:
        top, settled = _sync_bounds(cursor, state, settled_before=started_at - horizon)
        merged = _merge_batches(
            cursor,
            state,
            pending,
            top=top,
            settled=settled,
            batch_size=batch_size,
            now=started_at,
        )
        if merged.processed:
            _clean_search_pending_list(cursor)
    # Still missing after the horizon: that transaction rolled back; the id will never exist.
    pending = {
        k: v for k, v in pending.items() if dt.datetime.fromisoformat(v) >= started_at - horizon
    }
    finished_at = timezone.now()
    result = {
        "success": True,
        "syncStartTime": started_at.isoformat().replace("+00:00", "Z"),
        "syncEndTime": finished_at.isoformat().replace("+00:00", "Z"),
        "durationSeconds": round(time.monotonic() - t0, 3),
        "messagesProcessed": merged.processed,
        "conversationsFound": len(merged.conversations),
        "conversationsIndexed": len(merged.conversations),
        "conversationsCreated": merged.created,
        "watermark": top,
        "pendingCalls": len(pending),
    }
    # New conversations are the only change to the counts a merge makes (a conversation
    # never changes chatbot); the rare removals (delete, prune, chatbot deleted) recount.
    counts = merged.counts
    counts["all"] = sum(counts.values())
    state.counts = counts
    state.exists = True
    state.watermark = top
    state.pending_ids = {str(k): v for k, v in sorted(pending.items())}
    state.last_sync_started_at = started_at
    state.last_sync_finished_at = finished_at
    state.last_result = result
    state.save(
        update_fields=[
            "exists",
            "watermark",
            "pending_ids",
            "last_sync_started_at",
            "last_sync_finished_at",
            "last_result",
            "counts",
        ]
    )
    return result


def conversation_index_sync(
    *, batch_size: int | None = None, wait: bool = True
) -> dict[str, Any] | None:
    """Merge the AI calls added since the last sync; creates the index if needed.

    Returns seed 004's sync result. With `wait=False` returns None at once when another sync
    is running (the scheduled sync uses this, so syncs never queue up behind each other).
    """
    batch_size = batch_size or settings.CONVERSATION_INDEX_SYNC_BATCH
    with transaction.atomic():
        state = _state_locked(skip_locked=not wait)
        if state is None:
            return None
        return _sync_locked(state, batch_size=batch_size)


def conversation_index_reset(*, batch_size: int | None = None) -> dict[str, Any]:
    """Delete, recreate and fully sync the index in one transaction; list requests wait for it
    (TRUNCATE's lock) and then see the new index, never a half-built one."""
    batch_size = batch_size or settings.CONVERSATION_INDEX_SYNC_BATCH
    with transaction.atomic():
        state = _state_locked()
        _truncate(state)
        return _sync_locked(state, batch_size=batch_size)


def conversation_index_prune(*, before: dt.datetime, batch_size: int = 5000) -> int:
    """Drop indexed conversations idle since `before` (retention), in batches."""
    deleted = 0
    while True:
        with transaction.atomic():
            # Under the sync lock: a merge must not re-create a half row of a pruned one.
            state = _state_locked()
            ids = list(
                ConversationSummary.objects.filter(last_message_time__lt=before)
                .order_by("-last_message_time", "-conversation_id")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return deleted
            count, _ = ConversationSummary.objects.filter(pk__in=ids).delete()
            deleted += count
            _recount(state)
            state.save(update_fields=["counts"])
