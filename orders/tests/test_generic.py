"""The generic connector's mapping and the BevCo preset, against a configurable JSON API."""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import ValidationError

from orders.models import OrderSource
from orders.providers.generic import connector_errors, path_values
from orders.tests.conftest import run_lookup
from orders.tests.fake_order_api import FakeOrderApi, generic_order
from orders.tests.platforms import EMAIL, GENERIC_CONNECTOR, PLATFORMS


@pytest.fixture
def api():
    with FakeOrderApi() as fake:
        fake.add(generic_order(number="DK-1001", email=EMAIL))
        yield fake


def source_with(api, chatbot, connector, **extra):
    return PLATFORMS["generic"].make_source(api, chatbot, connector=connector, **extra)


def test_the_mapping_turns_any_json_into_our_order(make_chatbot, api):
    source = source_with(api, make_chatbot(), GENERIC_CONNECTOR)

    order = run_lookup(source, "#DK-1001", email=EMAIL).order

    assert api.requests[0].path == "/v1/orders/DK-1001"
    assert api.requests[0].headers["x-api-key"] == api.scenario.api_key
    assert order == {
        "source": "generic",
        "order_number": "DK-1001",
        "external_id": "ord_DK-1001",
        "created_at": "2024-12-15T11:53:14Z",
        "status": "shipped",
        "financial_status": "paid",
        "fulfillment_status": "unknown",
        "total": {"amount": "897.50", "currency": "DKK"},
        "line_items": [{"name": "Rødvin, Barolo 2019", "sku": "BAR19", "quantity": 3}],
        "shipments": [
            {
                "carrier": "PostNord",
                "tracking_number": "00370712345678901234",
                "tracking_url": "https://www.postnord.dk/varktojer/track-trace?shipmentId="
                "00370712345678901234",
                "status": None,
                "shipped_at": None,
                "delivered_at": None,
            }
        ],
        "status_page_url": None,
        "raw_status": {"generic": {"status": "SENT"}},
    }


def test_an_empty_list_can_mean_not_found(make_chatbot, api):
    connector = copy.deepcopy(GENERIC_CONNECTOR)
    connector.update(
        url="{base_url}/v1/search",
        query={"number": "{order_number}"},
        not_found={"statuses": [404], "empty_path": "orders"},
        root="orders[0]",
    )
    source = source_with(api, make_chatbot(), connector)

    assert run_lookup(source, "DK-1001", email=EMAIL).result == "found"
    assert run_lookup(source, "DK-9", email=EMAIL).result == "not_found"
    assert "number=DK-9" in api.requests[-1].query


def test_an_api_that_checks_the_email_itself_can_be_trusted(make_chatbot, api):
    connector = copy.deepcopy(GENERIC_CONNECTOR)
    connector.update(
        method="POST",
        url="{base_url}/v1/lookup",
        body={"number": "{order_number}", "email": "{email}"},
        verify="api",
    )
    del connector["fields"]["email"]
    source = source_with(api, make_chatbot(), connector)

    found = run_lookup(source, "DK-1001", email=EMAIL)
    wrong = run_lookup(source, "DK-1001", email="mallory@example.com")

    assert found.result == "found" and wrong.result == "not_found"
    assert api.requests[0].json == {"number": "DK-1001", "email": EMAIL}


def test_customer_input_cannot_leave_the_path_segment(make_chatbot, api):
    source = source_with(api, make_chatbot(), GENERIC_CONNECTOR)

    run_lookup(source, "1001/../../admin", email=EMAIL)

    assert api.requests[-1].path == "/v1/orders/1001%2F..%2F..%2Fadmin"


def test_bevco_is_the_generic_connector_with_a_preset(make_chatbot, api):
    api.configure(bearer=True, wrap=False)
    api.add(
        {
            "number": "5005",
            "order_number": "5005",
            "created_at": "2025-01-02T10:00:00Z",
            "status": "shipped",
            "email": EMAIL,
            "items": [{"name": "Pilsner 24x33cl", "quantity": 2}],
            "shipments": [{"carrier": "DAO", "tracking_number": "DAO77"}],
        }
    )
    source = OrderSource(
        chatbot=make_chatbot(),
        name="BevCo",
        kind="bevco",
        base_url=f"{api.url}/v1",
        auth_method="connector",
        access_token=api.scenario.api_key,
    )
    source.full_clean()
    source.save()

    order = run_lookup(source, "5005", email=EMAIL).order

    assert api.requests[0].path == "/v1/orders/5005"
    assert api.requests[0].headers["authorization"] == f"Bearer {api.scenario.api_key}"
    assert order["source"] == "bevco" and order["status"] == "shipped"
    assert order["line_items"] == [{"name": "Pilsner 24x33cl", "sku": None, "quantity": 2}]
    assert order["shipments"][0]["tracking_url"].startswith("https://www.dao.as/")
    assert run_lookup(source, "5005", email="x@example.com").result == "not_found"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "https://{order_number}.evil.example/x"}, "host name"),
        ({"url": "{base_url}/orders/{customer_name}"}, "{customer_name}"),
        ({"root": "orders[?]"}, "is not a path"),
        ({"status_map": {"SENT": "teleported"}}, "status_map"),
        ({"auth": {"type": "header"}}, "auth.name"),
        ({"verify": "api"}, "{email} in the url"),
        ({"fields": {"order_number": "number"}}, 'Map "fields.email"'),
    ],
)
def test_invalid_connector_settings_are_explained(change, message):
    connector = {**copy.deepcopy(GENERIC_CONNECTOR), **change}
    problems = " ".join(connector_errors(connector))
    assert message in problems


def test_the_admin_refuses_an_invalid_connector_with_the_reason(make_chatbot):
    source = OrderSource(
        chatbot=make_chatbot(),
        name="x",
        kind="generic",
        base_url="https://api.shop.example",
        auth_method="connector",
        connector={"url": "{base_url}/{order_number}"},
    )
    with pytest.raises(ValidationError) as err:
        source.full_clean()
    assert "fields" in str(err.value.message_dict["connector"])


def test_paths_fan_out_over_lists():
    data = {"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": [{"c": 3}]}]}
    assert path_values(data, "a[*].b[*].c") == [1, 2, 3]
    assert path_values(data, "a[1].b[0].c") == [3]
    assert path_values(data, "a[5].b") == []
    assert path_values([{"x": 1}], "[0].x") == [1]


def test_a_connector_that_sends_a_key_needs_one_and_the_method_is_chosen_for_staff(make_chatbot):
    source = OrderSource(
        chatbot=make_chatbot(),
        name="x",
        kind="generic",
        base_url="https://api.shop.example",
        connector=GENERIC_CONNECTOR,  # auth: an X-API-Key header
    )
    with pytest.raises(ValidationError) as err:
        source.full_clean()
    assert source.auth_method == "connector"
    assert err.value.message_dict == {"access_token": ["Enter the API key the connector sends."]}
