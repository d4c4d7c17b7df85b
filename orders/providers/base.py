"""What every platform provider shares: its configuration, the raw order it finds, its errors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

# The normalized vocabularies (docs/orders.md): what reaches the customer and the AI.
ORDER_STATUSES = (
    "processing",
    "partially_shipped",
    "shipped",
    "delivered",
    "completed",
    "on_hold",
    "cancelled",
    "refunded",
    "pending_payment",
    "unknown",
)
FINANCIAL_STATUSES = (
    "pending",
    "authorized",
    "paid",
    "partially_paid",
    "partially_refunded",
    "refunded",
    "voided",
    "failed",
    "expired",
    "unknown",
)
FULFILLMENT_STATUSES = (
    "unfulfilled",
    "in_progress",
    "partially_fulfilled",
    "fulfilled",
    "on_hold",
    "delivered",
    "cancelled",
    "unknown",
)

# Probe used by "Test connection": a number no shop uses, so the search answers "not found".
PROBE_ORDER_NUMBER = "0000000000"


@dataclass
class SourceConfig:
    """An OrderSource as a provider sees it, secrets decrypted (never logged: repr=False)."""

    id: int
    kind: str
    name: str
    base_url: str
    auth_method: str
    auth_url: str = ""
    api_version: str = ""
    store_code: str = ""
    project_key: str = ""
    scope: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    token_secret: str = field(default="", repr=False)
    second_factor: str = "email"
    order_number_prefix: str = ""
    carrier_urls: dict[str, str] = field(default_factory=dict)
    connector: dict[str, Any] = field(default_factory=dict)
    timeout: float = 15.0
    routing_key: str = "order"
    language: str = "en"

    def secrets(self) -> list[str]:
        return [s for s in (self.client_secret, self.access_token, self.token_secret) if s]


@dataclass
class OrderRecord:
    """An order as found: the normalized order plus what verification needs (never shown)."""

    order: dict[str, Any]
    email: str = ""
    postcodes: list[str] = field(default_factory=list)
    # Provider-private handle for fetching the rest after verification (e.g. Magento entity_id).
    ref: Any = None
    # The platform itself only answers for a matching email/postcode (generic "verify": "api").
    verified_by_platform: bool = False


class OrderSourceError(Exception):
    """The platform could not answer. `reason` is a stable word, `message` is for staff.

    reason: auth, forbidden, config, rate_limited, timeout, unavailable, bad_response.
    """

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


def empty_order(source: str) -> dict[str, Any]:
    return {
        "source": source,
        "order_number": "",
        "external_id": "",
        "created_at": None,
        "status": "unknown",
        "financial_status": "unknown",
        "fulfillment_status": "unknown",
        "total": None,
        "line_items": [],
        "shipments": [],
        "status_page_url": None,
        "raw_status": {},
    }


# Currencies whose smallest unit is not a hundredth (ISO 4217 minor units).
MINOR_UNITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def minor_units(currency: Any) -> int:
    return MINOR_UNITS.get(str(currency).upper(), 2)


def money(amount: Any, currency: Any) -> dict[str, str] | None:
    """Money as a decimal string with the currency's decimals (floats from Magento, strings
    from Shopify, scaled integers from commercetools): "144.0" DKK is "144.00", 1500 JPY is
    "1500", and a more precise amount keeps its digits ("2.9905") but not trailing zeros
    past the currency's ("299.0000" DKK is "299.00")."""
    if amount in (None, "") or not currency or isinstance(amount, bool):
        return None
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite():
        return None
    places = minor_units(currency)
    step = Decimal(1).scaleb(-places)
    if value.as_tuple().exponent > -places:  # type: ignore[operator]
        value = value.quantize(step)
    else:
        while value.as_tuple().exponent < -places:  # type: ignore[operator]
            shorter = value.quantize(Decimal(1).scaleb(value.as_tuple().exponent + 1))  # type: ignore[operator]
            if shorter != value:
                break
            value = shorter
    return {"amount": str(value), "currency": str(currency)}


def iso_datetime(value: Any, *, naive_is_utc: bool = True) -> str | None:
    """An ISO-8601 UTC timestamp from the formats platforms use ('2017-08-21 22:22:19' = UTC)."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        if not naive_is_utc:
            return parsed.isoformat()
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def quantity(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


# Why two pairs of cleaners: orders.extract's clean_email/clean_postcode *find* a plausible
# address or postcode in chat text and return "" for anything else (punctuation around it
# dropped, a postcode's inner spaces kept). These *normalize* for the second-factor comparison
# (services.factor_matches): the platform's stored value and the customer's both take this form,
# nothing is rejected (a platform's value is compared as stored), and a postcode loses every
# space so "2100 KBH" typed matches "2100KBH" stored.


def normalize_email(value: Any) -> str:
    """Any text, trimmed and lower-cased (email addresses compare case-insensitively)."""
    return str(value or "").strip().lower()


def normalize_postcode(value: Any) -> str:
    """Any text without whitespace, upper-cased ("2100 kbh" and "2100KBH" are the same)."""
    return "".join(str(value or "").split()).upper()
