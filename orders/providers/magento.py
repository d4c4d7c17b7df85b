"""Magento 2 / Adobe Commerce REST: one order by `increment_id`, shipments' tracks after checking.

Auth: a bearer token (admin or integration token), OAuth 1.0a HMAC-SHA256 signed integration
requests, or an admin login whose token is cached. `GET /V1/orders/{id}` takes the internal
entity_id, so the customer's number is always searched (`searchCriteria`, `in` both the typed
and the zero-padded form); not found is 200 with no items. Tracks come embedded in shipments.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from orders.carriers import tracking_url
from orders.providers.base import (
    OrderRecord,
    OrderSourceError,
    empty_order,
    iso_datetime,
    money,
    normalize_email,
    normalize_postcode,
    quantity,
)
from orders.providers.common import Provider, dig
from orders.providers.tokens import cached_token, forget_token

if TYPE_CHECKING:
    from orders.models import OrderSource

DEFAULT_PAD = 9
ORDER_FIELDS = (
    "items[entity_id,increment_id,state,status,customer_email,created_at,grand_total,"
    "order_currency_code,total_paid,total_due,total_refunded,"
    "items[name,sku,qty_ordered,qty_shipped,qty_canceled,parent_item_id],"
    "billing_address[postcode],"
    "extension_attributes[shipping_assignments[shipping[address[postcode]]]]],total_count"
)
SHIPMENT_FIELDS = "items[entity_id,created_at,tracks[track_number,title,carrier_code,created_at]]"

STATES = {
    "new": "processing",
    "processing": "processing",
    "complete": "completed",
    "closed": "refunded",
    "canceled": "cancelled",
    "holded": "on_hold",
    "pending_payment": "pending_payment",
    "payment_review": "pending_payment",
}


def pct(value: str) -> str:
    """RFC 3986 percent-encoding, as OAuth 1.0a requires."""
    return quote(str(value), safe="~-._")


def oauth1_header(
    *,
    method: str,
    url: str,
    query: list[tuple[str, str]],
    consumer_key: str,
    consumer_secret: str,
    token: str,
    token_secret: str,
    nonce: str | None = None,
    timestamp: str | None = None,
) -> str:
    """The `Authorization: OAuth …` header (HMAC-SHA256), query parameters included."""
    oauth = {
        "oauth_consumer_key": consumer_key,
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_signature_method": "HMAC-SHA256",
        "oauth_timestamp": timestamp or str(int(time.time())),
        "oauth_token": token,
        "oauth_version": "1.0",
    }
    signature = oauth1_signature(
        method=method,
        url=url,
        params=[*query, *oauth.items()],
        consumer_secret=consumer_secret,
        token_secret=token_secret,
    )
    oauth["oauth_signature"] = signature
    return "OAuth " + ",".join(f'{k}="{pct(v)}"' for k, v in oauth.items())


def oauth1_signature(
    *, method: str, url: str, params: list[tuple[str, str]], consumer_secret: str, token_secret: str
) -> str:
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    base_url = f"{scheme}://{host}{parts.path}"
    pairs = sorted((pct(k), pct(v)) for k, v in params if k != "oauth_signature")
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join((method.upper(), pct(base_url), pct(normalized)))
    key = f"{pct(consumer_secret)}&{pct(token_secret)}"
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def search_params(
    filters: list[tuple[str, str, str]], *, page_size: int, fields: str
) -> list[tuple[str, str]]:
    """searchCriteria for ANDed filters (one filter per group)."""
    params: list[tuple[str, str]] = []
    for group, (field, value, condition) in enumerate(filters):
        prefix = f"searchCriteria[filter_groups][{group}][filters][0]"
        params += [
            (f"{prefix}[field]", field),
            (f"{prefix}[value]", value),
            (f"{prefix}[condition_type]", condition),
        ]
    params += [("searchCriteria[pageSize]", str(page_size)), ("fields", fields)]
    return params


def increment_candidates(order_number: str, pad: int) -> list[str]:
    typed = order_number.strip().lstrip("#").strip()
    values = [typed]
    if typed.isdigit() and len(typed) < pad:
        values.append(typed.zfill(pad))
    return values


def magento_message(body: Any) -> str:
    """The error message with its %1 / %name parameters filled in."""
    if not isinstance(body, dict):
        return ""
    message = str(body.get("message") or "")
    params = body.get("parameters")
    if isinstance(params, dict):
        for name, value in params.items():
            message = message.replace(f"%{name}", str(value))
    elif isinstance(params, list):
        for index, value in enumerate(params, start=1):
            message = message.replace(f"%{index}", str(value))
    return message


def _shipments(body: Any, carrier_urls: Any) -> list[dict[str, Any]]:
    """A shipment per track of each of the order's shipments; the link from the carrier code,
    else from the track's title (shops name their carriers freely)."""
    shipments = []
    for shipment in (body.get("items") if isinstance(body, dict) else None) or []:
        for track in shipment.get("tracks") or []:
            carrier = track.get("title") or track.get("carrier_code")
            number = track.get("track_number")
            shipments.append(
                {
                    "carrier": carrier,
                    "tracking_number": number,
                    "tracking_url": tracking_url(track.get("carrier_code"), number, carrier_urls)
                    or tracking_url(track.get("title"), number, carrier_urls),
                    "status": None,
                    "shipped_at": iso_datetime(
                        track.get("created_at") or shipment.get("created_at")
                    ),
                    "delivered_at": None,
                }
            )
    return shipments


