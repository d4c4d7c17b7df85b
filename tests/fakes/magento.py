"""Fake Magento 2 REST API over real HTTP: tokens, OAuth 1.0a checking, searchCriteria, shipments.

Per order_apis.md §2: admin token (a JSON string; a 2FA mode that refuses), the Google 2FA
endpoint, `GET /rest[/{store}]/V1/orders` with real searchCriteria parsing (bracketed or
%-encoded keys, eq/like/in/neq/gt/lt, OR within a group, AND across groups, pageSize,
currentPage, total_count, `fields=`), `GET /V1/orders/{entity_id}` (404 message),
`GET /V1/shipments` with tracks, HMAC-SHA256 OAuth 1.0a signatures verified including query
parameters, and integration tokens as bearers only when `integration_as_bearer` is on.

Run standalone: `python -m tests.fakes.magento --port 8112`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from tests.fakes._server import COMMON_DEFAULTS, FakeServer, Request, Responder

API_RE = re.compile(r"^/rest(?:/([A-Za-z0-9_]+))?/V1(/.*)$")
NOT_FOUND = "The entity that was requested doesn't exist. Verify the entity and try again."
NOT_AUTHORIZED = {
    "message": "The consumer isn't authorized to access %resources.",
    "parameters": {"resources": "Magento_Sales::actions_view"},
}
BAD_LOGIN = (
    "The account sign-in was incorrect or your account is disabled temporarily. Please wait and "
    "try again later."
)
TWO_FA = "Please use the 2fa provider-specific endpoints to obtain a token."

MAGENTO_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "admin_username": "admin",
    "admin_password": "admin-password-0001",
    "two_factor": False,  # admin token needs the 2FA provider endpoint
    "otp": "123456",
    "consumer_key": "ck_fake_0001",
    "consumer_secret": "cs_fake_secret_0001",
    "integration_token": "it_fake_token_0001",
    "integration_token_secret": "its_fake_secret_0001",
    "integration_as_bearer": False,
    "stores": ["default", "all", "dk"],
}


def pct(value: str) -> str:
    return quote(str(value), safe="~-._")


def magento_order(
    *,
    entity_id: int = 3,
    increment_id: str = "000001001",
    email: str = "anna@example.com",
    state: str = "complete",
    status: str | None = None,
    created_at: str = "2024-12-15 12:53:14",
    items: list[tuple[str, str, int, int]] | None = None,
    tracks: list[tuple[str, str, str]] | None = None,
    postcode: str = "2100",
    grand_total: float = 165.0,
    total_paid: float | None = 165.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(order, shipments) as Magento's REST API returns them (synthetic values)."""
    items = items if items is not None else [("Radiant Tee-M-Orange", "WS12-M-Orange", 1, 1)]
    tracks = tracks if tracks is not None else [("ups", "United Parcel Service", "1Y-9876543210")]
    order_items = []
    for index, (name, sku, ordered, shipped) in enumerate(items, start=1):
        order_items.append(
            {
                "item_id": index,
                "name": name,
                "sku": sku,
                "qty_ordered": ordered,
                "qty_shipped": shipped,
                "qty_canceled": 0,
                "product_type": "configurable",
                "parent_item_id": None,
            }
        )
        # A configurable product's child row: the client must not list it twice.
        order_items.append(
            {
                "item_id": 100 + index,
                "name": name,
                "sku": sku,
                "qty_ordered": ordered,
                "qty_shipped": shipped,
                "product_type": "simple",
                "parent_item_id": index,
            }
        )
    address = {
        "firstname": "Anna",
        "lastname": "Jensen",
        "street": ["Vestergade 1"],
        "postcode": postcode,
        "city": "København",
        "telephone": "+4512345678",
    }
    order = {
        "entity_id": entity_id,
        "increment_id": increment_id,
        "state": state,
        "status": status or {"new": "pending"}.get(state, state),
        "customer_email": email,
        "customer_firstname": "Anna",
        "customer_lastname": "Jensen",
        "created_at": created_at,
        "updated_at": created_at,
        "grand_total": grand_total,
        "total_paid": total_paid,
        "total_due": 0 if total_paid else grand_total,
        "total_refunded": None,
        "order_currency_code": "DKK",
        "shipping_description": "GLS - Pakkeshop",
        "items": order_items,
        "billing_address": address,
        "payment": {"method": "banktransfer", "amount_ordered": grand_total},
        "status_histories": [],
        "extension_attributes": {
            "shipping_assignments": [
                {"shipping": {"address": address, "method": "gls_gls", "total": {}}, "items": []}
            ]
        },
    }
    shipments = []
    if tracks:
        shipments.append(
            {
                "entity_id": entity_id * 10,
                "order_id": entity_id,
                "increment_id": increment_id,
                "created_at": "2024-12-16 09:00:00",
                "items": [{"order_item_id": 1, "sku": items[0][1], "name": items[0][0], "qty": 1}],
                "tracks": [
                    {
                        "entity_id": entity_id * 100 + n,
                        "parent_id": entity_id * 10,
                        "order_id": entity_id,
                        "track_number": number,
                        "title": title,
                        "carrier_code": code,
                        "created_at": "2024-12-16 09:00:00",
                    }
                    for n, (code, title, number) in enumerate(tracks)
                ],
            }
        )
    return order, shipments


