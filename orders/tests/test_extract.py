"""The builtin extractor: order numbers, emails and postcodes in Danish and English messages."""

from __future__ import annotations

import pytest

from orders.carriers import tracking_url
from orders.extract import OrderDetails, find_order_number, order_details


@pytest.mark.parametrize(
    ("message", "number"),
    [
        ("where is my order 1001, my email is anna@example.com", "1001"),
        ("Where is order #1001?", "1001"),
        ("my order number is DK-1001", "DK-1001"),
        ("order no. 1001-A please", "1001-A"),
        ("1001", "1001"),
        ("#1001", "#1001"),
        ("DK-1001", "DK-1001"),
        ("Hvor er min ordre 1001?", "1001"),
        ("Hvor er min pakke? Ordrenummer: 100000123", "100000123"),
        ("mit ordrenummer lyder på SHOP-1001", "SHOP-1001"),
        ("bestillingsnummer 1001 tak", "1001"),
        ("Min ordre er 1001 og min mail er anna+1@example.com", "1001"),
        ("I paid 499 kr for order 1001", "1001"),
        ("my phone is 12345678, order 5555", "5555"),
        ("ordre 1001, postnummer 2100", "1001"),
    ],
)
def test_order_numbers_are_found_in_danish_and_english(message, number):
    assert find_order_number(message) == number


@pytest.mark.parametrize(
    "message",
    [
        "Jeg bestilte 3 flasker af 2019 årgangen",
        "Har I 75 cl flasker?",
        "my email is anna1001@example.com",
        "see https://shop.example/p/12345",
        "Hvad koster 499 kr vinen?",
    ],
)
def test_numbers_that_are_not_order_numbers_are_ignored(message):
    assert find_order_number(message) == ""


def test_the_email_and_number_can_come_in_different_messages():
    history = [
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "What is your order number?"},
        {"role": "user", "content": "1001"},
        {"role": "assistant", "content": "Thanks, and your email?"},
    ]
    details = order_details(extracted=None, question="it's Anna@Example.com", history=history)
    assert details == OrderDetails(order_number="1001", email="anna@example.com")


def test_a_bare_number_in_a_long_unrelated_earlier_message_is_not_taken():
    history = [
        {
            "role": "user",
            "content": "I would like to know if the 2021 wine and the 1500 ml "
            "bottle are in stock before the weekend please",
        }
    ]
    details = order_details(extracted=None, question="anna@example.com", history=history)
    assert details.order_number == ""


def test_the_assistants_own_messages_are_never_read():
    history = [{"role": "assistant", "content": "For example order 9999 or anna@example.com"}]
    assert order_details(extracted=None, question="hi", history=history) == OrderDetails()


def test_the_extractor_json_is_read_under_its_usual_names():
    details = order_details(
        extracted={"OrderNumber": " #1001 ", "E-mail": "ANNA@example.com", "zip": "2100"},
        question="",
    )
    assert details == OrderDetails(order_number="#1001", email="anna@example.com", postcode="2100")


def test_empty_or_junk_extractor_values_fall_back_to_the_message():
    details = order_details(
        extracted={"order_number": "null", "email": "not an email"},
        question="ordre 1001, anna@example.com",
    )
    assert details == OrderDetails(order_number="1001", email="anna@example.com")


def test_missing_lists_what_the_second_factor_needs():
    assert OrderDetails(order_number="1").missing("email") == ["email"]
    assert OrderDetails(email="a@b.dk").missing("postcode") == ["order_number", "postcode"]


def test_tracking_links_come_from_carrier_templates_and_never_from_guesses():
    assert tracking_url("GLS", "123 45") == "https://gls-group.eu/DK/da/find-pakke?match=123%2045"
    assert tracking_url("United Parcel Service", "1Z9") == "https://www.ups.com/track?tracknum=1Z9"
    assert tracking_url("Post Danmark", "X1").startswith("https://www.postnord.dk/")
    assert tracking_url("Budbringer Bent", "77") is None
    assert tracking_url("GLS", None) is None
    own = {"Budbringer Bent": "https://bent.example/t/{number}"}
    assert tracking_url("budbringer bent", "77", own) == "https://bent.example/t/77"
