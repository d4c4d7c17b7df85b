"""Shopify Admin API: one order by its name (`#1001`), GraphQL with the cost throttle, or REST.

Auth is `X-Shopify-Access-Token`: a static Admin API token, or one minted with the
client-credentials grant and cached until shortly before it expires. Not found is HTTP 200 with
no nodes; names are compared exactly after the search, because Shopify's search is fuzzy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings

from config.redis import get_redis
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
from outbound.http import retry_after_seconds

if TYPE_CHECKING:
    from orders.models import OrderSource

# Shopify's quarterly releases (e.g. 2025-10) or "unstable".
API_VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")

BUCKET_KEY = "cb:orders:shopify-bucket:{}"
DEFAULT_QUERY_COST = 60

ORDER_FIELDS = """id name email createdAt cancelledAt closedAt
  displayFinancialStatus displayFulfillmentStatus statusPageUrl
  totalPriceSet{shopMoney{amount currencyCode}}
  lineItems(first:50){nodes{name sku quantity}}
  fulfillments{status displayStatus createdAt deliveredAt trackingInfo{company number url}}"""
ADDRESS_FIELDS = " shippingAddress{zip} billingAddress{zip}"
QUERY = "query($q:String!){orders(first:3,query:$q){nodes{%s}}}"

REST_FIELDS = (
    "id,name,email,created_at,cancelled_at,closed_at,financial_status,fulfillment_status,"
    "order_status_url,total_price,currency,line_items,fulfillments"
)

FULFILLMENT = {
    "FULFILLED": "fulfilled",
    "IN_PROGRESS": "in_progress",
    "PENDING_FULFILLMENT": "in_progress",
    "ON_HOLD": "on_hold",
    "OPEN": "unfulfilled",
    "UNFULFILLED": "unfulfilled",
    "SCHEDULED": "unfulfilled",
    "REQUEST_DECLINED": "unfulfilled",
    "PARTIALLY_FULFILLED": "partially_fulfilled",
    "RESTOCKED": "cancelled",
    # REST values
    "PARTIAL": "partially_fulfilled",
}
FINANCIAL = {
    "AUTHORIZED": "authorized",
    "EXPIRED": "expired",
    "PAID": "paid",
    "PARTIALLY_PAID": "partially_paid",
    "PARTIALLY_REFUNDED": "partially_refunded",
    "PENDING": "pending",
    "REFUNDED": "refunded",
    "VOIDED": "voided",
}


def version_warning(version: str, today: dt.date | None = None) -> str:
    """A warning when a Shopify API version is near or past its ~12 months of support."""
    if version == "unstable":
        return "“unstable” changes without notice: pin a dated version such as 2025-10."
    if not API_VERSION_RE.match(version):
        return ""
    year, month = (int(part) for part in version.split("-"))
    end = dt.date(year + 1, month, 1)
    today = today or dt.date.today()
    if today >= end:
        return (
            f"API version {version} is past its 12 months of support: Shopify now answers "
            "with the oldest supported version instead. Move to a newer version."
        )
    if today >= end - dt.timedelta(days=90):
        return (
            f"API version {version} reaches the end of its support around {end:%Y-%m}: "
            "test a newer version and switch."
        )
    return ""


def name_candidates(order_number: str, prefix: str) -> list[str]:
    """Names to search for: the shop's prefix + number, `#` + number, and what was typed."""
    typed = order_number.strip()
    core = typed.lstrip("#").strip()
    prefix = prefix or "#"
    names = []
    if core.upper().startswith(prefix.lstrip("#").upper()) and prefix.lstrip("#"):
        names.append(("#" if prefix.startswith("#") else "") + core)
    else:
        names.append(prefix + core)
    names += ["#" + core, core]
    unique: list[str] = []
    for name in names:
        if name and name.lower() not in (u.lower() for u in unique):
            unique.append(name)
    return unique[:3]


