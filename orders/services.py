"""Order tracking use cases: look an order up for a turn, test a source, count what happened.

The turn's context provider (`order_context_provide`) runs only for the chatbot's order flow:
it extracts the order number and email, asks the platform, shows the order only if the email
(or postcode) matches, and otherwise answers exactly like an unknown order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings

from chatbots.secrets import SecretDecryptionError
from config.error_log import error_reported
from config.redaction import redact
from config.redis import get_redis
from conversations.models import Turn
from orders import answers, extract, selectors
from orders.client import OrderHttp, new_client, pooled_client
from orders.models import OrderSource
from orders.providers import provider_class
from orders.providers.base import (
    PROBE_ORDER_NUMBER,
    OrderSourceError,
    SourceConfig,
    normalize_email,
    normalize_postcode,
)
from outbound import guard

logger = logging.getLogger(__name__)

CATEGORY = "order_tracking"
# Look-up attempts per (chatbot, order number) and per client address within the window; a
# conversation is not part of either key, so a new conversation does not reset them.
ATTEMPTS_ORDER_KEY = "cb:orders:attempts:order:{}:{}"
ATTEMPTS_ADDRESS_KEY = "cb:orders:attempts:address:{}"
ATTEMPTS_WINDOW_SECONDS = 3600

# Atomic check-and-count before the upstream call: refuse (0) if any key is at the limit, else
# count on every key (the window starts with the first attempt) and return the order key's new
# count. Reading the count and adding to it in two steps let 20 parallel messages make 16
# look-ups against a limit of 5.
_ATTEMPT_SCRIPT = """
local limit = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= limit then return 0 end
end
local counted = 0
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[2]) end
  if i == 1 then counted = n end
end
return counted
"""

# A refund takes back only what is still counted: a key whose window expired meanwhile stays
# gone (a plain DECR would create it at -1, with no expiry: an extra attempt for ever).
_REFUND_SCRIPT = """
for _, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n > 1 then redis.call('DECR', key) elseif n > 0 then redis.call('DEL', key) end
end
return 0
"""


@dataclass
class LookupOutcome:
    result: str  # found | not_found | unavailable
    order: dict[str, Any] | None = None
    mismatch: bool = False  # internal only: never shown, never sent as an event
    error: OrderSourceError | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)


# --- counters and failure log -------------------------------------------------------------------


def order_stats_record(
    *, source_id: int, counters: dict[str, int], fields: dict[str, str] | None = None
) -> None:
    """Add to a source's counters in Redis (one round trip)."""
    key = selectors.STATS_KEY.format(source_id)
    pipe = get_redis().pipeline(transaction=False)
    for name, value in counters.items():
        if value:
            pipe.hincrby(key, name, value)
    if fields:
        pipe.hset(key, mapping=fields)
    pipe.execute()


def order_stats_reset(*, source_id: int) -> None:
    get_redis().delete(selectors.STATS_KEY.format(source_id))


