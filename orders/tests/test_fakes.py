"""The platform fakes speak the documented protocols (order_apis.md), including the awkward parts."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from orders.models import OrderSource
from tests.fakes.commercetools import FakeCommercetools, ct_order
from tests.fakes.freshdesk import FakeFreshdesk
from tests.fakes.magento import FakeMagento, magento_order, parse_search_criteria
from tests.fakes.shopify import FakeShopify, shopify_order

TOKEN = {"X-Shopify-Access-Token": "shpat_fake_static_token_0001"}


@pytest.fixture
def shop():
    with FakeShopify() as fake:
        fake.orders += [
            shopify_order(name="#1001"),
            shopify_order(name="#1002", closed=True),
            shopify_order(name="#1003", cancelled=True),
        ]
        yield fake


def test_shopify_rest_shows_open_orders_unless_asked_for_any(shop):
    url = f"{shop.url}/admin/api/2025-10/orders.json"
    default = httpx.get(url, headers=TOKEN).json()["orders"]
    anything = httpx.get(url, params={"status": "any"}, headers=TOKEN).json()["orders"]
    assert [o["name"] for o in default] == ["#1001"]
    assert [o["name"] for o in anything] == ["#1001", "#1002", "#1003"]


def test_shopify_rest_pages_with_link_and_refuses_status_with_page_info(shop):
    url = f"{shop.url}/admin/api/2025-10/orders.json"
    first = httpx.get(url, params={"status": "any", "limit": 2}, headers=TOKEN)
    assert first.headers["X-Shopify-Shop-Api-Call-Limit"] == "1/40"
    next_url = first.headers["Link"].split(">")[0].lstrip("<")
    second = httpx.get(next_url, headers=TOKEN)
    both = httpx.get(next_url + "&status=any", headers=TOKEN)
    assert [o["name"] for o in second.json()["orders"]] == ["#1003"]
    assert both.status_code == 400
    assert both.json() == {"errors": "status cannot be passed when page_info is present"}


def test_shopify_graphql_reports_cost_and_throttles_when_the_bucket_is_short(shop):
    shop.configure(bucket_max=120.0, restore_rate=1.0, requested_cost=100, actual_cost=90)
    url = f"{shop.url}/admin/api/2019-04/graphql.json"
    body = {
        "query": "query($q:String!){orders(first:1,query:$q){nodes{name}}}",
        "variables": {"q": "name:'#1001'"},
    }
    ok = httpx.post(url, json=body, headers=TOKEN)
    throttled = httpx.post(url, json=body, headers=TOKEN)
    assert ok.headers["X-Shopify-API-Version"] == "2025-01"  # a retired version falls forward
    assert ok.json()["extensions"]["cost"]["actualQueryCost"] == 90
    assert throttled.status_code == 200
    assert throttled.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert throttled.json()["extensions"]["cost"]["actualQueryCost"] is None
    unauthorized = httpx.post(url, json=body)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["errors"].startswith("[API] Invalid API key or access token")


def test_magento_search_criteria_accepts_raw_and_encoded_brackets():
    raw = "searchCriteria[filter_groups][0][filters][0][field]=increment_id&searchCriteria[pageSize]=1"
    encoded = raw.replace("[", "%5B").replace("]", "%5D")
    assert parse_search_criteria(raw) == parse_search_criteria(encoded)
    assert parse_search_criteria(raw)["page_size"] == 1


def test_magento_filters_or_within_a_group_and_across_groups():
    with FakeMagento() as fake:
        for entity, (inc, email, state) in enumerate(
            [
                ("000000001", "a@x.dk", "new"),
                ("000000002", "b@x.dk", "complete"),
                ("000000003", "a@x.dk", "complete"),
            ],
            start=1,
        ):
            fake.add_order(
                *magento_order(entity_id=entity, increment_id=inc, email=email, state=state)
            )
        token = httpx.post(
            f"{fake.url}/rest/V1/integration/admin/token",
            json={"username": "admin", "password": "admin-password-0001"},
        ).json()
        g = "searchCriteria[filter_groups]"
        params = {
            f"{g}[0][filters][0][field]": "customer_email",
            f"{g}[0][filters][0][value]": "a@x.dk",
            f"{g}[1][filters][0][field]": "state",
            f"{g}[1][filters][0][value]": "complete",
            f"{g}[1][filters][1][field]": "increment_id",
            f"{g}[1][filters][1][value]": "%001",
            f"{g}[1][filters][1][condition_type]": "like",
            "fields": "items[increment_id],total_count",
        }
        body = httpx.get(
            f"{fake.url}/rest/default/V1/orders",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        missing = httpx.get(
            f"{fake.url}/rest/V1/orders/99", headers={"Authorization": f"Bearer {token}"}
        )
    assert body == {
        "items": [{"increment_id": "000000001"}, {"increment_id": "000000003"}],
        "total_count": 2,
    }
    assert missing.status_code == 404 and "doesn't exist" in missing.json()["message"]


def test_commercetools_accepts_the_grant_in_the_query_and_checks_scopes():
    with FakeCommercetools() as fake:
        fake.orders.append(ct_order(order_number="A/1"))
        auth = ("ct-client-0001", "ct-secret-0001-abcdef")
        token = httpx.post(f"{fake.url}/oauth/token?grant_type=client_credentials", auth=auth)
        wrong = httpx.post(
            f"{fake.url}/oauth/token", auth=("x", "y"), data={"grant_type": "client_credentials"}
        )
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        found = httpx.get(f"{fake.url}/dilling-test/orders/order-number=A%2F1", headers=bearer)
        other_project = httpx.get(f"{fake.url}/other/orders/order-number=1", headers=bearer)
    assert token.json()["scope"] == "view_orders:dilling-test"
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert found.json()["orderNumber"] == "A/1"
    assert other_project.json()["errors"][0]["code"] == "insufficient_scope"


def test_freshdesk_validates_tickets_and_counts_invalid_calls_against_the_limit():
    with FakeFreshdesk(rate_limit=3) as fake:
        auth = (fake.scenario.api_key, "X")
        url = f"{fake.url}/api/v2/tickets"
        invalid = httpx.post(
            url, auth=auth, json={"subject": "s", "priority": 9, "custom_fields": {"cf_nope": 1}}
        )
        wrong_type = httpx.post(
            url,
            auth=auth,
            content=b"x=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        created = httpx.post(
            url,
            auth=auth,
            json={
                "email": "a@b.dk",
                "subject": "s",
                "description": "<p>d</p>",
                "status": 2,
                "priority": 1,
            },
        )
        limited = httpx.post(url, auth=auth, json={"email": "a@b.dk"})
    fields = {e["field"]: e["code"] for e in invalid.json()["errors"]}
    assert fields == {
        "requester_id": "missing_field",
        "description": "missing_field",
        "priority": "invalid_value",
        "cf_nope": "invalid_field",
    }
    assert wrong_type.status_code == 415
    assert created.status_code == 201 and created.headers["Location"].endswith("/tickets/1")
    assert created.headers["X-RateLimit-Remaining"] == "0"
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0


def test_the_admin_warns_about_a_shopify_version_near_its_end():
    source = OrderSource(kind="shopify", api_version="2025-01")
    assert source.shopify_version_warning(dt.date(2025, 6, 1)) == ""
    assert "end of its support around 2026-01" in source.shopify_version_warning(
        dt.date(2025, 11, 15)
    )
    assert "past its 12 months" in source.shopify_version_warning(dt.date(2026, 2, 1))
    assert OrderSource(kind="magento").shopify_version_warning() == ""