def _quote(name: str) -> str:
    # The extractor only lets [A-Za-z0-9#-_/.] through; quotes would end the search term.
    return "'" + name.replace("\\", "").replace("'", "") + "'"


def order_status(*, cancelled: bool, financial: str, fulfillment: str, all_delivered: bool) -> str:
    if cancelled:
        return "cancelled"
    if financial == "refunded":
        return "refunded"
    if fulfillment == "fulfilled":
        return "delivered" if all_delivered else "shipped"
    if fulfillment == "partially_fulfilled":
        return "partially_shipped"
    if fulfillment == "on_hold":
        return "on_hold"
    if financial in ("pending", "expired"):
        return "pending_payment"
    return "processing"


def _graphql_shipments(fulfillments: list[dict], carrier_urls: Any) -> list[dict[str, Any]]:
    """A shipment per tracking number of each GraphQL fulfillment (one without any still
    counts); the carrier's own link when Shopify has none."""
    shipments = []
    for f in fulfillments:
        status = str(f.get("displayStatus") or "").lower() or None
        infos = [i for i in f.get("trackingInfo") or [] if isinstance(i, dict)] or [{}]
        for info in infos:
            number = info.get("number")
            shipments.append(
                {
                    "carrier": info.get("company"),
                    "tracking_number": number,
                    "tracking_url": info.get("url")
                    or tracking_url(info.get("company"), number, carrier_urls),
                    "status": status,
                    "shipped_at": iso_datetime(f.get("createdAt")),
                    "delivered_at": iso_datetime(f.get("deliveredAt")),
                }
            )
    return shipments


def _rest_shipments(fulfillments: list[dict], carrier_urls: Any) -> list[dict[str, Any]]:
    """The same from REST fulfillments, whose numbers and links are parallel lists (or, from
    older shops, single fields); REST does not say when a parcel arrived."""
    shipments = []
    for f in fulfillments:
        numbers = f.get("tracking_numbers") or (
            [f["tracking_number"]] if f.get("tracking_number") else []
        )
        urls = f.get("tracking_urls") or ([f["tracking_url"]] if f.get("tracking_url") else [])
        for index, number in enumerate(numbers or [None]):
            carrier = f.get("tracking_company")
            shipments.append(
                {
                    "carrier": carrier,
                    "tracking_number": number,
                    "tracking_url": (urls[index] if index < len(urls) else None)
                    or tracking_url(carrier, number, carrier_urls),
                    "status": f.get("shipment_status"),
                    "shipped_at": iso_datetime(f.get("created_at")),
                    "delivered_at": None,
                }
            )
    return shipments


class CostBucket:
    """A shop's GraphQL cost bucket as Shopify last reported it, kept in Redis for two minutes:
    a lookup that drained it makes the next one wait instead of being throttled."""

    def __init__(self, source_id: int) -> None:
        self.key = BUCKET_KEY.format(source_id)

    def read(self) -> dict[str, float] | None:
        raw = get_redis().get(self.key)
        return json.loads(raw) if raw else None

    def write(self, cost: dict[str, Any]) -> None:
        status = cost.get("throttleStatus") or {}
        try:
            bucket = {
                "available": float(status["currentlyAvailable"]),
                "maximum": float(status["maximumAvailable"]),
                "restore": float(status["restoreRate"]),
                "requested": float(cost.get("requestedQueryCost") or DEFAULT_QUERY_COST),
                "at": time.time(),
            }
        except (KeyError, TypeError, ValueError):
            return
        get_redis().set(self.key, json.dumps(bucket), ex=120)

    @staticmethod
    def wait_for(bucket: dict[str, float], requested: float | None = None) -> float:
        """Seconds until the bucket holds the query's cost again."""
        need = requested if requested is not None else bucket["requested"]
        restore = bucket["restore"] or 1.0
        available = min(
            bucket["maximum"], bucket["available"] + restore * (time.time() - bucket["at"])
        )
        return max(0.0, (need - available) / restore)