# --- searchCriteria -------------------------------------------------------------------------------

_KEY = re.compile(r"^searchCriteria((?:\[[^\]]*\])+)$")


def parse_search_criteria(query: str) -> dict[str, Any]:
    """{"groups": [[{field, value, condition_type}]], "page_size", "current_page", "fields"}."""
    groups: dict[int, dict[int, dict[str, str]]] = {}
    result: dict[str, Any] = {"page_size": None, "current_page": 1, "fields": None, "sort": []}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "fields":
            result["fields"] = value
            continue
        match = _KEY.match(key)
        if not match:
            continue
        parts = re.findall(r"\[([^\]]*)\]", match.group(1))
        if parts[:1] == ["filter_groups"] and len(parts) == 5 and parts[2] == "filters":
            group, index, attr = int(parts[1]), int(parts[3]), parts[4]
            groups.setdefault(group, {}).setdefault(index, {})[attr] = value
        elif parts == ["pageSize"]:
            result["page_size"] = int(value)
        elif parts == ["currentPage"]:
            result["current_page"] = int(value)
        elif parts[:1] == ["sortOrders"] and len(parts) == 3:
            result["sort"].append((parts[2], value))
    result["groups"] = [[groups[g][i] for i in sorted(groups[g])] for g in sorted(groups)]
    return result


def filter_matches(row: dict[str, Any], flt: dict[str, str]) -> bool:
    field, value = flt.get("field", ""), flt.get("value", "")
    condition = flt.get("condition_type", "eq")
    actual = row.get(field)
    text = "" if actual is None else str(actual)
    if condition == "eq":
        return text == value
    if condition == "neq":
        return text != value
    if condition == "in":
        return text in value.split(",")
    if condition == "nin":
        return text not in value.split(",")
    if condition == "like":
        pattern = "^" + re.escape(value).replace("%", ".*").replace("_", ".") + "$"
        return re.match(pattern, text, re.I) is not None
    if condition in ("gt", "lt", "gteq", "lteq"):
        try:
            a, b = float(text), float(value)
        except ValueError:
            a, b = text, value  # type: ignore[assignment]
        return {"gt": a > b, "lt": a < b, "gteq": a >= b, "lteq": a <= b}[condition]
    if condition == "null":
        return actual is None
    if condition == "notnull":
        return actual is not None
    return False


def parse_fields(spec: str) -> dict[str, Any]:
    """`items[a,b[c]],total_count` → {"items": {"a": {}, "b": {"c": {}}}, "total_count": {}}."""
    pos = 0

    def parse_list() -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        name = ""
        while pos < len(spec):
            char = spec[pos]
            pos += 1
            if char == ",":
                if name:
                    out.setdefault(name.strip(), {})
                name = ""
            elif char == "[":
                out[name.strip()] = parse_list()
                name = ""
            elif char == "]":
                break
            else:
                name += char
        if name.strip():
            out.setdefault(name.strip(), {})
        return out

    return parse_list()


def apply_fields(value: Any, selection: dict[str, Any]) -> Any:
    if not selection:
        return value
    if isinstance(value, list):
        return [apply_fields(v, selection) for v in value]
    if not isinstance(value, dict):
        return value
    return {k: apply_fields(value[k], sub) for k, sub in selection.items() if k in value}


def search(rows: list[dict[str, Any]], query: str) -> dict[str, Any]:
    criteria = parse_search_criteria(query)
    matched = [
        row
        for row in rows
        if all(any(filter_matches(row, f) for f in group) for group in criteria["groups"])
    ]
    page_size = criteria["page_size"]
    page = matched
    if page_size:
        start = (max(1, criteria["current_page"]) - 1) * page_size
        page = matched[start : start + page_size]
    body: dict[str, Any] = {
        "items": page,
        "search_criteria": {"filter_groups": [{"filters": g} for g in criteria["groups"]]},
        "total_count": len(matched),
    }
    if criteria["fields"]:
        body = apply_fields(body, parse_fields(criteria["fields"]))
    return body


# --- OAuth 1.0a -------------------------------------------------------------------------------------


def parse_oauth_header(header: str) -> dict[str, str]:
    params = {}
    for match in re.finditer(r'(\w+)="([^"]*)"', header[len("OAuth ") :]):
        params[match.group(1)] = unquote(match.group(2))
    return params


def oauth_signature(
    method: str,
    base_url: str,
    params: list[tuple[str, str]],
    consumer_secret: str,
    token_secret: str,
) -> str:
    pairs = sorted((pct(k), pct(v)) for k, v in params if k != "oauth_signature")
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join((method.upper(), pct(base_url), pct(normalized)))
    key = f"{pct(consumer_secret)}&{pct(token_secret)}"
    return base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()


