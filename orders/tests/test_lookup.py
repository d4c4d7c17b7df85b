"""Every platform, against its fake over real HTTP: found, not found, wrong email, faults."""

from __future__ import annotations

import json

import pytest

from orders.selectors import order_source_stats
from orders.tests.conftest import run_lookup
from orders.tests.platforms import EMAIL, TRACKING

PII = ("Anna", "Jensen", "Vestergade", "+4512345678", EMAIL)


def test_it_finds_the_order_and_returns_only_the_normalized_fields(make_chatbot, platform):
    spec, fake = platform
    spec.add_order(fake, EMAIL)
    source = spec.make_source(fake, make_chatbot())

    outcome = run_lookup(source, spec.typed_number, email="  Anna@Example.com ")

    assert outcome.result == "found", outcome.error
    order = outcome.order
    assert order["source"] == ("shopify" if spec.kind.startswith("shopify") else spec.kind)
    assert order["order_number"].lstrip("#").lstrip("0") == "1001"
    assert order["status"] in ("shipped", "completed", "delivered")
    assert order["line_items"] and order["line_items"][0]["quantity"] >= 1
    assert order["created_at"].endswith("Z")
    shipment = order["shipments"][0]
    assert shipment["tracking_number"] == TRACKING
    assert shipment["tracking_url"] and shipment["tracking_url"].startswith("https://")
    dumped = json.dumps(order, ensure_ascii=False)
    for value in PII:
        assert value not in dumped, value


def test_an_unknown_order_number_is_not_found(make_chatbot, platform):
    spec, fake = platform
    spec.add_order(fake, EMAIL)
    source = spec.make_source(fake, make_chatbot())

    outcome = run_lookup(source, "9999", email=EMAIL)

    assert outcome.result == "not_found" and outcome.order is None and not outcome.mismatch


def test_a_wrong_email_is_answered_exactly_like_not_found(make_chatbot, platform):
    spec, fake = platform
    spec.add_order(fake, EMAIL)
    source = spec.make_source(fake, make_chatbot())

    unknown = run_lookup(source, "9999", email=EMAIL)
    wrong = run_lookup(source, spec.typed_number, email="mallory@example.com")

    assert wrong.result == unknown.result == "not_found"
    assert wrong.order is None and wrong.error is None

    # Nothing more is fetched about someone else's order than about a missing one.
    def requests(outcome):  # a token minted for the first lookup is reused by the second
        return [c["op"] for c in outcome.calls if "token" not in c["op"]]

    assert requests(wrong) == requests(unknown)
    stats = order_source_stats(source_id=source.pk)
    assert stats["mismatch"] == 1 and stats["not_found"] == 1


def test_rejected_credentials_are_an_auth_failure_without_the_key(make_chatbot, platform):
    spec, fake = platform
    spec.add_order(fake, EMAIL)
    source = spec.make_source(fake, make_chatbot())
    secret = "wrong-secret-value-123456"
    if source.auth_method in ("access_token", "connector"):
        source.access_token = secret
    else:
        source.client_secret = secret
    source.save()

    outcome = run_lookup(source, spec.typed_number, email=EMAIL)

    assert outcome.result == "unavailable"
    assert outcome.error.reason == "auth", outcome.error.message
    assert secret not in outcome.error.message
    assert order_source_stats(source_id=source.pk)["failed"] == 1


def test_a_rate_limited_answer_is_retried_and_then_succeeds(make_chatbot, platform):
    spec, fake = platform
    spec.add_order(fake, EMAIL)
    source = spec.make_source(fake, make_chatbot())
    fake.configure(**spec.rate_limit)

    outcome = run_lookup(source, spec.typed_number, email=EMAIL)

    assert outcome.result == "found", outcome.error
    statuses = [c["status"] for c in outcome.calls]
    assert statuses[0] in (200, 429, 503) and len(statuses) >= 2
    stats = order_source_stats(source_id=source.pk)
    assert stats["retries"] >= 1 and stats["errors"] + stats["throttled"] >= 1


def test_a_platform_that_does_not_answer_in_time_is_unavailable(make_chatbot, platform, settings):
    spec, fake = platform
    settings.ORDERS_MAX_ATTEMPTS = 2
    spec.add_order(fake, EMAIL)
    source = spec.make_source(fake, make_chatbot(), timeout=0.1)
    fake.configure(delay_before_headers=1.0)

    outcome = run_lookup(source, spec.typed_number, email=EMAIL)

    assert outcome.result == "unavailable"
    assert outcome.error.reason == "timeout"
    assert len(outcome.calls) == 2  # retried once, then gave up
    assert order_source_stats(source_id=source.pk)["timeout"] == 2


def test_a_server_error_that_persists_is_unavailable(make_chatbot, platform):
    spec, fake = platform
    spec.add_order(fake, EMAIL)
    source = spec.make_source(fake, make_chatbot())
    fake.configure(status=503)

    outcome = run_lookup(source, spec.typed_number, email=EMAIL)

    assert outcome.result == "unavailable" and outcome.error.reason == "unavailable"
    assert len(outcome.calls) == 3


@pytest.mark.parametrize("status", [404, 500])
def test_a_platform_fault_is_reported_in_words(make_chatbot, platform, status):
    spec, fake = platform
    source = spec.make_source(fake, make_chatbot())
    fake.configure(status=status)

    outcome = run_lookup(source, spec.typed_number, email=EMAIL)

    if status == 404 and spec.kind == "generic":
        assert outcome.result == "not_found"  # the connector says 404 means "no such order"
    else:
        assert outcome.result == "unavailable"
        assert str(status) in outcome.error.message