class ShopifyProvider(Provider):
    label = "Shopify"
    auth_methods = ("access_token", "client_credentials")

    @classmethod
    def source_errors(cls, source: OrderSource) -> dict[str, str]:
        errors = super().source_errors(source)
        if source.api_version and not API_VERSION_RE.match(source.api_version):
            errors["api_version"] = "Shopify versions look like 2025-10 (or “unstable”)."
        return errors

    @property
    def version(self) -> str:
        return self.source.api_version or settings.ORDERS_SHOPIFY_API_VERSION

    def describe(self) -> str:
        return f"{self.source.base_url}, API {self.version}"

    # --- auth ---------------------------------------------------------------------------------

    async def _mint(self) -> tuple[str, float | None]:
        response = await self.http.send(
            "POST",
            f"{self.source.base_url}/admin/oauth/access_token",
            op="token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.source.client_id,
                "client_secret": self.source.client_secret,
            },
            headers={"Accept": "application/json"},
        )
        if response.status_code != 200:
            raise OrderSourceError(
                "auth",
                "Shopify refused the client credentials (HTTP "
                f"{response.status_code}: {self.detail(response)}).",
                status=response.status_code,
            )
        body = self.json_body(response, "the token request")
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise OrderSourceError("bad_response", "Shopify's token answer has no access_token.")
        self.http.secrets.append(token)
        return token, body.get("expires_in")

    async def _token(self) -> str:
        if self.source.auth_method == "client_credentials":
            token = await cached_token(self.source, self._mint, default_ttl=86399)
            self.http.secrets.append(token)
            return token
        return self.source.access_token

    async def _authed(self, method: str, url: str, *, op: str, **kwargs: Any):
        """One request with the token; a minted token that was revoked is re-minted once."""
        for attempt in (1, 2):
            headers = {"X-Shopify-Access-Token": await self._token(), "Accept": "application/json"}
            response = await self.http.send(method, url, op=op, headers=headers, **kwargs)
            if (
                response.status_code == 401
                and attempt == 1
                and self.source.auth_method == "client_credentials"
            ):
                await forget_token(self.source)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _graphql(self, query: str, variables: dict[str, Any], *, op: str) -> dict:
        """One query, waiting first if the shared bucket is short, and again (within
        ORDERS_MAX_ATTEMPTS) each time Shopify throttles it; errors in the answer fail it."""
        url = f"{self.source.base_url}/admin/api/{self.version}/graphql.json"
        cost_bucket = CostBucket(self.source.id)
        bucket = await asyncio.to_thread(cost_bucket.read)
        if bucket:
            # Another lookup just drained the bucket: wait for it rather than be throttled.
            wait = cost_bucket.wait_for(bucket)
            if wait > 0:
                await self.http.wait(wait, unless=self._throttled_error())
        for attempt in range(1, max(1, settings.ORDERS_MAX_ATTEMPTS) + 1):
            response = await self._authed(
                "POST",
                url,
                op=op,
                json={"query": query, "variables": variables},
                retry_statuses=frozenset({502, 503, 504}),
            )
            body = None
            if response.headers.get("content-type", "").startswith("application/json"):
                body = self.json_body(response, op)
            cost = dig(body, "extensions", "cost")
            if isinstance(cost, dict):
                await asyncio.to_thread(cost_bucket.write, cost)
            errors = dig(body, "errors")
            throttled = isinstance(errors, list) and any(
                dig(e, "extensions", "code") == "THROTTLED" for e in errors
            )
            if throttled or response.status_code == 429:
                self.http.count("throttled")
                if attempt == settings.ORDERS_MAX_ATTEMPTS:
                    raise self._throttled_error()
                wait = self._throttle_wait(cost, response, attempt)
                await self.http.wait(wait, unless=self._throttled_error())
                continue
            if response.status_code != 200:
                raise self.fail_status(response, "the order search")
            if not isinstance(body, dict):
                raise OrderSourceError("bad_response", "Shopify's answer is not a JSON object.")
            if errors:
                raise self._refused(errors)
            return body
        raise self._throttled_error()  # pragma: no cover

    def _throttle_wait(self, cost: Any, response: Any, attempt: int) -> float:
        """How long a throttled query waits: until the bucket Shopify reported holds its cost,
        else what Retry-After says, else the usual backoff."""
        if isinstance(cost, dict) and dig(cost, "throttleStatus", "restoreRate"):
            return CostBucket.wait_for(
                {
                    "available": float(cost["throttleStatus"]["currentlyAvailable"]),
                    "maximum": float(cost["throttleStatus"]["maximumAvailable"]),
                    "restore": float(cost["throttleStatus"]["restoreRate"]),
                    "at": time.time(),
                    "requested": 0.0,
                },
                float(cost.get("requestedQueryCost") or DEFAULT_QUERY_COST),
            )
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        return self.http.backoff(attempt) if retry_after is None else retry_after

    def _refused(self, errors: Any) -> OrderSourceError:
        """The answer's first error, scrubbed: a missing scope is `forbidden`, the rest `config`."""
        first = errors[0] if isinstance(errors, list) and errors else errors
        message = dig(first, "message") or str(first)
        code = dig(first, "extensions", "code") or ""
        reason = "forbidden" if code == "ACCESS_DENIED" else "config"
        return OrderSourceError(
            reason, f"Shopify refused the query: {self.http.scrub(str(message))[:300]}"
        )

    @staticmethod
    def _throttled_error() -> OrderSourceError:
        return OrderSourceError(
            "rate_limited", "Shopify throttled the query (cost bucket empty).", status=429
        )

    # --- lookup -------------------------------------------------------------------------------

    async def find(
        self, order_number: str, *, email: str = "", postcode: str = ""
    ) -> OrderRecord | None:
        names = name_candidates(order_number, self.source.order_number_prefix)
        fields = ORDER_FIELDS + (ADDRESS_FIELDS if self.source.second_factor == "postcode" else "")
        search = " OR ".join(f"name:{_quote(n)}" for n in names)
        body = await self._graphql(QUERY % fields, {"q": search}, op="order search")
        nodes = dig(body, "data", "orders", "nodes")
        if not isinstance(nodes, list):
            raise OrderSourceError("bad_response", "Shopify's answer has no data.orders.nodes.")
        wanted = {n.lower() for n in names}
        node = next(
            (n for n in nodes if isinstance(n, dict) and str(n.get("name", "")).lower() in wanted),
            None,
        )
        if node is None:
            return None
        return OrderRecord(
            order=self._normalize(node),
            email=normalize_email(node.get("email")),
            postcodes=[
                normalize_postcode(dig(node, a, "zip"))
                for a in ("shippingAddress", "billingAddress")
                if dig(node, a, "zip")
            ],
        )

    def _normalize(self, node: dict[str, Any]) -> dict[str, Any]:
        order = empty_order("shopify")
        financial = FINANCIAL.get(str(node.get("displayFinancialStatus") or "").upper(), "unknown")
        fulfillment = FULFILLMENT.get(
            str(node.get("displayFulfillmentStatus") or "").upper(), "unknown"
        )
        fulfillments = [f for f in node.get("fulfillments") or [] if isinstance(f, dict)]
        delivered = bool(fulfillments) and all(
            str(f.get("displayStatus") or "").upper() == "DELIVERED" for f in fulfillments
        )
        if delivered and fulfillment == "fulfilled":
            fulfillment = "delivered"
        order.update(
            order_number=node.get("name") or "",
            external_id=node.get("id") or "",
            created_at=iso_datetime(node.get("createdAt")),
            status=order_status(
                cancelled=bool(node.get("cancelledAt")),
                financial=financial,
                fulfillment="fulfilled" if fulfillment == "delivered" else fulfillment,
                all_delivered=delivered,
            ),
            financial_status=financial,
            fulfillment_status="cancelled" if node.get("cancelledAt") else fulfillment,
            total=money(
                dig(node, "totalPriceSet", "shopMoney", "amount"),
                dig(node, "totalPriceSet", "shopMoney", "currencyCode"),
            ),
            line_items=[
                {
                    "name": i.get("name") or "",
                    "sku": i.get("sku"),
                    "quantity": quantity(i.get("quantity")),
                }
                for i in dig(node, "lineItems", "nodes") or []
                if isinstance(i, dict)
            ],
            shipments=_graphql_shipments(fulfillments, self.source.carrier_urls),
            status_page_url=node.get("statusPageUrl"),
            raw_status={
                "shopify": {
                    "displayFinancialStatus": node.get("displayFinancialStatus"),
                    "displayFulfillmentStatus": node.get("displayFulfillmentStatus"),
                }
            },
        )
        return order


