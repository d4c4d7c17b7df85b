"""A configurable JSON order API (what a generic-connector or BevCo customer might run).

`GET /v1/orders/{number}` answers `{"order": {...}}`; `GET /v1/search?number=` answers
`{"orders": [...]}` (empty list when nothing matches); `POST /v1/lookup` takes
`{"number", "email"}` and only answers for the right email. Knobs: the API key header, the
not-found style (404 or empty 200), and the common faults (status, retry_after, delays).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, unquote

from tests.fakes._server import COMMON_DEFAULTS, FakeServer, Request, Responder

DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "key_header": "x-api-key",
    "api_key": "generic-key-0001",
    "bearer": False,  # expect Authorization: Bearer <api_key> instead of the key header
    "wrap": True,  # GET /v1/orders/{n} answers {"order": {...}} (False: the order itself)
}


def generic_order(number: str = "DK-1001", email: str = "anna@example.com") -> dict[str, Any]:
    return {
        "id": f"ord_{number}",
        "number": number,
        "placed": "2024-12-15T12:53:14+01:00",
        "state": "SENT",
        "payment": {"state": "captured"},
        "customer": {"email": email, "name": "Anna Jensen", "phone": "+4512345678"},
        "lines": [{"title": "Rødvin, Barolo 2019", "sku": "BAR19", "qty": 3}],
        "parcels": [{"carrier": "PostNord", "code": "00370712345678901234", "link": None}],
        "sum": {"value": 897.5, "currency": "DKK"},
    }


class FakeOrderApi(FakeServer):
    name = "fake-order-api"
    DEFAULTS = DEFAULTS

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **scenario: Any):
        super().__init__(host, port, **scenario)
        self.orders: dict[str, dict[str, Any]] = {}

    def _on_reset(self) -> None:
        self.orders.clear()

    def add(self, order: dict[str, Any]) -> None:
        self.orders[order["number"]] = order

    def _authorized(self, req: Request, sc) -> bool:
        if sc.bearer:
            return req.headers.get("authorization", "") == f"Bearer {sc.api_key}"
        return req.headers.get(sc.key_header.lower(), "") == sc.api_key

    async def handle(self, req: Request, resp: Responder) -> None:
        sc = self.take_scenario()
        if sc.delay_before_headers:
            await asyncio.sleep(sc.delay_before_headers)
        if sc.status:
            headers = [("Retry-After", str(sc.retry_after))] if sc.retry_after is not None else []
            await resp.send(int(sc.status), {"error": "fault"}, headers=headers)
            return
        if not self._authorized(req, sc):
            await resp.send(401, {"error": "bad key"})
            return
        if req.method == "GET" and (match := re.match(r"^/v1/orders/([^/]+)$", req.path)):
            order = self.orders.get(unquote(match.group(1)))
            if order is None:
                await resp.send(404, {"error": "no such order"})
            else:
                await resp.send(200, {"order": order} if sc.wrap else order)
        elif req.method == "GET" and req.path == "/v1/search":
            number = parse_qs(req.query).get("number", [""])[0]
            found = [o for n, o in self.orders.items() if n == number]
            await resp.send(200, {"orders": found})
        elif req.method == "POST" and req.path == "/v1/lookup":
            body = req.json if isinstance(req.json, dict) else {}
            order = self.orders.get(str(body.get("number")))
            if order is None or order["customer"]["email"] != str(body.get("email", "")).lower():
                await resp.send(404, {"error": "no such order"})
            else:
                public = {k: v for k, v in order.items() if k != "customer"}
                await resp.send(200, {"order": public})
        else:
            await resp.send(404, {"error": "no route"})