class FakeMagento(FakeServer):
    """Magento 2 REST. Add orders with `srv.add_order(*magento_order(...))`."""

    name = "fake-magento"
    DEFAULTS = MAGENTO_DEFAULTS

    def _init_state(self) -> None:
        self.orders: list[dict[str, Any]] = []
        self.shipments: list[dict[str, Any]] = []
        self.admin_tokens: set[str] = set()
        self.nonces: set[str] = set()

    def _on_reset(self) -> None:
        self.orders.clear()
        self.shipments.clear()
        self.admin_tokens.clear()
        self.nonces.clear()

    def add_order(self, order: dict[str, Any], shipments: list[dict[str, Any]]) -> None:
        self.orders.append(order)
        self.shipments.extend(shipments)

    def revoke_admin_tokens(self) -> None:
        self.admin_tokens.clear()

    async def handle(self, req: Request, resp: Responder) -> None:
        sc = self.take_scenario()
        if await self.before_headers(sc, resp):
            return
        match = API_RE.match(req.path)
        if not match or (match.group(1) and match.group(1) not in sc.stores):
            await resp.send(404, {"message": "Request does not match any route."})
            return
        route = match.group(2)
        if sc.status:
            status = int(sc.status)
            headers = [("Retry-After", str(sc.retry_after))] if sc.retry_after is not None else []
            await resp.send(
                status,
                {"message": "Internal Error. Details are available in Magento log file."},
                headers=headers,
            )
            return
        if req.method == "POST" and route == "/integration/admin/token":
            await self._admin_token(req, resp, sc)
        elif req.method == "POST" and route == "/tfa/provider/google/authenticate":
            await self._tfa(req, resp, sc)
        elif req.method == "GET" and (
            route in ("/orders", "/shipments") or re.match(r"^/orders/\d+$", route)
        ):
            problem = self._auth_problem(req, sc)
            if problem is not None:
                await resp.send(401, problem)
                return
            if route == "/orders":
                await resp.send(200, search(self.orders, req.query))
            elif route == "/shipments":
                await resp.send(200, search(self.shipments, req.query))
            else:
                entity = int(route.rsplit("/", 1)[1])
                order = next((o for o in self.orders if o["entity_id"] == entity), None)
                if order is None:
                    await resp.send(404, {"message": NOT_FOUND})
                else:
                    await resp.send(200, order)
        else:
            await resp.send(404, {"message": "Request does not match any route."})

    async def _admin_token(self, req: Request, resp: Responder, sc) -> None:
        body = req.json if isinstance(req.json, dict) else {}
        if body.get("username") != sc.admin_username or body.get("password") != sc.admin_password:
            await resp.send(401, {"message": BAD_LOGIN})
            return
        if sc.two_factor:
            await resp.send(401, {"message": TWO_FA})
            return
        token = secrets.token_hex(16)
        self.admin_tokens.add(token)
        # Magento answers with a bare JSON string.
        await resp.send(200, json.dumps(token), content_type="application/json; charset=utf-8")

    async def _tfa(self, req: Request, resp: Responder, sc) -> None:
        body = req.json if isinstance(req.json, dict) else {}
        if (
            body.get("username") != sc.admin_username
            or body.get("password") != sc.admin_password
            or body.get("otp") != sc.otp
        ):
            await resp.send(401, {"message": BAD_LOGIN})
            return
        token = secrets.token_hex(16)
        self.admin_tokens.add(token)
        # Magento answers with a bare JSON string.
        await resp.send(200, json.dumps(token), content_type="application/json; charset=utf-8")

    def _auth_problem(self, req: Request, sc) -> dict[str, Any] | None:
        header = req.headers.get("authorization", "")
        if header.startswith("Bearer "):
            token = header[7:].strip()
            if token in self.admin_tokens:
                return None
            if token == sc.integration_token and sc.integration_as_bearer:
                return None
            return NOT_AUTHORIZED
        if header.startswith("OAuth "):
            return self._oauth_problem(req, sc, parse_oauth_header(header))
        return NOT_AUTHORIZED

    def _oauth_problem(self, req: Request, sc, oauth: dict[str, str]) -> dict[str, Any] | None:
        invalid = {"message": "The signature is invalid. Verify and try again."}
        if oauth.get("oauth_signature_method") != "HMAC-SHA256":
            return {"message": "The signature method is invalid."}
        if oauth.get("oauth_consumer_key") != sc.consumer_key:
            return {"message": "A consumer having the specified key does not exist"}
        if oauth.get("oauth_token") != sc.integration_token:
            return {"message": "Specified token does not exist"}
        nonce = oauth.get("oauth_nonce", "")
        if not nonce or nonce in self.nonces:
            return {"message": "The nonce is already being used by the consumer."}
        host = req.headers.get("host", f"{self.host}:{self.port}")
        base_url = f"http://{host.lower()}{req.path}"
        params = parse_qsl(req.query, keep_blank_values=True) + [
            (k, v) for k, v in oauth.items() if k != "oauth_signature"
        ]
        expected = oauth_signature(
            req.method, base_url, params, sc.consumer_secret, sc.integration_token_secret
        )
        if not hmac.compare_digest(expected, oauth.get("oauth_signature", "")):
            return invalid
        self.nonces.add(nonce)
        return None


if __name__ == "__main__":
    FakeMagento.main()
