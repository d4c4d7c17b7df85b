"""Order sources in the admin: create with write-only secrets, errors in words, Test connection,
and the staff-only counters endpoint."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from orders.models import OrderSource
from orders.tests.conftest import run_lookup
from orders.tests.platforms import EMAIL, PLATFORMS
from tests.fakes.commercetools import FakeCommercetools
from tests.fakes.shopify import FakeShopify

pytestmark = pytest.mark.django_db

ADD = "/admin/orders/ordersource/add/"
TOKEN = "shpat_admin_secret_token_42"


@pytest.fixture
def shopify():
    with FakeShopify(access_token=TOKEN) as fake:
        yield fake


def change_url(source: OrderSource, suffix: str = "change/") -> str:
    return f"/admin/orders/ordersource/{source.pk}/{suffix}"


def shopify_form(chatbot, fake, **extra) -> dict:
    return source_form(chatbot, fake.url, **extra)


def source_form(chatbot, base_url: str, **extra) -> dict:
    data = {
        "chatbot": chatbot.pk,
        "name": "Webshop",
        "kind": "shopify",
        "active": "on",
        "routing_key": "order",
        "second_factor": "email",
        "base_url": base_url,
        "auth_method": "access_token",
        "access_token": TOKEN,
        "carrier_urls": "{}",
        "connector": "{}",
    }
    data.update(extra)
    return data


def test_staff_add_a_shopify_source_whose_token_is_stored_encrypted_and_never_shown(
    admin_client, make_chatbot, shopify
):
    response = admin_client.post(ADD, shopify_form(make_chatbot(), shopify))
    assert response.status_code == 302, response.content.decode()[:3000]
    source = OrderSource.objects.get()
    assert source.access_token.reveal() == TOKEN

    for url in (change_url(source), "/admin/orders/ordersource/", change_url(source, "delete/")):
        html = admin_client.get(url).content.decode()
        assert TOKEN not in html and source.access_token.stored not in html, url


def test_a_source_without_credentials_is_refused_on_the_field(admin_client, make_chatbot, shopify):
    response = admin_client.post(ADD, shopify_form(make_chatbot(), shopify, access_token=""))

    assert response.status_code == 200
    assert "Enter the access token." in response.content.decode()
    assert not OrderSource.objects.exists()


def test_a_second_active_source_for_a_chatbot_is_refused(admin_client, make_chatbot, shopify):
    bot = make_chatbot()
    admin_client.post(ADD, shopify_form(bot, shopify))

    response = admin_client.post(ADD, shopify_form(bot, shopify, name="Another"))

    assert "already has an active order source" in response.content.decode()


def test_a_commercetools_source_needs_its_project_and_auth_url(admin_client, make_chatbot):
    response = admin_client.post(
        ADD,
        {
            **source_form(make_chatbot(), "https://api.europe-west1.gcp.commercetools.com"),
            "kind": "commercetools",
            "auth_method": "client_credentials",
            "client_id": "x",
            "client_secret": "y",
        },
    )
    html = response.content.decode()
    assert "Enter the commercetools project key." in html
    assert "Enter the auth URL" in html


def run_test_connection(client, source) -> str:
    response = client.post(change_url(source, "test-connection/"), follow=True)
    return " ".join(str(m) for m in response.context["messages"])


def test_test_connection_makes_a_real_search_and_reports_success(
    admin_client, make_chatbot, shopify
):
    source = PLATFORMS["shopify"].make_source(shopify, make_chatbot())

    message = run_test_connection(admin_client, source)

    assert "Connected to Shopify" in message and "not found, as expected" in message
    assert shopify.requests[-1].headers["x-shopify-access-token"] == TOKEN


def test_test_connection_reports_a_rejected_key_in_words_without_the_key(
    admin_client, make_chatbot, shopify
):
    source = PLATFORMS["shopify"].make_source(shopify, make_chatbot())
    source.access_token = "shpat_wrong_token_value_77"
    source.save()

    response = admin_client.post(
        "/admin/orders/ordersource/",
        {"action": "test_connection", "_selected_action": [source.pk]},
        follow=True,
    )

    message = " ".join(str(m) for m in response.context["messages"])
    assert "Authentication failed" in message and "Invalid API key or access token" in message
    assert "shpat_wrong_token_value_77" not in response.content.decode()


def test_test_connection_names_a_missing_scope(admin_client, make_chatbot):
    with FakeCommercetools(client_scopes=["view_products:dilling-test"]) as ct:
        source = PLATFORMS["commercetools"].make_source(
            ct, make_chatbot(), scope="view_products:dilling-test"
        )
        message = run_test_connection(admin_client, source)
    assert "Access refused" in message and "view_orders" in message
    assert ct.scenario.client_secret not in message


def test_test_connection_reports_an_unreachable_platform(admin_client, make_chatbot, settings):
    settings.ORDERS_MAX_ATTEMPTS = 1
    with FakeShopify() as gone:
        url = gone.url
    source = PLATFORMS["shopify"].make_source(gone, make_chatbot())
    assert source.base_url == url

    message = run_test_connection(admin_client, source)

    assert message.endswith(
        ": Could not reach the service at 127.0.0.1: no answer in a form we understand. "
        "(order search)"
    )


def test_the_change_page_shows_the_counters(admin_client, make_chatbot, shopify):
    source = PLATFORMS["shopify"].make_source(shopify, make_chatbot())
    PLATFORMS["shopify"].add_order(shopify, EMAIL)
    run_lookup(source, "1001", email=EMAIL)

    html = admin_client.get(change_url(source)).content.decode()

    assert "1 requests (0 failed" in html and "1 found" in html
    assert 'value="Test connection"' in html or "Test connection" in html


def test_the_counters_endpoint_lists_every_source_for_staff(admin_client, make_chatbot, shopify):
    source = PLATFORMS["shopify"].make_source(shopify, make_chatbot())
    PLATFORMS["shopify"].add_order(shopify, EMAIL)
    run_lookup(source, "1001", email="wrong@example.com")

    body = admin_client.get("/api/orders/stats").json()

    [row] = body["sources"]
    assert row["source_id"] == source.pk and row["kind"] == "shopify"
    assert row["calls"] == 1 and row["lookups"] == 1 and row["mismatch"] == 1
    assert row["last_outcome"] == "not_found"


def test_the_counters_endpoint_is_refused_to_outsiders(client, make_chatbot):
    assert client.get("/api/orders/stats").status_code == 401
    user = get_user_model().objects.create_user("visitor", password="pw-123456789")
    client.force_login(user)
    assert client.get("/api/orders/stats").status_code == 403
