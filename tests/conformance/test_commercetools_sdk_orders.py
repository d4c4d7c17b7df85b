"""Orders built with commercetools' own Python SDK models, serialised by its own schemas, served
over HTTP by our fake and read by our provider (issue #25): an order that the SDK considers
valid must read correctly, whatever our fake would have put in it. Covers a cent-precision and
a high-precision total, parcels with tracking (and a return parcel), and localised names."""

from __future__ import annotations

import datetime

import pytest

from orders.tests.conftest import run_lookup
from orders.tests.platforms import EMAIL, PLATFORMS
from tests.fakes.commercetools import FakeCommercetools, ct_order

models = pytest.importorskip(
    "commercetools.platform.models", reason="commercetools is in requirements-dev.txt"
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2024, 3, 1, 10, 0, tzinfo=datetime.UTC)


def sdk_order(number: str, total) -> dict:
    """An Order made with the SDK's models, as JSON the API would send."""
    line_item = models.LineItem(
        id="line-1",
        product_id="product-1",
        name=models.LocalizedString({"en": "Wool socks", "da-DK": "Uldsokker"}),
        product_type=models.ProductTypeReference(id="type-1"),
        variant=models.ProductVariant(id=1, sku="WS-1"),
        price=models.Price(
            id="price-1",
            value=models.CentPrecisionMoney(
                cent_amount=14950, currency_code="DKK", fraction_digits=2
            ),
        ),
        quantity=2,
        total_price=models.CentPrecisionMoney(
            cent_amount=29900, currency_code="DKK", fraction_digits=2
        ),
        discounted_price_per_quantity=[],
        taxed_price_portions=[],
        per_method_tax_rate=[],
        state=[],
        price_mode=models.LineItemPriceMode.PLATFORM,
        line_item_mode=models.LineItemMode.STANDARD,
    )
    parcels = [
        models.Parcel(
            id="parcel-1",
            created_at=NOW,
            tracking_data=models.TrackingData(
                tracking_id="00370712345678", carrier="GLS", is_return=False
            ),
            items=[models.DeliveryItem(id="line-1", quantity=2)],
        ),
        models.Parcel(
            id="parcel-2",
            created_at=NOW,
            tracking_data=models.TrackingData(tracking_id="RET-1", carrier="GLS", is_return=True),
            items=[],
        ),
    ]
    shipping_info = models.ShippingInfo(
        shipping_method_name="GLS",
        price=models.CentPrecisionMoney(cent_amount=3900, currency_code="DKK", fraction_digits=2),
        shipping_rate=models.ShippingRate(
            price=models.CentPrecisionMoney(
                cent_amount=3900, currency_code="DKK", fraction_digits=2
            ),
            tiers=[],
        ),
        deliveries=[models.Delivery(id="delivery-1", created_at=NOW, items=[], parcels=parcels)],
        shipping_method_state=models.ShippingMethodState.MATCHES_CART,
    )
    order = models.Order(
        id="order-" + number,
        version=3,
        created_at=NOW,
        last_modified_at=NOW,
        order_number=number,
        customer_email=EMAIL,
        line_items=[line_item],
        custom_line_items=[],
        total_price=total,
        shipping_mode=models.ShippingMode.SINGLE,
        shipping_info=shipping_info,
        shipping=[],
        refused_gifts=[],
        origin=models.CartOrigin.CUSTOMER,
        order_state=models.OrderState.CONFIRMED,
        shipment_state=models.ShipmentState.SHIPPED,
        payment_state=models.PaymentState.PAID,
        sync_info=[],
        shipping_address=models.Address(country="DK", postal_code="2100"),
    )
    return order.serialize()


@pytest.fixture
def ct():
    with FakeCommercetools() as fake:
        yield fake


@pytest.mark.parametrize(
    ("total", "amount"),
    [
        pytest.param(
            models.CentPrecisionMoney(cent_amount=29900, currency_code="DKK", fraction_digits=2),
            "299.00",
            id="cent-precision",
        ),
        pytest.param(
            models.HighPrecisionMoney(
                cent_amount=29900,
                currency_code="DKK",
                fraction_digits=4,
                precise_amount=2990000,
            ),
            "299.00",
            id="high-precision",
        ),
    ],
)
def test_an_order_made_with_the_sdks_models_reads_right(make_chatbot, ct, total, amount):
    ct.orders.append(sdk_order("5001", total))
    source = PLATFORMS["commercetools"].make_source(ct, make_chatbot(language="da"))

    outcome = run_lookup(source, "5001", email=EMAIL)

    assert outcome.result == "found"
    order = outcome.order
    assert order["total"] == {"amount": amount, "currency": "DKK"}
    assert order["status"] == "shipped"
    assert order["financial_status"] == "paid"
    assert [s["tracking_number"] for s in order["shipments"]] == ["00370712345678"]
    assert order["line_items"] == [{"name": "Uldsokker", "sku": "WS-1", "quantity": 2}]


def _paths(value, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        out = set()
        for key, item in value.items():
            out |= {prefix + key} | _paths(item, f"{prefix}{key}.")
        return out
    if isinstance(value, list):
        return set().union(*(_paths(item, f"{prefix}[].") for item in value)) if value else set()
    return set()


@pytest.mark.parametrize(
    "knobs", [{}, {"multiple": True}, {"store_key": "dk-store"}, {"tracking": []}], ids=str
)
def test_our_fakes_orders_are_orders_the_sdk_reads_whole(knobs):
    """The fake's orders carry nothing a real order lacks and every field one always has."""
    import inspect

    fake = ct_order(**knobs)
    order = models.Order.deserialize(fake)

    assert _paths(fake) - _paths(order.serialize()) == set()  # no field of our own making
    required = [
        name
        for name, param in inspect.signature(models.Order.__init__).parameters.items()
        if name != "self" and param.default is inspect.Parameter.empty
    ]
    assert [name for name in required if getattr(order, name, None) is None] == []
