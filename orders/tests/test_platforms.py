"""What is particular to each platform: auth flavours, tokens, throttling, quirks of the data."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from orders.providers.magento import oauth1_signature
from orders.tests.conftest import run_lookup
from orders.tests.platforms import EMAIL, PLATFORMS, TRACKING
from tests.fakes.commercetools import FakeCommercetools, ct_order
from tests.fakes.magento import FakeMagento, magento_order
from tests.fakes.shopify import FakeShopify, shopify_order

# --- Shopify ----------------------------------------------------------------------------------


@pytest.fixture
def shopify():
    with FakeShopify() as fake:
        fake.orders.append(shopify_order(name="#1001", email=EMAIL))
        yield fake


def shopify_source(fake, chatbot, **extra):
    return PLATFORMS["shopify"].make_source(fake, chatbot, **extra)


def shopify_client_credentials_source(fake, chatbot):
    """A Shopify source that mints its tokens from the fake app's client id and secret."""
    return shopify_source(
        fake,
        chatbot,
        auth_method="client_credentials",
        access_token="",
        client_id=fake.scenario.client_id,
        client_secret=fake.scenario.client_secret,
    )


def test_shopify_is_asked_for_the_order_name_with_the_access_token(make_chatbot, shopify):
    source = shopify_source(shopify, make_chatbot(), api_version="2025-07")

    run_lookup(source, "1001", email=EMAIL)

    request = shopify.requests[-1]
    assert request.path == "/admin/api/2025-07/graphql.json"
    assert request.headers["x-shopify-access-token"] == shopify.scenario.access_token
    assert request.json["variables"]["q"] == "name:'#1001' OR name:'1001'"
    assert "orders(first:3" in request.json["query"]


def test_shopify_names_with_a_shop_prefix_are_found(make_chatbot, shopify):
    shopify.orders.append(shopify_order(name="SHOP-2002", email=EMAIL))
    source = shopify_source(shopify, make_chatbot(), order_number_prefix="SHOP-")

    assert run_lookup(source, "2002", email=EMAIL).order["order_number"] == "SHOP-2002"
    assert run_lookup(source, "shop-2002", email=EMAIL).order["order_number"] == "SHOP-2002"


def test_shopify_client_credentials_are_exchanged_once_and_the_token_is_cached(
    make_chatbot, shopify
):
    source = shopify_client_credentials_source(shopify, make_chatbot())
    shopify.configure(access_token=None)  # only minted tokens work

    first = run_lookup(source, "1001", email=EMAIL)
    second = run_lookup(source, "1001", email=EMAIL)

    assert first.result == second.result == "found"
    token_requests = [r for r in shopify.requests if r.path == "/admin/oauth/access_token"]
    assert len(token_requests) == 1
    assert b"grant_type=client_credentials" in token_requests[0].raw


def test_an_expired_shopify_token_is_minted_again_once(make_chatbot, shopify):
    source = shopify_client_credentials_source(shopify, make_chatbot())
    shopify.configure(access_token=None)
    run_lookup(source, "1001", email=EMAIL)
    shopify.expire_tokens()

    outcome = run_lookup(source, "1001", email=EMAIL)

    assert outcome.result == "found"
    assert len([r for r in shopify.requests if r.path == "/admin/oauth/access_token"]) == 2


def test_shopify_throttled_with_http_429_waits_for_the_bucket(make_chatbot, shopify):
    source = shopify_source(shopify, make_chatbot())
    shopify.configure(
        throttled=True,
        throttle_status=429,
        throttle_available=0,
        restore_rate=2000.0,
        fail_times=1,
    )

    outcome = run_lookup(source, "1001", email=EMAIL)

    assert outcome.result == "found"
    assert [c["status"] for c in outcome.calls] == [429, 200]


def test_a_drained_shopify_bucket_makes_the_next_lookup_wait_instead_of_failing(
    make_chatbot, shopify
):
    source = shopify_source(shopify, make_chatbot())
    # Each query costs more than the bucket restores between two lookups at this rate.
    shopify.configure(bucket_max=150.0, restore_rate=500.0, requested_cost=100, actual_cost=100)

    outcomes = [run_lookup(source, "1001", email=EMAIL) for _ in range(3)]

    assert all(o.result == "found" for o in outcomes)
    assert all(c["status"] == 200 for o in outcomes for c in o.calls)  # never throttled


def test_shopify_that_stays_throttled_is_unavailable_not_a_hang(make_chatbot, shopify, settings):
    settings.ORDERS_MAX_RETRY_WAIT = 0.5
    source = shopify_source(shopify, make_chatbot())
    shopify.configure(throttled=True, throttle_available=0, restore_rate=10.0)

    outcome = run_lookup(source, "1001", email=EMAIL)

    assert outcome.result == "unavailable" and outcome.error.reason == "rate_limited"


