"""`GET /api/stream-events/<turn>`: polling, answered on the event loop when it can be.

A customer's poll is the commonest request a running answer gets (seed 000's clients poll
several times a second). As a DRF view each one was a full Django request on a thread with a
query for the turn; at 200 polls/s beside 100 streams it answered ~135/s, p50 2.4 s
(docs/benchmarks.md). Here a poll that carries a conversation token is answered without a
query and without a thread:

- the token's signature names the conversation and chatbot (conversations.access);
- whether the chatbot still answers and which sites may use it comes from a small cached
  record (chatbots.selectors.chatbot_access_get), dropped on every save of the chatbot;
- one Redis round trip (the event loop's asyncio client) reads the turn's first event, the
  page after the client's id, and the last event. The first event (`start`) names the turn's
  conversation, which must be the token's. A page that does not start at the next event, where
  the event log's reader reads PostgreSQL (conversations.eventlog.db_needed), goes to the DRF
  view, which reads both.

Everything else goes to the DRF view (conversations.api.stream_events) unchanged: staff users,
a token that does not check out, a turn Redis does not know (not started, or expired), a page
that does not start right after the client's id, a turn whose last event is older than
FAST_POLL_QUIET_SECONDS without an `end` (Redis may have missed events PostgreSQL has), and
every refusal, so each error keeps its one wording and status. Both answer in the same shape
with the same rules, which tests/test_polling_fast.py checks side by side.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from config.authentication import looks_like_jwt
from config.errors import ApiError
from conversations import api, eventlog, streaming
from conversations.access import (
    chatbot_access_cached,
    conversation_token_check,
    origin_allowed,
    token_from_request,
)
from conversations.event_types import Event
from conversations.selectors import event_for_clients

logger = logging.getLogger(__name__)

# A running turn whose newest event in Redis is older than this, with no `end`, is read the
# slow way (PostgreSQL too): the worker writes every event to Redis first, so silence that long
# means a slow answer (a tool call, a long first token) or events that reached PostgreSQL only.
FAST_POLL_QUIET_SECONDS = 2.0
FINISHED = {"completed": "completed", "failed": "failed", "cancelled": "cancelled"}

slow_view = sync_to_async(api.stream_events, thread_sensitive=True)


def _event(entries) -> Event | None:
    events = streaming.decode_entries(entries)
    return events[0] if events else None


def _age_seconds(env: Event) -> float:
    stamp = dt.datetime.fromisoformat(env["timestamp"].replace("Z", "+00:00"))
    return (dt.datetime.now(dt.UTC) - stamp).total_seconds()


def _jwt_or_other_auth(request) -> bool:
    """The request carries credentials DRF would check (and may refuse with 401) first."""
    header = request.headers.get("Authorization")
    if header is None:
        return False
    return not header.startswith("Bearer ") or looks_like_jwt(header[7:].strip())


async def fast_page(request, turn_id) -> dict[str, Any] | None:
    """The poll's answer, or None when the DRF view must answer it."""
    if _jwt_or_other_auth(request):
        return None
    grant = conversation_token_check(token_from_request(request))
    if grant is None:
        return None
    try:  # a bad parameter: the DRF view gives the one 400 there is
        limit = api.poll_limit(request)
        after = api.last_seen_event_id(request)
    except ApiError:
        return None
    access = await chatbot_access_cached(grant.chatbot_id)
    if access is None or not access["active"]:
        return None
    origin = request.headers.get("Origin")
    if origin and not origin_allowed(origin, access["allowed_origins"]):
        return None
    key = streaming.stream_key(str(turn_id))
    async with streaming.loop_event_redis(str(turn_id)).pipeline(transaction=False) as pipe:
        pipe.xrange(key, min="0-1", max="0-1")
        pipe.xrange(key, min=f"0-{after + 1}", max="+", count=limit)
        pipe.xrevrange(key, max="+", min="-", count=1)
        first_entries, page_entries, last_entries = await pipe.execute()
    first = _event(first_entries)
    if (
        first is None
        or first["event"] != "start"
        or first["data"].get("conversation_id") != str(grant.conversation_id)
    ):
        return None
    events = streaming.decode_entries(page_entries)
    last = _event(last_entries)
    if last is None:
        return None
    if events:
        if eventlog.db_needed(after, events):
            return None  # a gap: PostgreSQL has the start of this page
        ended = events[-1]["event"] == streaming.TERMINAL_EVENT
        end = events[-1] if ended else last
    else:
        if after > last["id"]:
            return None  # past the end: the DRF view explains (400)
        ended = False
        end = last
    finished = end["event"] == streaming.TERMINAL_EVENT
    if finished:
        status = FINISHED.get(end["data"].get("status", ""))
        if status is None:
            return None
    else:
        if _age_seconds(last) > FAST_POLL_QUIET_SECONDS:
            return None
        status = "active"
    last_id = events[-1]["id"] if events else after
    return {
        "events": [event_for_clients(env) for env in events],
        "session_status": status,
        "last_event_id": last_id,
        "has_more": not ended and not (finished and last_id >= end["id"]),
    }


@csrf_exempt
async def stream_events(request, turn_id):
    try:
        page = await fast_page(request, turn_id)
    except Exception as exc:  # Redis away, or an entry we cannot read: the slow way knows more
        logger.warning("poll of turn %s: answered the slow way (%s)", turn_id, exc)
        page = None
    if page is not None:
        return JsonResponse(page)
    return await slow_view(request, turn_id=turn_id)


# drf-spectacular documents the DRF view's schema for this path (OpenAPI, /api/docs/).
stream_events.cls = api.stream_events.cls  # type: ignore[attr-defined]
stream_events.initkwargs = api.stream_events.initkwargs  # type: ignore[attr-defined]