def order_failure_log(
    *,
    source: SourceConfig,
    error: OrderSourceError,
    chatbot_id: int | str | None = None,
    turn_id: str | None = None,
) -> None:
    """Record a lookup the platform could not answer, category `order_tracking` (sync: DB)."""
    message = redact(f"{source.name} ({source.kind}): {error.message}")
    context = {
        "order_source": source.id,
        "kind": source.kind,
        "reason": error.reason,
        "http_status": error.status,
    }
    error_reported.send(
        sender=OrderSource,
        category=CATEGORY,
        code=f"ORDER_{error.reason.upper()}",
        message=message,
        chatbot_id=chatbot_id,
        turn_id=turn_id,
        context=context,
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- the lookup ---------------------------------------------------------------------------------


def factor_matches(
    record_email: str,
    record_postcodes: list[str],
    *,
    source: SourceConfig,
    email: str,
    postcode: str,
) -> bool:
    if source.second_factor == "postcode":
        wanted = normalize_postcode(postcode)
        return bool(wanted) and wanted in record_postcodes
    wanted = normalize_email(email)
    return bool(wanted) and wanted == record_email


async def order_lookup(
    *,
    source: SourceConfig,
    order_number: str,
    email: str = "",
    postcode: str = "",
    client: httpx.AsyncClient,
) -> LookupOutcome:
    """Find the order and check the second factor; the order comes back only if both match."""
    http = OrderHttp(client, source_id=source.id, timeout=source.timeout, secrets=source.secrets())
    provider = provider_class(source.kind)(source, http)
    outcome: LookupOutcome
    try:
        record = await provider.find(order_number, email=email, postcode=postcode)
        if record is None:
            outcome = LookupOutcome("not_found")
        elif not (
            record.verified_by_platform
            or factor_matches(
                record.email, record.postcodes, source=source, email=email, postcode=postcode
            )
        ):
            # Nothing more is fetched for someone else's order: same calls as "not found".
            outcome = LookupOutcome("not_found", mismatch=True)
        else:
            outcome = LookupOutcome("found", order=await provider.complete(record))
    except OrderSourceError as err:
        err.message = http.scrub(err.message)
        outcome = LookupOutcome("unavailable", error=err)
    outcome.calls = http.calls
    counters = dict(http.counters)
    counters["lookups"] = 1
    fields = {"last_outcome": outcome.result}
    if outcome.result == "found":
        counters["found"] = 1
        fields["last_ok_at"] = _now()
    elif outcome.result == "not_found":
        counters["mismatch" if outcome.mismatch else "not_found"] = 1
        fields["last_ok_at"] = _now()
    else:
        assert outcome.error is not None
        counters["failed"] = 1
        fields.update(
            last_error=redact(outcome.error.message)[:500],
            last_error_reason=outcome.error.reason,
            last_error_at=_now(),
        )
    await asyncio.to_thread(
        order_stats_record, source_id=source.id, counters=counters, fields=fields
    )
    return outcome


def _attempt_keys(
    *, chatbot_id: int | str, order_number: str, client_ip: str | None, conversation_id: str
) -> list[str]:
    digest = hashlib.sha256(order_number.strip().lstrip("#").upper().encode()).hexdigest()[:32]
    # The client is its address; a turn with none recorded counts per conversation instead.
    client = client_ip or f"conversation:{conversation_id}"
    return [ATTEMPTS_ORDER_KEY.format(chatbot_id, digest), ATTEMPTS_ADDRESS_KEY.format(client)]


def order_attempt_begin(*, keys: list[str]) -> int:
    """Count one look-up attempt before the upstream call; 0 = locked out (nothing counted),
    else how many attempts this order number has had in the window, this one included."""
    redis = get_redis()
    return int(
        redis.eval(
            _ATTEMPT_SCRIPT,
            len(keys),
            *keys,
            settings.ORDERS_MAX_FAILED_LOOKUPS,
            ATTEMPTS_WINDOW_SECONDS,
        )
    )


def order_attempt_refund(*, keys: list[str]) -> None:
    """A look-up that was not a guess (found and verified, or the platform failed) does not
    count against the limit."""
    if keys:
        get_redis().eval(_REFUND_SCRIPT, len(keys), *keys)


def _turn_client_ip(turn_id: str) -> str | None:
    return Turn.objects.filter(pk=turn_id).values_list("client_ip", flat=True).first()


async def order_context_provide(ctx: Any) -> None:
    """Context provider of the turn (conversations.hooks): acts only for the order flow."""
    flow = ctx.flow or {}
    routing_key = flow.get("routing_key")
    if flow.get("role") != "answer" or not routing_key:
        return
    try:
        source = await ctx.run_db(
            selectors.order_source_for_turn,
            chatbot_id=ctx.config["id"],
            routing_key=routing_key,
            language=ctx.language,
        )
    except SecretDecryptionError:
        logger.warning(
            "order source of %s cannot be decrypted; order lookups are off",
            ctx.config.get("public_id"),
            extra={"category": CATEGORY},
        )
        await ctx.emit("order", {"status": "unavailable"})
        ctx.final_answer = answers.unavailable_text(ctx.language, ctx.config)
        return
    if source is None:
        return
    started = time.monotonic()
    try:
        await _provide(ctx, source, started)
    finally:
        ctx.timings["order_lookup_ms"] = round((time.monotonic() - started) * 1000)


@dataclass
class VerifiedLookup:
    """One look-up under the guessing limits: `result` is the outcome's, or too_many_attempts
    when the limits stopped it before the platform was asked."""

    result: str
    outcome: LookupOutcome | None
    order: dict[str, Any] | None  # a found order, status page withheld after others' tries
    metadata: dict[str, Any]  # for the turn's route: outcome, source, status_page_withheld


async def order_lookup_verified(
    *,
    source: SourceConfig,
    chatbot_id: int,
    turn_id: str,
    conversation_id: str,
    details: extract.OrderDetails,
    run_db: Any,
    started: float,
) -> VerifiedLookup:
    """The look-up both the order flow's context provider and the order tool (orders.tool)
    make: counted against the guessing limits per order number and per client address before
    the platform is asked, no faster than ORDERS_LOOKUP_MIN_SECONDS whatever the answer, a
    verified find refunded. Platform failures are logged here; the caller tells the customer."""
    keys = _attempt_keys(
        chatbot_id=chatbot_id,
        order_number=details.order_number,
        client_ip=await run_db(_turn_client_ip, turn_id),
        conversation_id=conversation_id,
    )
    attempts = await asyncio.to_thread(order_attempt_begin, keys=keys)
    if not attempts:
        # Guessing the second factor of one order (from any conversation), or order numbers
        # from one address, stops here, before the platform is asked.
        return VerifiedLookup("too_many_attempts", None, None, {"outcome": "too_many_attempts"})
    outcome = await order_lookup(
        source=source,
        order_number=details.order_number,
        email=details.email,
        postcode=details.postcode,
        client=pooled_client(source_id=source.id, timeout=source.timeout),
    )
    if outcome.result != "unavailable":
        # Found, unknown and mismatching answers all take at least this long: no timing oracle.
        remaining = settings.ORDERS_LOOKUP_MIN_SECONDS - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
    metadata: dict[str, Any] = {"outcome": outcome.result, "source": source.kind}
    if outcome.result != "not_found":
        await asyncio.to_thread(order_attempt_refund, keys=keys)
    order = None
    if outcome.result == "found":
        order = dict(outcome.order or {})
        if attempts > 1 and order.get("status_page_url"):
            # Others tried this order number in the window: this may be a guess that came good.
            # The status page shows the address and more, so only a first-try match gets it.
            order["status_page_url"] = None
            metadata["status_page_withheld"] = True
    elif outcome.result == "unavailable":
        assert outcome.error is not None
        await run_db(
            order_failure_log,
            source=source,
            error=outcome.error,
            chatbot_id=chatbot_id,
            turn_id=turn_id,
        )
    return VerifiedLookup(outcome.result, outcome, order, metadata)


async def _provide(ctx: Any, source: SourceConfig, started: float) -> None:
    language = ctx.language
    details = extract.order_details(
        extracted=ctx.extracted, question=ctx.question, history=ctx.history
    )
    missing = details.missing(source.second_factor)
    if missing:
        await ctx.emit("order", {"status": "need_details", "missing": missing})
        ctx.final_answer = answers.need_details_text(missing, language)
        ctx.metadata["order_lookup"] = {"outcome": "need_details", "missing": missing}
        return
    verified = await order_lookup_verified(
        source=source,
        chatbot_id=ctx.config["id"],
        turn_id=ctx.turn_id,
        conversation_id=ctx.conversation_id,
        details=details,
        run_db=ctx.run_db,
        started=started,
    )
    ctx.metadata["order_lookup"] = verified.metadata
    if verified.result == "too_many_attempts":
        await ctx.emit("order", {"status": "too_many_attempts"})
        ctx.final_answer = answers.too_many_text(language, ctx.config)
        return
    outcome = verified.outcome
    assert outcome is not None
    if outcome.result == "found":
        order = verified.order or {}
        await ctx.emit("order", order)
        ctx.variables["order"] = json.dumps(order, ensure_ascii=False)
        ctx.add_context(answers.order_context_text(order))
        if (ctx.flow.get("endpoint") or {}).get("kind") == "builtin":
            ctx.final_answer = answers.order_answer_text(order, language)
        return
    if outcome.result == "not_found":
        await ctx.emit("order", {"status": "not_found"})
        ctx.final_answer = answers.not_found_text(language, source.second_factor)
        return
    await ctx.emit("order", {"status": "unavailable"})
    ctx.final_answer = answers.unavailable_text(language, ctx.config)


# --- admin --------------------------------------------------------------------------------------

UNREADABLE = (
    "The stored credentials cannot be decrypted with the current FIELD_ENCRYPTION_KEYS (was a "
    "key removed?). Enter them again."
)
REASON_WORDS = {
    "auth": "Authentication failed",
    "forbidden": "Access refused",
    "config": "The platform does not accept our request",
    "rate_limited": "The platform is rate limiting us",
    "timeout": "The platform did not answer in time",
    "unavailable": "The platform is unavailable",
    "bad_response": "The platform's answer is not what we expect",
}


def order_source_connection_test(*, source: OrderSource) -> tuple[bool, str]:
    """One real order search (for a number no shop uses) with the stored credentials."""
    try:
        config = selectors.order_source_config(source, language=source.chatbot.language)
    except SecretDecryptionError:
        return False, UNREADABLE
    for url in (source.base_url, source.auth_url):
        # Resolved, not connected to: a refused address is named without touching its ports.
        if refusal := guard.url_refusal(url or ""):
            return False, refusal

    async def probe() -> tuple[bool, str]:
        async with new_client(timeout=config.timeout) as client:
            http = OrderHttp(
                client, source_id=config.id, timeout=config.timeout, secrets=config.secrets()
            )
            provider = provider_class(config.kind)(config, http)
            unreached = False
            try:
                record = await provider.find(
                    PROBE_ORDER_NUMBER, email="connection-test@example.invalid", postcode="0000"
                )
                ok = True
                found = "found an order" if record else "not found, as expected"
                message = (
                    f"Connected to {provider.label} ({provider.describe()}): the order search "
                    f"works (test number {PROBE_ORDER_NUMBER}: {found})."
                )
            except OrderSourceError as err:
                ok = False
                unreached = err.status is None and err.reason in ("timeout", "unavailable")
                if unreached:
                    # No HTTP answer: one sentence, without counts or times, whatever the port
                    # did (refused, closed, silent, reset, not HTTP) - orders/client.py.
                    message = http.scrub(err.message)
                else:
                    reason = REASON_WORDS.get(err.reason, "Failed")
                    message = f"{reason}: {http.scrub(err.message)}"
            if not unreached:
                total_ms = sum(c["ms"] for c in http.calls)
                message += f" {len(http.calls)} request(s), {total_ms} ms."
            counters = dict(http.counters)
            counters["tests"] = 1
            await asyncio.to_thread(
                order_stats_record, source_id=config.id, counters=counters, fields=None
            )
            return ok, message

    ok, message = asyncio.run(probe())
    for secret in config.secrets():
        message = message.replace(secret, "••••••••")
    return ok, redact(message)