def test_shopify_rest_asks_for_any_status_and_the_encoded_name(make_chatbot, shopify):
    shopify.orders[0] = shopify_order(name="#1001", email=EMAIL, closed=True)
    source = PLATFORMS["shopify_rest"].make_source(shopify, make_chatbot())

    outcome = run_lookup(source, "1001", email=EMAIL)

    assert outcome.result == "found"  # closed orders are invisible with the default status=open
    first = shopify.requests[0]
    assert "name=%231001" in first.query and "status=any" in first.query


def test_a_delivered_shopify_order_says_delivered(make_chatbot, shopify):
    shopify.orders[0] = shopify_order(name="#1001", email=EMAIL, delivered=True)
    source = shopify_source(shopify, make_chatbot())

    order = run_lookup(source, "1001", email=EMAIL).order

    assert order["status"] == "delivered" and order["fulfillment_status"] == "delivered"


def test_a_cancelled_shopify_order_says_cancelled(make_chatbot, shopify):
    shopify.orders[0] = shopify_order(name="#1001", email=EMAIL, cancelled=True, tracking=[])

    order = run_lookup(shopify_source(shopify, make_chatbot()), "1001", email=EMAIL).order

    assert order["status"] == "cancelled" and order["shipments"] == []


# --- Magento ----------------------------------------------------------------------------------


@pytest.fixture
def magento():
    with FakeMagento() as fake:
        PLATFORMS["magento"].add_order(fake, EMAIL)
        yield fake


def test_magento_searches_the_typed_and_the_padded_increment_id(make_chatbot, magento):
    source = PLATFORMS["magento"].make_source(magento, make_chatbot(), store_code="dk")

    outcome = run_lookup(source, "1001", email=EMAIL)

    assert outcome.result == "found"
    search = magento.requests[0]
    assert search.path == "/rest/dk/V1/orders"
    assert "condition_type%5D=in" in search.query and "1001%2C000001001" in search.query
    assert magento.requests[1].path == "/rest/dk/V1/shipments"
    # Configurable products come as parent + child rows: the customer sees one line.
    assert len(outcome.order["line_items"]) == 1
    assert outcome.order["shipments"][0]["tracking_url"].startswith("https://gls-group.eu/")


def test_magento_oauth_signatures_cover_the_query_parameters(make_chatbot, magento):
    source = PLATFORMS["magento"].make_source(magento, make_chatbot())
    assert run_lookup(source, "1001", email=EMAIL).result == "found"  # the fake re-signs

    header = magento.requests[0].headers["authorization"]
    assert header.startswith("OAuth ") and 'oauth_signature_method="HMAC-SHA256"' in header
    # The base string: upper-case method, scheme://host/path (default port dropped, host
    # lower-cased), then the sorted, twice-encoded parameters, brackets included.
    base = (
        "GET&https%3A%2F%2Fshop.example%2Frest%2FV1%2Forders&"
        "oauth_consumer_key%3Dck%26oauth_nonce%3Dn1%26"
        "searchCriteria%255BpageSize%255D%3D1"
    )
    key = b"cs%2B1&ts"
    expected = base64.b64encode(hmac.new(key, base.encode(), hashlib.sha256).digest()).decode()
    assert expected == oauth1_signature(
        method="get",
        url="https://Shop.Example:443/rest/V1/orders",
        params=[
            ("searchCriteria[pageSize]", "1"),
            ("oauth_nonce", "n1"),
            ("oauth_consumer_key", "ck"),
        ],
        consumer_secret="cs+1",
        token_secret="ts",
    )


def test_a_magento_integration_token_as_bearer_is_refused_with_a_hint(make_chatbot, magento):
    source = PLATFORMS["magento"].make_source(
        magento,
        make_chatbot(),
        auth_method="access_token",
        client_id="",
        client_secret="",
        token_secret="",
    )

    refused = run_lookup(source, "1001", email=EMAIL)
    magento.configure(integration_as_bearer=True)
    allowed = run_lookup(source, "1001", email=EMAIL)

    assert refused.error.reason == "auth"
    assert "Magento_Sales::actions_view" in refused.error.message
    assert "standalone Bearer tokens" in refused.error.message
    assert allowed.result == "found"


def magento_admin_login_source(magento, chatbot):
    """A Magento source that logs in with the fake's admin user and password (no tokens)."""
    return PLATFORMS["magento"].make_source(
        magento,
        chatbot,
        auth_method="admin_login",
        client_id=magento.scenario.admin_username,
        client_secret=magento.scenario.admin_password,
        access_token="",
        token_secret="",
    )


def test_magento_admin_login_is_cached_and_renewed_after_revocation(make_chatbot, magento):
    source = magento_admin_login_source(magento, make_chatbot())
    assert run_lookup(source, "1001", email=EMAIL).result == "found"
    magento.revoke_admin_tokens()

    assert run_lookup(source, "1001", email=EMAIL).result == "found"
    logins = [r for r in magento.requests if r.path.endswith("/integration/admin/token")]
    assert len(logins) == 2