def financial_status(data: dict[str, Any], state: str) -> str:
    """The order's payment state from Magento's totals (refunds first, then what is paid
    against what is due) and its state."""

    def number(key: str) -> float | None:
        try:
            return float(data[key]) if data.get(key) is not None else None
        except (TypeError, ValueError):
            return None

    total, paid = number("grand_total"), number("total_paid")
    due, refunded = number("total_due"), number("total_refunded")
    if refunded:
        return "refunded" if total is not None and refunded >= total else "partially_refunded"
    if state == "canceled" and not paid:
        return "voided"
    if paid and (due is None or due <= 0):
        return "paid"
    if paid:
        return "partially_paid"
    if state in ("pending_payment", "payment_review", "new"):
        return "pending"
    return "unknown" if paid is None else "pending"


class MagentoProvider(Provider):
    label = "Magento"
    auth_methods = ("access_token", "oauth1", "admin_login")

    @classmethod
    def source_errors(cls, source: OrderSource) -> dict[str, str]:
        """For Magento the order number "prefix" is the zero-padding width (1–32 digits)."""
        errors = super().source_errors(source)
        pad = source.order_number_prefix
        if pad and (not pad.isdigit() or not 0 < int(pad) <= 32):
            errors["order_number_prefix"] = (
                "For Magento enter the number of digits of your order numbers (e.g. 9)."
            )
        return errors

    @property
    def api(self) -> str:
        store = self.source.store_code.strip("/")
        return (
            f"{self.source.base_url}/rest/{store}/V1"
            if store
            else f"{self.source.base_url}/rest/V1"
        )

    def describe(self) -> str:
        return self.api

    async def _mint(self) -> tuple[str, float | None]:
        response = await self.http.send(
            "POST",
            f"{self.source.base_url}/rest/V1/integration/admin/token",
            op="admin token",
            json={"username": self.source.client_id, "password": self.source.client_secret},
        )
        if response.status_code != 200:
            message = magento_message(self._maybe_json(response)) or self.detail(response)
            if "2fa" in message.lower():
                raise OrderSourceError(
                    "auth",
                    "Magento's two-factor authentication blocks admin-token logins for this user "
                    f"({message}). Use an integration (OAuth 1.0a) instead.",
                    status=response.status_code,
                )
            raise OrderSourceError(
                "auth",
                f"Magento refused the admin login (HTTP {response.status_code}: {message}).",
                status=response.status_code,
            )
        token = self.json_body(response, "the admin token request")
        if not isinstance(token, str) or not token:
            raise OrderSourceError("bad_response", "Magento's admin token answer is not a token.")
        self.http.secrets.append(token)
        return token, 4 * 3600

    @staticmethod
    def _maybe_json(response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    async def _get(self, path: str, params: list[tuple[str, str]], *, op: str):
        url = f"{self.api}{path}"
        query = "&".join(f"{pct(k)}={pct(v)}" for k, v in params)
        for attempt in (1, 2):
            headers = {"Accept": "application/json"}
            method = self.source.auth_method
            if method == "oauth1":
                headers["Authorization"] = oauth1_header(
                    method="GET",
                    url=url,
                    query=params,
                    consumer_key=self.source.client_id,
                    consumer_secret=self.source.client_secret,
                    token=self.source.access_token,
                    token_secret=self.source.token_secret,
                )
            elif method == "admin_login":
                token = await cached_token(self.source, self._mint, default_ttl=4 * 3600)
                self.http.secrets.append(token)
                headers["Authorization"] = f"Bearer {token}"
            else:
                headers["Authorization"] = f"Bearer {self.source.access_token}"
            response = await self.http.send("GET", f"{url}?{query}", op=op, headers=headers)
            if response.status_code == 401 and method == "admin_login" and attempt == 1:
                await forget_token(self.source)  # expired (4 h) or revoked: log in once more
                continue
            if response.status_code == 401:
                message = magento_message(self._maybe_json(response)) or self.detail(response)
                hint = ""
                if method == "access_token" and "isn't authorized" in message:
                    hint = (
                        " If this is an integration token: Magento 2.4.4+ accepts it as a bearer "
                        "token only with “Allow OAuth Access Tokens to be used as standalone "
                        "Bearer tokens” on; otherwise choose OAuth 1.0a signing."
                    )
                raise OrderSourceError(
                    "auth",
                    f"Magento rejected our credentials (HTTP 401: {message}).{hint}",
                    status=401,
                )
            if response.status_code != 200:
                raise self.fail_status(response, op)
            return self.json_body(response, op)
        raise AssertionError("unreachable")  # pragma: no cover

    async def find(
        self, order_number: str, *, email: str = "", postcode: str = ""
    ) -> OrderRecord | None:
        pad = int(self.source.order_number_prefix or DEFAULT_PAD)
        candidates = increment_candidates(order_number, pad)
        body = await self._get(
            "/orders",
            search_params(
                [("increment_id", ",".join(candidates), "in")], page_size=5, fields=ORDER_FIELDS
            ),
            op="order search",
        )
        items = body.get("items") if isinstance(body, dict) else None
        if items is None and isinstance(body, dict) and body.get("total_count") == 0:
            items = []  # `fields=` drops an empty items list on some versions
        if not isinstance(items, list):
            raise OrderSourceError("bad_response", "Magento's answer has no items list.")
        order = next(
            (o for o in items if isinstance(o, dict) and o.get("increment_id") in candidates), None
        )
        if order is None:
            return None
        postcodes = [dig(order, "billing_address", "postcode")]
        for assignment in dig(order, "extension_attributes", "shipping_assignments") or []:
            postcodes.append(dig(assignment, "shipping", "address", "postcode"))
        return OrderRecord(
            order=self._normalize(order),
            email=normalize_email(order.get("customer_email")),
            postcodes=[normalize_postcode(p) for p in postcodes if p],
            ref=order.get("entity_id"),
        )

    async def complete(self, record: OrderRecord) -> dict[str, Any]:
        if record.ref is None:
            return record.order
        body = await self._get(
            "/shipments",
            search_params(
                [("order_id", str(record.ref), "eq")], page_size=20, fields=SHIPMENT_FIELDS
            ),
            op="shipments",
        )
        shipments = _shipments(body, self.source.carrier_urls)
        order = dict(record.order)
        order["shipments"] = shipments
        if shipments and order["status"] == "completed":
            order["status"] = "shipped"
        return order

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        order = empty_order("magento")
        state = str(data.get("state") or "")
        items = [
            i
            for i in data.get("items") or []
            if isinstance(i, dict) and not i.get("parent_item_id")
        ]
        ordered = sum(quantity(i.get("qty_ordered")) for i in items)
        shipped = sum(quantity(i.get("qty_shipped")) for i in items)
        if state == "canceled":
            fulfillment = "cancelled"
        elif state == "holded":
            fulfillment = "on_hold"
        elif ordered and shipped >= ordered:
            fulfillment = "fulfilled"
        elif shipped:
            fulfillment = "partially_fulfilled"
        else:
            fulfillment = "unfulfilled"
        status = STATES.get(state, "unknown")
        if status == "processing" and fulfillment == "partially_fulfilled":
            status = "partially_shipped"
        order.update(
            order_number=str(data.get("increment_id") or ""),
            external_id=str(data.get("entity_id") or ""),
            created_at=iso_datetime(data.get("created_at")),
            status=status,
            financial_status=financial_status(data, state),
            fulfillment_status=fulfillment,
            total=money(data.get("grand_total"), data.get("order_currency_code")),
            line_items=[
                {
                    "name": i.get("name") or "",
                    "sku": i.get("sku"),
                    "quantity": quantity(i.get("qty_ordered")),
                    "quantity_shipped": quantity(i.get("qty_shipped")),
                }
                for i in items
            ],
            raw_status={"magento": {"state": state, "status": data.get("status")}},
        )
        return order
