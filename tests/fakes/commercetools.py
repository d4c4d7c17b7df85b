"""Fake commercetools auth + HTTP API over real HTTP (one server plays both hosts).

Per order_apis.md §3: `POST /oauth/token` (Basic client_id:secret, client_credentials in the
form body or the query, scope subset check, 401 `invalid_client`), `GET /{projectKey}/orders/
order-number={n}` and the in-store path (URL-decoded number, 404 `ResourceNotFound`, 401
`invalid_token` once a token expired, 403 `insufficient_scope`), LocalizedString names,
`Single` and `Multiple` shipping modes, faults 502/503.

Run standalone: `python -m tests.fakes.commercetools --port 8113`.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, unquote

from tests.fakes._server import COMMON_DEFAULTS, FakeServer, Request, Responder

ORDER_RE = re.compile(r"^/([A-Za-z0-9_-]+)(?:/in-store/key=([^/]+))?/orders/order-number=([^/]+)$")

CT_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "project_key": "dilling-test",
    "client_id": "ct-client-0001",
    "client_secret": "ct-secret-0001-abcdef",
    "client_scopes": None,  # None = view_orders:<project_key>
    "token_ttl": 172800,
}


def ct_error(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "message": message,
        "errors": [{"code": code, "message": message}],
        **extra,
    }


def ct_order(
    *,
    order_number: str = "100123",
    email: str = "anna@example.com",
    order_state: str = "Confirmed",
    shipment_state: str | None = "Shipped",
    payment_state: str | None = "Paid",
    tracking: list[tuple[str, str]] | None = None,
    multiple: bool = False,
    store_key: str | None = None,
    postcode: str = "2100",
    total: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An Order resource (values synthetic; shape per the commercetools API reference). `total`
    replaces the cent-precision 299.00 DKK, e.g. with a "highPrecision" Money."""
    tracking = [("GLS", "123456789")] if tracking is None else tracking
    parcels = [
        {
            "id": f"parcel-{n}",
            "createdAt": "2024-03-02T09:00:00.000Z",
            "items": [{"id": "7297-line", "quantity": 2}],
            "trackingData": {
                "trackingId": number,
                "carrier": carrier,
                "provider": "shipmondo",
                "providerTransaction": "tx-1",
                "isReturn": False,
            },
        }
        for n, (carrier, number) in enumerate(tracking)
    ]
    # A return label in the same delivery: never shown as the customer's shipment.
    parcels.append(
        {
            "id": "parcel-return",
            "createdAt": "2024-03-02T09:00:00.000Z",
            "items": [],
            "trackingData": {"trackingId": "RETURN-1", "carrier": "GLS", "isReturn": True},
        }
    )
    delivery = {
        "id": "delivery-1",
        "createdAt": "2024-03-02T09:00:00.000Z",
        "items": [],
        "parcels": parcels,
    }
    shipping_info = {
        "shippingMethodName": "GLS",
        "shippingMethodState": "MatchesCart",
        "deliveries": [delivery],
    }
    address = {
        "firstName": "Anna",
        "lastName": "Jensen",
        "streetName": "Vestergade",
        "postalCode": postcode,
        "city": "København",
        "country": "DK",
    }
    # As the API sends one: no `type` (resources have none), null fields left out, and the
    # fields every order has (checked by tests/conformance/test_commercetools_sdk_orders.py).
    order: dict[str, Any] = {
        "id": "92f5" + secrets.token_hex(6),
        "version": 7,
        "orderNumber": order_number,
        "customerEmail": email,
        "createdAt": "2024-03-01T10:00:00.000Z",
        "lastModifiedAt": "2024-03-02T10:00:00.000Z",
        "orderState": order_state,
        "totalPrice": total
        or {
            "type": "centPrecision",
            "currencyCode": "DKK",
            "centAmount": 29900,
            "fractionDigits": 2,
        },
        "lineItems": [
            {
                "id": "7297-line",
                "name": {"da-DK": "Uldsokker", "en": "Wool socks"},
                "variant": {"id": 1, "sku": "WS-1"},
                "quantity": 2,
            }
        ],
        "customLineItems": [],
        "shippingAddress": address,
        "billingAddress": address,
        "shippingMode": "Multiple" if multiple else "Single",
        "shipping": [],
        "refusedGifts": [],
        "origin": "Customer",
        "syncInfo": [],
    }
    if shipment_state is not None:
        order["shipmentState"] = shipment_state
    if payment_state is not None:
        order["paymentState"] = payment_state
    if multiple:
        order["shipping"] = [{"shippingKey": "home", "shippingInfo": shipping_info}]
    else:
        order["shippingInfo"] = shipping_info
    if store_key:
        order["store"] = {"typeId": "store", "key": store_key}
    return order


