"""What the customer reads about an order, in the chatbot's language (Danish or English).

The templated answer is used when the order flow's endpoint is `builtin` (no AI); the other
messages (asking for details, not found, platform down) are always ours, so a mismatching email
reads exactly like an unknown order number whatever flow is configured.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from chatbots.config_types import ChatbotBase

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "need_both": "I can look up your order. Please send your order number and the email "
        "address you used when you ordered.",
        "need_both_postcode": "I can look up your order. Please send your order number and the "
        "postcode of the delivery address.",
        "need_number": "What is your order number? You'll find it in your order confirmation.",
        "need_email": "Thanks. To protect your details I also need the email address you used "
        "when you ordered.",
        "need_postcode": "Thanks. To protect your details I also need the postcode of the "
        "delivery address.",
        "not_found": "I couldn't find an order with those details. Please check the order number "
        "in your order confirmation and the email address you ordered with, and try again.",
        "not_found_postcode": "I couldn't find an order with those details. Please check the "
        "order number in your order confirmation and the postcode, and try again.",
        "unavailable": "I can't reach the shop's order system right now, so I can't see your "
        "order. Please try again in a few minutes.",
        "too_many": "I couldn't match those details to an order. For your security I won't try "
        "more order numbers in this conversation.",
        "contact": " You can also contact our customer service{ways}.",
        "order": "Order {number}: {status}.",
        "placed": " Placed on {date}.",
        "items": "\n\nItems: {items}.",
        "shipment": "\n\nShipped with {carrier}{date}. Tracking number: {number}.",
        "shipment_no_carrier": "\n\nShipped{date}. Tracking number: {number}.",
        "track": " Track the parcel here: {url}",
        "status_page": "\n\nSee your order status here: {url}",
        "on": " on {date}",
    },
    "da": {
        "need_both": "Jeg kan slå din ordre op. Skriv dit ordrenummer og den e-mailadresse, du "
        "bestilte med.",
        "need_both_postcode": "Jeg kan slå din ordre op. Skriv dit ordrenummer og postnummeret "
        "på leveringsadressen.",
        "need_number": "Hvad er dit ordrenummer? Du finder det i din ordrebekræftelse.",
        "need_email": "Tak. For at beskytte dine oplysninger skal jeg også bruge den "
        "e-mailadresse, du bestilte med.",
        "need_postcode": "Tak. For at beskytte dine oplysninger skal jeg også bruge "
        "postnummeret på leveringsadressen.",
        "not_found": "Jeg kunne ikke finde en ordre med de oplysninger. Tjek ordrenummeret i din "
        "ordrebekræftelse og den e-mailadresse, du bestilte med, og prøv igen.",
        "not_found_postcode": "Jeg kunne ikke finde en ordre med de oplysninger. Tjek "
        "ordrenummeret i din ordrebekræftelse og postnummeret, og prøv igen.",
        "unavailable": "Jeg kan ikke få forbindelse til butikkens ordresystem lige nu, så jeg "
        "kan ikke se din ordre. Prøv igen om et par minutter.",
        "too_many": "Jeg kunne ikke finde en ordre, der passer til de oplysninger. Af hensyn "
        "til din sikkerhed prøver jeg ikke flere ordrenumre i denne samtale.",
        "contact": " Du kan også kontakte vores kundeservice{ways}.",
        "order": "Ordre {number}: {status}.",
        "placed": " Bestilt {date}.",
        "items": "\n\nVarer: {items}.",
        "shipment": "\n\nSendt med {carrier}{date}. Trackingnummer: {number}.",
        "shipment_no_carrier": "\n\nSendt{date}. Trackingnummer: {number}.",
        "track": " Følg pakken her: {url}",
        "status_page": "\n\nSe status på din ordre her: {url}",
        "on": " den {date}",
    },
}

STATUS_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "processing": "we are preparing it",
        "partially_shipped": "part of it has been shipped",
        "shipped": "it has been shipped",
        "delivered": "it has been delivered",
        "completed": "it is completed",
        "on_hold": "it is on hold",
        "cancelled": "it has been cancelled",
        "refunded": "it has been refunded",
        "pending_payment": "we are waiting for the payment",
        "unknown": "I can see the order, but not its current status",
    },
    "da": {
        "processing": "vi er ved at pakke den",
        "partially_shipped": "en del af den er sendt",
        "shipped": "den er sendt",
        "delivered": "den er leveret",
        "completed": "den er afsluttet",
        "on_hold": "den er sat i bero",
        "cancelled": "den er annulleret",
        "refunded": "den er refunderet",
        "pending_payment": "vi venter på betalingen",
        "unknown": "jeg kan se ordren, men ikke dens aktuelle status",
    },
}


def _texts(language: str) -> dict[str, str]:
    return TEXTS.get(language, TEXTS["en"])


def _date(value: str | None, language: str) -> str:
    if not value:
        return ""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return parsed.strftime("%d.%m.%Y") if language == "da" else parsed.strftime("%d %b %Y")


def contact_suffix(config: ChatbotBase, language: str) -> str:
    ways = [w for w in (config.get("contact_email"), config.get("contact_phone")) if w]
    if not ways:
        return ""
    joiner = " eller " if language == "da" else " or "
    prefix = " på " if language == "da" else " at "
    return _texts(language)["contact"].format(ways=prefix + joiner.join(ways))


def need_details_text(missing: list[str], language: str) -> str:
    texts = _texts(language)
    if "order_number" in missing and len(missing) > 1:
        return texts["need_both_postcode" if "postcode" in missing else "need_both"]
    if "order_number" in missing:
        return texts["need_number"]
    return texts["need_postcode" if "postcode" in missing else "need_email"]


def not_found_text(language: str, second_factor: str) -> str:
    return _texts(language)["not_found_postcode" if second_factor == "postcode" else "not_found"]


def unavailable_text(language: str, config: ChatbotBase) -> str:
    return _texts(language)["unavailable"] + contact_suffix(config, language)


def too_many_text(language: str, config: ChatbotBase) -> str:
    return _texts(language)["too_many"] + contact_suffix(config, language)


def order_answer_text(order: dict[str, Any], language: str) -> str:
    """The whole answer about a verified order: status, items, tracking number and link."""
    texts = _texts(language)
    statuses = STATUS_TEXTS.get(language, STATUS_TEXTS["en"])
    parts = [
        texts["order"].format(
            number=order.get("order_number") or "",
            status=statuses.get(order.get("status") or "unknown", statuses["unknown"]),
        )
    ]
    placed = _date(order.get("created_at"), language)
    if placed:
        parts.append(texts["placed"].format(date=placed))
    items = [
        f"{item.get('quantity') or 1} × {item.get('name')}"
        for item in order.get("line_items") or []
        if item.get("name")
    ]
    if items:
        parts.append(texts["items"].format(items=", ".join(items[:10])))
    for shipment in order.get("shipments") or []:
        number = shipment.get("tracking_number")
        if not number:
            continue
        date = _date(shipment.get("shipped_at"), language)
        on = texts["on"].format(date=date) if date else ""
        if shipment.get("carrier"):
            parts.append(
                texts["shipment"].format(carrier=shipment["carrier"], date=on, number=number)
            )
        else:
            parts.append(texts["shipment_no_carrier"].format(date=on, number=number))
        if shipment.get("tracking_url"):
            parts.append(texts["track"].format(url=shipment["tracking_url"]))
    if order.get("status_page_url"):
        parts.append(texts["status_page"].format(url=order["status_page_url"]))
    return "".join(parts)


def order_context_text(order: dict[str, Any]) -> str:
    """The order as context for an AI answer flow: the verified facts and nothing personal."""
    return (
        "Order details for this customer (verified: the customer gave the order number and the "
        "matching contact details). Answer questions about the order only from these facts; "
        "give tracking numbers and links exactly as written. "
        + json.dumps(order, ensure_ascii=False)
    )