def test_magento_two_factor_authentication_is_explained(make_chatbot, magento):
    magento.configure(two_factor=True)
    source = magento_admin_login_source(magento, make_chatbot())

    outcome = run_lookup(source, "1001", email=EMAIL)

    assert outcome.error.reason == "auth" and "two-factor" in outcome.error.message
    assert magento.scenario.admin_password not in outcome.error.message


def test_magento_states_map_onto_our_statuses(make_chatbot, magento):
    magento.add_order(
        *magento_order(
            entity_id=9,
            increment_id="000002001",
            email=EMAIL,
            state="holded",
            tracks=[],
            items=[("Tee", "T", 2, 0)],
        )
    )
    source = PLATFORMS["magento"].make_source(magento, make_chatbot())

    order = run_lookup(source, "2001", email=EMAIL).order

    assert order["status"] == "on_hold" and order["fulfillment_status"] == "on_hold"
    assert order["financial_status"] == "paid" and order["shipments"] == []
    assert order["created_at"] == "2024-12-15T12:53:14Z"  # Magento's naive time is UTC


# --- commercetools ------------------------------------------------------------------------------


@pytest.fixture
def ct():
    with FakeCommercetools() as fake:
        yield fake


def test_commercetools_token_is_reused_and_renewed_when_it_expires(make_chatbot, ct):
    ct.orders.append(ct_order(order_number="1001", email=EMAIL))
    source = PLATFORMS["commercetools"].make_source(ct, make_chatbot())

    run_lookup(source, "1001", email=EMAIL)
    run_lookup(source, "1001", email=EMAIL)
    ct.expire_tokens()
    outcome = run_lookup(source, "1001", email=EMAIL)

    assert outcome.result == "found"
    tokens = [r for r in ct.requests if r.path == "/oauth/token"]
    assert len(tokens) == 2
    assert b"scope=view_orders%3Adilling-test" in tokens[0].raw


def test_commercetools_without_the_orders_scope_is_refused_in_words(make_chatbot, ct):
    ct.configure(client_scopes=["view_products:dilling-test"])
    source = PLATFORMS["commercetools"].make_source(
        ct, make_chatbot(), scope="view_products:dilling-test"
    )

    outcome = run_lookup(source, "1001", email=EMAIL)

    assert outcome.error.reason == "forbidden" and "view_orders" in outcome.error.message


def test_commercetools_parcels_multiple_mode_and_localized_names(make_chatbot, ct):
    ct.orders.append(
        ct_order(order_number="A-7", email=EMAIL, multiple=True, tracking=[("PostNord", "PN1")])
    )
    bot = make_chatbot(language="da")
    source = PLATFORMS["commercetools"].make_source(ct, bot)

    order = run_lookup(source, "A-7", email=EMAIL).order

    assert [s["tracking_number"] for s in order["shipments"]] == ["PN1"]  # return parcel skipped
    assert order["shipments"][0]["tracking_url"].startswith("https://www.postnord.dk/")
    assert order["line_items"][0]["name"] == "Uldsokker"
    assert order["total"] == {"amount": "299.00", "currency": "DKK"}


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        pytest.param(
            {
                "type": "highPrecision",
                "currencyCode": "DKK",
                "centAmount": 29900,
                "fractionDigits": 4,
                "preciseAmount": 2990000,
            },
            "299.00",
            id="high-precision-is-precise-amount-not-cents",
        ),
        pytest.param(
            {
                "type": "highPrecision",
                "currencyCode": "EUR",
                "centAmount": 1235,
                "fractionDigits": 5,
                "preciseAmount": 1234567,
            },
            "12.34567",
            id="high-precision-keeps-its-digits",
        ),
        pytest.param(
            {
                "type": "centPrecision",
                "currencyCode": "JPY",
                "centAmount": 1500,
                "fractionDigits": 0,
            },
            "1500",
            id="a-currency-without-cents",
        ),
    ],
)
def test_commercetools_money_in_every_precision(make_chatbot, ct, total, expected):
    ct.orders.append(ct_order(order_number="M-1", email=EMAIL, total=total))
    source = PLATFORMS["commercetools"].make_source(ct, make_chatbot())

    order = run_lookup(source, "M-1", email=EMAIL).order

    assert order["total"] == {"amount": expected, "currency": total["currencyCode"]}


def test_commercetools_store_scoped_sources_use_the_in_store_path(make_chatbot, ct):
    ct.orders.append(ct_order(order_number="1001", email=EMAIL, store_key="dk-store"))
    ct.configure(client_scopes=["view_orders:dilling-test:dk-store"])
    source = PLATFORMS["commercetools"].make_source(
        ct, make_chatbot(), store_code="dk-store", scope="view_orders:dilling-test:dk-store"
    )

    outcome = run_lookup(source, "1001", email=EMAIL)

    assert outcome.result == "found"
    assert ct.requests[-1].path == "/dilling-test/in-store/key=dk-store/orders/order-number=1001"
    assert outcome.order["shipments"][0]["tracking_number"] == TRACKING
