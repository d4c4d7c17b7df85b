"""Each platform's fake, an order in it, and an OrderSource pointing at it (tests and e2e)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orders.models import OrderSource
from orders.tests.fake_order_api import FakeOrderApi, generic_order
from tests.fakes._server import FakeServer
from tests.fakes.commercetools import FakeCommercetools, ct_order
from tests.fakes.magento import FakeMagento, magento_order
from tests.fakes.shopify import FakeShopify, shopify_order

EMAIL = "anna@example.com"
TRACKING = "123456789"

GENERIC_CONNECTOR: dict[str, Any] = {
    "method": "GET",
    "url": "{base_url}/v1/orders/{order_number}",
    "headers": {"Accept": "application/json"},
    "auth": {"type": "header", "name": "X-API-Key"},
    "not_found": {"statuses": [404]},
    "root": "order",
    "fields": {
        "order_number": "number",
        "external_id": "id",
        "created_at": "placed",
        "status": "state",
        "financial_status": "payment.state",
        "email": "customer.email",
        "total_amount": "sum.value",
        "currency": "sum.currency",
        "line_items": {"path": "lines[*]", "name": "title", "sku": "sku", "quantity": "qty"},
        "shipments": {
            "path": "parcels[*]",
            "carrier": "carrier",
            "tracking_number": "code",
            "tracking_url": "link",
        },
    },
    "status_map": {"SENT": "shipped", "PACKING": "processing"},
    "financial_map": {"captured": "paid"},
}


@dataclass
class Platform:
    kind: str
    fake: type[FakeServer]
    typed_number: str  # what the customer writes
    add_order: Callable[[FakeServer, str], None]  # (fake, email)
    source: Callable[[FakeServer], dict[str, Any]]  # OrderSource fields
    rate_limit: dict[str, Any]  # knobs: one 429 (or throttled) answer, then normal
    tracking: str = TRACKING

    def make_source(self, fake: FakeServer, chatbot, **extra: Any) -> OrderSource:
        fields = {"name": f"{self.kind} test", "kind": self.kind, **self.source(fake), **extra}
        source = OrderSource(chatbot=chatbot, **fields)
        source.full_clean()
        source.save()
        return source


def _shopify_add(fake: FakeServer, email: str) -> None:
    fake.orders.append(shopify_order(name="#1001", email=email))
    fake.orders.append(shopify_order(name="#1002", email="someone@else.dk"))


def _magento_add(fake: FakeServer, email: str) -> None:
    fake.add_order(
        *magento_order(
            entity_id=3,
            increment_id="000001001",
            email=email,
            tracks=[("gls", "GLS", TRACKING)],
        )
    )
    fake.add_order(*magento_order(entity_id=4, increment_id="000001002", email="x@else.dk"))


def _ct_add(fake: FakeServer, email: str) -> None:
    fake.orders.append(ct_order(order_number="1001", email=email, tracking=[("GLS", TRACKING)]))


def _generic_add(fake: FakeServer, email: str) -> None:
    order = generic_order(number="1001", email=email)
    order["parcels"][0]["code"] = TRACKING
    fake.add(order)


PLATFORMS: dict[str, Platform] = {
    "shopify": Platform(
        kind="shopify",
        fake=FakeShopify,
        typed_number="1001",
        add_order=_shopify_add,
        source=lambda f: {
            "base_url": f.url,
            "auth_method": "access_token",
            "access_token": f.scenario.access_token,
        },
        rate_limit={
            "throttled": True,
            "throttle_available": 50,
            "restore_rate": 1000.0,
            "fail_times": 1,
        },
    ),
    "shopify_rest": Platform(
        kind="shopify_rest",
        fake=FakeShopify,
        typed_number="#1001",
        add_order=_shopify_add,
        source=lambda f: {
            "base_url": f.url,
            "auth_method": "access_token",
            "access_token": f.scenario.access_token,
        },
        rate_limit={"rest_throttled": True, "retry_after": "0.05", "fail_times": 1},
    ),
    "magento": Platform(
        kind="magento",
        fake=FakeMagento,
        typed_number="1001",
        add_order=_magento_add,
        source=lambda f: {
            "base_url": f.url,
            "auth_method": "oauth1",
            "client_id": f.scenario.consumer_key,
            "client_secret": f.scenario.consumer_secret,
            "access_token": f.scenario.integration_token,
            "token_secret": f.scenario.integration_token_secret,
        },
        rate_limit={"status": 429, "retry_after": "0.05", "fail_times": 1},
    ),
    "commercetools": Platform(
        kind="commercetools",
        fake=FakeCommercetools,
        typed_number="1001",
        add_order=_ct_add,
        source=lambda f: {
            "base_url": f.url,
            "auth_url": f.url,
            "project_key": f.scenario.project_key,
            "auth_method": "client_credentials",
            "client_id": f.scenario.client_id,
            "client_secret": f.scenario.client_secret,
        },
        rate_limit={"status": 503, "retry_after": "0.05", "fail_times": 1},
    ),
    "generic": Platform(
        kind="generic",
        fake=FakeOrderApi,
        typed_number="1001",
        add_order=_generic_add,
        source=lambda f: {
            "base_url": f.url,
            "auth_method": "connector",
            "access_token": f.scenario.api_key,
            "connector": GENERIC_CONNECTOR,
        },
        rate_limit={"status": 429, "retry_after": "0.05", "fail_times": 1},
    ),
}