class ShopifyRestProvider(ShopifyProvider):
    """The legacy REST Admin API (`orders.json?name=`), for shops that still use it."""

    label = "Shopify (REST)"

    async def find(
        self, order_number: str, *, email: str = "", postcode: str = ""
    ) -> OrderRecord | None:
        url = f"{self.source.base_url}/admin/api/{self.version}/orders.json"
        found = None
        # Every candidate is asked even after a hit, so "found" and "not found" cost the same.
        for name in name_candidates(order_number, self.source.order_number_prefix):
            response = await self._authed(
                "GET",
                url,
                op="order search",
                params={"name": name, "status": "any", "limit": "1", "fields": REST_FIELDS},
            )
            if response.status_code != 200:
                raise self.fail_status(response, "the order search")
            body = self.json_body(response, "the order search")
            orders = body.get("orders") if isinstance(body, dict) else None
            if not isinstance(orders, list):
                raise OrderSourceError("bad_response", "Shopify's answer has no orders list.")
            for candidate in orders:
                if (
                    found is None
                    and isinstance(candidate, dict)
                    and str(candidate.get("name", "")).lower() == name.lower()
                ):
                    found = candidate
        if found is None:
            return None
        return OrderRecord(
            order=self._normalize_rest(found), email=normalize_email(found.get("email"))
        )

    def _normalize_rest(self, data: dict[str, Any]) -> dict[str, Any]:
        order = empty_order("shopify")
        financial = FINANCIAL.get(str(data.get("financial_status") or "").upper(), "unknown")
        raw_fulfillment = data.get("fulfillment_status")
        fulfillment = (
            "unfulfilled"
            if raw_fulfillment is None
            else FULFILLMENT.get(str(raw_fulfillment).upper(), "unknown")
        )
        fulfillments = [f for f in data.get("fulfillments") or [] if isinstance(f, dict)]
        delivered = bool(fulfillments) and all(
            f.get("shipment_status") == "delivered" for f in fulfillments
        )
        order.update(
            order_number=data.get("name") or "",
            external_id=str(data.get("id") or ""),
            created_at=iso_datetime(data.get("created_at")),
            status=order_status(
                cancelled=bool(data.get("cancelled_at")),
                financial=financial,
                fulfillment=fulfillment,
                all_delivered=delivered,
            ),
            financial_status=financial,
            fulfillment_status="cancelled"
            if data.get("cancelled_at")
            else ("delivered" if delivered and fulfillment == "fulfilled" else fulfillment),
            total=money(data.get("total_price"), data.get("currency")),
            line_items=[
                {
                    "name": i.get("name") or i.get("title") or "",
                    "sku": i.get("sku"),
                    "quantity": quantity(i.get("quantity")),
                }
                for i in data.get("line_items") or []
                if isinstance(i, dict)
            ],
            shipments=_rest_shipments(fulfillments, self.source.carrier_urls),
            status_page_url=data.get("order_status_url"),
            raw_status={
                "shopify": {
                    "financial_status": data.get("financial_status"),
                    "fulfillment_status": raw_fulfillment,
                }
            },
        )
        return order