class FakeCommercetools(FakeServer):
    """commercetools. Add orders with `srv.orders.append(ct_order(...))`."""

    name = "fake-commercetools"
    DEFAULTS = CT_DEFAULTS

    def _init_state(self) -> None:
        self.orders: list[dict[str, Any]] = []
        self.tokens: dict[str, tuple[float, set[str]]] = {}  # token -> (expiry, scopes)

    def _on_reset(self) -> None:
        self.orders.clear()
        self.tokens.clear()

    def expire_tokens(self) -> None:
        self.tokens = {t: (0.0, scopes) for t, (_, scopes) in self.tokens.items()}

    def _client_scopes(self, sc) -> set[str]:
        return set(sc.client_scopes or [f"view_orders:{sc.project_key}"])

    async def handle(self, req: Request, resp: Responder) -> None:
        sc = self.take_scenario()
        if await self.before_headers(sc, resp):
            return
        if sc.status:
            status = int(sc.status)
            headers = [("Retry-After", str(sc.retry_after))] if sc.retry_after is not None else []
            if status in (502, 503, 504):
                await resp.send(
                    status,
                    "<html><body>Service Unavailable</body></html>",
                    content_type="text/html",
                    headers=headers,
                )
            else:
                await resp.send(
                    status, ct_error(status, "General", "Fault injected."), headers=headers
                )
            return
        if req.method == "POST" and req.path == "/oauth/token":
            await self._token(req, resp, sc)
            return
        match = ORDER_RE.match(req.path)
        if req.method not in ("GET", "HEAD") or not match:
            await resp.send(
                404, ct_error(404, "ResourceNotFound", f"Endpoint {req.path} not found.")
            )
            return
        project, store_key, number = match.group(1), match.group(2), unquote(match.group(3))
        header = req.headers.get("authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        expiry, scopes = self.tokens.get(token, (0.0, set()))
        if expiry <= time.time():
            await resp.send(
                401, ct_error(401, "invalid_token", "invalid_token", error="invalid_token")
            )
            return
        allowed = {f"view_orders:{project}", f"manage_orders:{project}"}
        if store_key:
            allowed |= {f"view_orders:{project}:{unquote(store_key)}"}
        if project != sc.project_key or not scopes & allowed:
            message = "Insufficient scope. One of the following scopes is missing: " + ", ".join(
                sorted(allowed)
            )
            await resp.send(403, ct_error(403, "insufficient_scope", message))
            return
        order = next(
            (
                o
                for o in self.orders
                if o.get("orderNumber") == number
                and (not store_key or (o.get("store") or {}).get("key") == unquote(store_key))
            ),
            None,
        )
        if order is None:
            await resp.send(
                404,
                ct_error(
                    404, "ResourceNotFound", f"The Resource with key '{number}' was not found."
                ),
            )
            return
        await resp.send(200, order)

    async def _token(self, req: Request, resp: Responder, sc) -> None:
        invalid = ct_error(
            401,
            "invalid_client",
            "Please provide valid client credentials using HTTP Basic Authentication.",
            error="invalid_client",
            error_description="Please provide valid client credentials using HTTP Basic "
            "Authentication.",
        )
        header = req.headers.get("authorization", "")
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            user, password = "", ""
        if not header.startswith("Basic ") or user != sc.client_id or password != sc.client_secret:
            await resp.send(401, invalid)
            return
        params = {k: v[0] for k, v in parse_qs(req.query).items()}
        params.update({k: v[0] for k, v in parse_qs(req.body.decode("latin-1")).items()})
        if params.get("grant_type") != "client_credentials":
            await resp.send(
                400,
                ct_error(
                    400,
                    "unsupported_grant_type",
                    "unsupported_grant_type",
                    error="unsupported_grant_type",
                ),
            )
            return
        granted = self._client_scopes(sc)
        requested = set((params.get("scope") or "").split()) or granted
        if not requested <= granted:
            await resp.send(
                400, ct_error(400, "invalid_scope", "invalid_scope", error="invalid_scope")
            )
            return
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (time.time() + float(sc.token_ttl), requested)
        await resp.send(
            200,
            {
                "access_token": token,
                "expires_in": sc.token_ttl,
                "scope": " ".join(sorted(requested)),
                "token_type": "Bearer",
            },
        )


if __name__ == "__main__":
    FakeCommercetools.main()
