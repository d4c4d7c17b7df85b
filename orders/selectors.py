"""Read side of order tracking: a turn's order source, and each source's call counters.

Counters per source live in the Redis hash `cb:orders:stats:<source id>` (see STATS_FIELDS);
`order_source_stats` / `order_sources_stats` read them for the admin and for monitoring.
"""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings

from chatbots.secrets import SecretValue
from config.redis import get_redis
from orders.models import OrderSource
from orders.providers.base import SourceConfig

STATS_KEY = "cb:orders:stats:{}"
# Integer fields of the stats hash; text fields: last_outcome, last_error, last_error_reason,
# last_error_at, last_ok_at (ISO timestamps).
STATS_FIELDS = (
    "calls",  # HTTP requests made (each retry counts)
    "errors",  # requests that failed: transport error, timeout or HTTP >= 400
    "retries",  # waits before a retry (backoff, Retry-After, Shopify's cost bucket)
    "throttled",  # 429 answers and Shopify THROTTLED bodies
    "timeout",
    "unavailable",  # transport errors (refused, reset)
    "ms_total",  # summed request durations, for an average
    "lookups",  # customer lookups that reached the platform
    "found",
    "not_found",
    "mismatch",  # found, but the email/postcode did not match (answered as not found)
    "failed",  # lookups that could not be answered (platform down, auth, config)
    "tests",  # admin connection tests
)


def _reveal(value: Any) -> str:
    # A freshly assigned value is still plain text until the row is saved and read back.
    return value.reveal() if isinstance(value, SecretValue) else str(value or "")


def order_source_config(source: OrderSource, *, language: str = "en") -> SourceConfig:
    """The provider's view of a source, secrets decrypted (raises SecretDecryptionError)."""
    return SourceConfig(
        id=source.pk,
        kind=source.kind,
        name=source.name,
        base_url=source.base_url.rstrip("/"),
        auth_method=source.auth_method,
        auth_url=source.auth_url.rstrip("/"),
        api_version=source.api_version,
        store_code=source.store_code,
        project_key=source.project_key,
        scope=source.scope,
        client_id=source.client_id,
        client_secret=_reveal(source.client_secret),
        access_token=_reveal(source.access_token),
        token_secret=_reveal(source.token_secret),
        second_factor=source.second_factor,
        order_number_prefix=source.order_number_prefix,
        carrier_urls=dict(source.carrier_urls or {}),
        connector=dict(source.connector or {}),
        timeout=source.timeout or settings.ORDERS_TIMEOUT,
        routing_key=source.routing_key,
        language=language,
    )


def order_source_for_turn(
    *, chatbot_id: int, routing_key: str, language: str = "en"
) -> SourceConfig | None:
    """The chatbot's active source whose routing key is the chosen flow's, if any."""
    source = OrderSource.objects.filter(
        chatbot_id=chatbot_id, active=True, routing_key=routing_key
    ).first()
    if source is None:
        return None
    return order_source_config(source, language=language)


def order_source_for_tool(*, chatbot_id: int, language: str = "en") -> SourceConfig | None:
    """The source the order tool (orders.tool) asks: the chatbot's first active one."""
    source = OrderSource.objects.filter(chatbot_id=chatbot_id, active=True).order_by("pk").first()
    if source is None:
        return None
    return order_source_config(source, language=language)


def order_source_stats(*, source_id: int) -> dict[str, Any]:
    # The shared client answers bytes (config.redis: no decode_responses).
    raw = cast(dict[bytes, bytes], get_redis().hgetall(STATS_KEY.format(source_id)))
    stats: dict[str, Any] = {name: 0 for name in STATS_FIELDS}
    for key, value in raw.items():
        name, text = key.decode(), value.decode()
        stats[name] = int(text) if name in STATS_FIELDS and text.lstrip("-").isdigit() else text
    stats["avg_ms"] = round(stats["ms_total"] / stats["calls"]) if stats["calls"] else None
    return stats


def order_sources_stats(*, chatbot_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Counters of every source (of `chatbot_ids`' bots when not None), with its chatbot and
    platform (for monitoring pages)."""
    rows = OrderSource.objects.select_related("chatbot").order_by("chatbot__public_id", "name")
    if chatbot_ids is not None:
        rows = rows.filter(chatbot_id__in=chatbot_ids)
    return [
        {
            "source_id": source.pk,
            "name": source.name,
            "chatbot": source.chatbot.public_id,
            "kind": source.kind,
            "active": source.active,
            **order_source_stats(source_id=source.pk),
        }
        for source in rows
    ]
