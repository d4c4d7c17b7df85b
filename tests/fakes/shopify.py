"""Fake Shopify Admin API over real HTTP: GraphQL with the cost bucket, legacy REST, token grant.

Per docs order_apis.md §1: `X-Shopify-Access-Token` (401 with the "[API] Invalid API key…"
string), `orders(first:, query:"name:'#1001' OR …")` with `nodes: []` when nothing matches,
`extensions.cost` on every GraphQL answer and `THROTTLED` (HTTP 200 or 429) when the bucket is
short, `orders.json` (default `status=open`, call-limit header, 429 + `Retry-After: 2.0`, Link
pagination, 400 for status + page_info) and `POST /admin/oauth/access_token`.

Run standalone: `python -m tests.fakes.shopify --port 8111`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

from tests.fakes._server import COMMON_DEFAULTS, FAULT_KNOBS, FakeServer, Request, Responder

GRAPHQL_RE = re.compile(r"^/admin/api/([^/]+)/graphql\.json$")
REST_ORDERS_RE = re.compile(r"^/admin/api/([^/]+)/orders\.json$")
VERSION_RE = re.compile(r"^\d{4}-(01|04|07|10)$")
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
REST_429 = (
    "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted "
    "service."
)
OLDEST_SUPPORTED = "2025-01"

SHOPIFY_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "access_token": "shpat_fake_static_token_0001",  # a static Admin API token (None = none)
    "client_id": "fake-client-id",
    "client_secret": "fake-client-secret-0001",
    "token_ttl": 86399,
    "bucket_max": 2000.0,
    "restore_rate": 100.0,
    "requested_cost": 102,
    "actual_cost": 27,
    "throttled": False,  # fault: answer THROTTLED whatever the bucket holds
    "throttle_status": 200,  # HTTP status of a THROTTLED GraphQL answer (200 or 429)
    "throttle_available": 0,  # currentlyAvailable reported by a forced THROTTLED answer
    "rest_bucket": 40,
    "rest_throttled": False,  # fault: REST answers 429 + Retry-After
}


def shopify_order(
    *,
    name: str = "#1001",
    email: str = "anna@example.com",
    created_at: str = "2024-12-15T12:53:14Z",
    financial: str = "PAID",
    fulfillment: str = "FULFILLED",
    tracking: list[tuple[str | None, str, str | None]] | None = None,
    delivered: bool = False,
    items: list[tuple[str, str, int]] | None = None,
    cancelled: bool = False,
    closed: bool = False,
    zip_code: str = "2100",
    order_id: int | None = None,
) -> dict[str, Any]:
    """An order as the GraphQL API returns it (values synthetic; shape per Shopify's docs)."""
    order_id = order_id or int(re.sub(r"\D", "", name) or 1) + 5869612230000
    tracking = (
        [("GLS", "123456789", "https://gls-group.eu/track/123456789")]
        if tracking is None
        else tracking
    )
    fulfillments = []
    if tracking:
        fulfillments.append(
            {
                "status": "SUCCESS",
                "displayStatus": "DELIVERED" if delivered else "FULFILLED",
                "createdAt": "2024-12-16T09:00:00Z",
                "deliveredAt": "2024-12-18T12:00:00Z" if delivered else None,
                "trackingInfo": [
                    {"company": company, "number": number, "url": url}
                    for company, number, url in tracking
                ],
            }
        )
    return {
        "id": f"gid://shopify/Order/{order_id}",
        "name": name,
        "email": email,
        "createdAt": created_at,
        "cancelledAt": "2024-12-16T10:00:00Z" if cancelled else None,
        "closedAt": "2024-12-20T10:00:00Z" if closed else None,
        "displayFinancialStatus": financial,
        "displayFulfillmentStatus": fulfillment,
        "statusPageUrl": f"https://shop.example/1234/orders/{order_id}/authenticate?key=abc",
        "totalPriceSet": {"shopMoney": {"amount": "144.0", "currencyCode": "DKK"}},
        "lineItems": {
            "nodes": [
                {"name": n, "sku": s, "quantity": q}
                for n, s, q in (items or [("Wool socks - M", "WS-M", 2)])
            ]
        },
        "fulfillments": fulfillments,
        # Protected customer data the bot must never pass on.
        "customer": {"firstName": "Anna", "lastName": "Jensen", "phone": "+4512345678"},
        "shippingAddress": {"address1": "Vestergade 1", "zip": zip_code, "city": "København"},
        "billingAddress": {"address1": "Vestergade 1", "zip": zip_code, "city": "København"},
    }


def rest_order(node: dict[str, Any]) -> dict[str, Any]:
    """The same order in the legacy REST shape."""
    fulfillment = {
        "FULFILLED": "fulfilled",
        "PARTIALLY_FULFILLED": "partial",
        "RESTOCKED": "restocked",
    }.get(node["displayFulfillmentStatus"])
    fulfillments = []
    for f in node["fulfillments"]:
        infos = f["trackingInfo"]
        fulfillments.append(
            {
                "status": "success",
                "shipment_status": "delivered" if f["displayStatus"] == "DELIVERED" else None,
                "created_at": f["createdAt"],
                "tracking_company": infos[0]["company"] if infos else None,
                "tracking_number": infos[0]["number"] if infos else None,
                "tracking_numbers": [i["number"] for i in infos],
                "tracking_url": infos[0]["url"] if infos else None,
                "tracking_urls": [i["url"] for i in infos if i["url"]],
            }
        )
    return {
        "id": int(node["id"].rsplit("/", 1)[1]),
        "name": node["name"],
        "order_number": int(re.sub(r"\D", "", node["name"]) or 0),
        "email": node["email"],
        "created_at": node["createdAt"],
        "cancelled_at": node["cancelledAt"],
        "closed_at": node["closedAt"],
        "financial_status": node["displayFinancialStatus"].lower(),
        "fulfillment_status": fulfillment,
        "order_status_url": node["statusPageUrl"],
        "total_price": node["totalPriceSet"]["shopMoney"]["amount"],
        "currency": node["totalPriceSet"]["shopMoney"]["currencyCode"],
        "line_items": [
            {"title": i["name"], "name": i["name"], "sku": i["sku"], "quantity": i["quantity"]}
            for i in node["lineItems"]["nodes"]
        ],
        "fulfillments": fulfillments,
        "customer": node["customer"],
        "shipping_address": node["shippingAddress"],
    }


def parse_search(query: str) -> list[list[tuple[str, str]]]:
    """`name:'#1001' OR name:"1001" email:x` → [[("name", "#1001")], [("name", "1001"), …]]."""
    groups = []
    for part in re.split(r"\s+OR\s+", query.strip()):
        terms = []
        for match in re.finditer(r"(\w+):(?:'([^']*)'|\"([^\"]*)\"|(\S+))", part):
            value = next(v for v in match.groups()[1:] if v is not None)
            terms.append((match.group(1).lower(), value))
        if terms:
            groups.append(terms)
    return groups


def term_matches(order: dict[str, Any], field: str, value: str) -> bool:
    if field == "name":
        # Shopify's search is token based: "1001" also finds "#1001".
        name = str(order["name"]).lower()
        return value.lower() in (name, name.lstrip("#"))
    if field == "email":
        return str(order["email"]).lower() == value.lower()
    return False


class FakeShopify(FakeServer):
    """Shopify Admin API. Tests add orders with `srv.orders.append(shopify_order(...))`."""

    name = "fake-shopify"
    DEFAULTS = SHOPIFY_DEFAULTS
    fault_knobs = FAULT_KNOBS | {"throttled", "rest_throttled"}

    def _init_state(self) -> None:
        self.orders: list[dict[str, Any]] = []
        self.minted: dict[str, float] = {}  # token -> expiry (time.time())
        self._available = float(self.scenario.bucket_max)
        self._at = time.monotonic()
        self._rest_used = 0

    def _on_reset(self) -> None:
        self.orders.clear()
        self.minted.clear()
        self._available = float(self.scenario.bucket_max)
        self._at = time.monotonic()

    def expire_tokens(self) -> None:
        """Every minted token is now expired (the next request with one gets 401)."""
        self.minted = {token: 0.0 for token in self.minted}

    # --- dispatch -----------------------------------------------------------------------------

    async def handle(self, req: Request, resp: Responder) -> None:
        sc = self.take_scenario()
        if await self.before_headers(sc, resp):
            return
        if req.method == "POST" and req.path == "/admin/oauth/access_token":
            await self._token(req, resp, sc)
            return
        graphql = GRAPHQL_RE.match(req.path)
        rest = REST_ORDERS_RE.match(req.path)
        if not graphql and not rest:
            await resp.send(404, {"errors": "Not Found"})
            return
        version = (graphql or rest).group(1)
        headers = [("X-Shopify-API-Version", self._served_version(version))]
        if sc.status:
            await self._fault(resp, int(sc.status), sc, headers)
            return
        if not self._authorized(req, sc):
            await resp.send(401, {"errors": INVALID_TOKEN}, headers=headers)
            return
        if graphql and req.method == "POST":
            await self._graphql(req, resp, sc, headers)
        elif rest and req.method == "GET":
            await self._rest(req, resp, sc, headers)
        else:
            await resp.send(406, {"errors": "Not Acceptable"}, headers=headers)

    @staticmethod
    def _served_version(version: str) -> str:
        # An unknown or retired version "falls forward" to the oldest supported one.
        if version == "unstable" or (VERSION_RE.match(version) and version >= OLDEST_SUPPORTED):
            return version
        return OLDEST_SUPPORTED

    def _authorized(self, req: Request, sc) -> bool:
        token = req.headers.get("x-shopify-access-token", "")
        if not token:
            return False
        if sc.access_token and token == sc.access_token:
            return True
        return self.minted.get(token, 0.0) > time.time()

    async def _fault(self, resp: Responder, status: int, sc, headers: list) -> None:
        if sc.retry_after is not None:
            headers = [*headers, ("Retry-After", str(sc.retry_after))]
        bodies = {
            401: {"errors": INVALID_TOKEN},
            402: {"errors": "This shop's plan does not have access to this feature"},
            403: {"errors": "This action requires merchant approval for read_orders scope."},
            404: {"errors": "Not Found"},
            423: {"errors": "This shop is unavailable"},
            429: {"errors": REST_429},
        }
        await resp.send(
            status, bodies.get(status, {"errors": "An unexpected error occurred"}), headers=headers
        )

    # --- token grant --------------------------------------------------------------------------

    async def _token(self, req: Request, resp: Responder, sc) -> None:
        if req.json is not None and isinstance(req.json, dict):
            form = {k: str(v) for k, v in req.json.items()}
        else:
            form = {k: v[0] for k, v in parse_qs(req.body.decode("latin-1")).items()}
        if form.get("grant_type") != "client_credentials":
            await resp.send(400, {"error": "unsupported_grant_type"})
            return
        if form.get("client_id") != sc.client_id or form.get("client_secret") != sc.client_secret:
            await resp.send(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
            )
            return
        token = "shpat_" + secrets.token_hex(16)
        self.minted[token] = time.time() + float(sc.token_ttl)
        await resp.send(
            200, {"access_token": token, "scope": "read_orders", "expires_in": sc.token_ttl}
        )

    # --- GraphQL ------------------------------------------------------------------------------

    def _cost(self, sc, *, throttled: bool) -> dict[str, Any]:
        available = sc.throttle_available if throttled and sc.throttled else self._available
        return {
            "requestedQueryCost": sc.requested_cost,
            "actualQueryCost": None if throttled else sc.actual_cost,
            "throttleStatus": {
                "maximumAvailable": float(sc.bucket_max),
                "currentlyAvailable": int(available),
                "restoreRate": float(sc.restore_rate),
            },
        }

    async def _graphql(self, req: Request, resp: Responder, sc, headers: list) -> None:
        body = req.json
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            await resp.send(
                400, {"errors": {"query": "Required parameter missing or invalid"}}, headers=headers
            )
            return
        now = time.monotonic()
        self._available = min(
            float(sc.bucket_max), self._available + float(sc.restore_rate) * (now - self._at)
        )
        self._at = now
        if sc.throttled or self._available < float(sc.requested_cost):
            await resp.send(
                int(sc.throttle_status),
                {
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {
                                "code": "THROTTLED",
                                "documentation": "https://shopify.dev/api/usage/rate-limits",
                            },
                        }
                    ],
                    "extensions": {"cost": self._cost(sc, throttled=True)},
                },
                headers=headers,
            )
            return
        self._available -= float(sc.actual_cost)
        query = body["query"]
        variables = body.get("variables") or {}
        if "orders(" not in query:
            await resp.send(
                200,
                {
                    "errors": [
                        {
                            "message": "Field 'orders' is missing",
                            "extensions": {"code": "undefinedField"},
                        }
                    ]
                },
                headers=headers,
            )
            return
        search = variables.get("q")
        if search is None:
            inline = re.search(r"query:\s*\"((?:[^\"\\]|\\.)*)\"", query)
            search = inline.group(1) if inline else ""
        first = int((re.search(r"first:\s*(\d+)", query) or [None, "50"])[1])
        groups = parse_search(search)
        nodes = [
            order
            for order in self.orders
            if any(all(term_matches(order, f, v) for f, v in terms) for terms in groups)
        ][:first]
        await resp.send(
            200,
            {
                "data": {"orders": {"nodes": nodes}},
                "extensions": {"cost": self._cost(sc, throttled=False)},
            },
            headers=headers,
        )

    # --- REST ---------------------------------------------------------------------------------

    async def _rest(self, req: Request, resp: Responder, sc, headers: list) -> None:
        params = {k: v[0] for k, v in parse_qs(req.query).items()}
        self._rest_used = min(int(sc.rest_bucket), self._rest_used + 1)
        headers = [
            *headers,
            ("X-Shopify-Shop-Api-Call-Limit", f"{self._rest_used}/{sc.rest_bucket}"),
        ]
        if sc.rest_throttled:
            retry = sc.retry_after if sc.retry_after is not None else "2.0"
            await resp.send(
                429, {"errors": REST_429}, headers=[*headers, ("Retry-After", str(retry))]
            )
            return
        if "page_info" in params and "status" in params:
            await resp.send(
                400,
                {"errors": "status cannot be passed when page_info is present"},
                headers=headers,
            )
            return
        offset = 0
        status = params.get("status", "open")
        if "page_info" in params:
            # The cursor carries the first page's filters, as Shopify's does.
            cursor = base64.urlsafe_b64decode(params["page_info"].encode()).decode()
            offset_text, _, status = cursor.partition(":")
            offset = int(offset_text)
        orders = [rest_order(o) for o in self.orders]
        if status == "open":
            orders = [o for o in orders if not o["cancelled_at"] and not o["closed_at"]]
        elif status == "closed":
            orders = [o for o in orders if o["closed_at"]]
        elif status == "cancelled":
            orders = [o for o in orders if o["cancelled_at"]]
        if "name" in params:
            orders = [o for o in orders if o["name"].lower() == params["name"].lower()]
        limit = max(1, min(250, int(params.get("limit", "50"))))
        page = orders[offset : offset + limit]
        if offset + limit < len(orders):
            token = base64.urlsafe_b64encode(f"{offset + limit}:{status}".encode()).decode()
            link = f'<{self.url}{req.path}?limit={limit}&page_info={token}>; rel="next"'
            headers = [*headers, ("Link", link)]
        if "fields" in params:
            wanted = set(params["fields"].split(","))
            page = [{k: v for k, v in o.items() if k in wanted} for o in page]
        await resp.send(200, json.loads(json.dumps({"orders": page})), headers=headers)


if __name__ == "__main__":
    FakeShopify.main()
