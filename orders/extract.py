"""Order number, email and postcode from what the customer wrote (Danish and English).

The chatbot's extractor flow answers first (its JSON arrives as `ctx.extracted`); whatever it
leaves out is looked for in the current message, then in the customer's recent messages, so
"1001" followed later by "my email is x@y.dk" works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
URL = re.compile(r"https?://\S+", re.I)
# What a customer-facing order number may look like once found: #1001, 1001, DK-1001, 1001-A.
ORDER_NUMBER = re.compile(r"^#?[A-Za-z0-9][A-Za-z0-9_/.\-]{0,39}$")
_TOKEN = r"#?\s?(?:[A-Za-z]{1,6}[-_/])?\d[0-9A-Za-z_/\-]{1,24}"
_KEYWORD = (
    r"(?:order\s*(?:number|no\.?|nr\.?|id|#)?|ordre\s*(?:nummer|nr\.?|id|#)?|ordrenummer|"
    r"ordrenr\.?|bestilling\s*(?:nummer|nr\.?)?|bestillingsnummer|bestillingsnr\.?|"
    r"order-?id|nr\.?|no\.?|number|nummer)"
)
KEYWORDED = re.compile(
    rf"(?<![A-Za-z]){_KEYWORD}[\s:.#-]*(?:(?:is|er|was|var|lyder på|hedder)\s*[:#]?\s*)?({_TOKEN})",
    re.I,
)
HASHED = re.compile(r"#\s?(\d[0-9A-Za-z_/\-]{1,24})")
CODED = re.compile(r"(?<![\w@.-])([A-Za-z]{1,6}-\d{2,20}(?:-[A-Za-z0-9]{1,6})?)(?![\w@])")
BARE = re.compile(r"(?<![\w@+.,:/-])(\d{3,12})(?![\w@]|[.,:/]\d)")
NOT_AN_ORDER_AFTER = re.compile(r"^\s*(?:kr\b|dkk|eur|€|\$|%|stk|pcs|x\b|kg|g\b|ml|cl|l\b)", re.I)
NOT_AN_ORDER_BEFORE = re.compile(
    r"(?:tlf|telefon|phone|mobil|mobile|postnummer|postnr|post code|postcode|zip|cvr)\.?\s*"
    r"(?:number|nummer|nr\.?|is|er)?[\s:.#]*$",
    re.I,
)
POSTCODE = re.compile(
    r"(?:postnummer|postnr\.?|post\s*code|postal\s*code|postcode|zip(?:\s*code)?)"
    r"[\s:.#-]*(?:(?:is|er)\s*[:#]?\s*)?([A-Za-z]{0,2}\d[A-Za-z0-9]{1,4}(?:\s?\d[A-Za-z]{2})?)",
    re.I,
)
ORDER_WORDS = re.compile(r"ordre|order|bestilling|pakke|package|parcel|levering|delivery", re.I)

EXTRACTOR_KEYS = {
    "order_number": (
        "order_number",
        "orderNumber",
        "ordernumber",
        "order_no",
        "order_id",
        "orderId",
        "ordrenummer",
        "ordre_nummer",
        "ordrenr",
        "order",
        "number",
    ),
    "email": (
        "email",
        "e-mail",
        "e_mail",
        "mail",
        "customer_email",
        "customerEmail",
        "email_address",
    ),
    "postcode": ("postcode", "postal_code", "postalCode", "zip", "zip_code", "postnummer"),
}
HISTORY_MESSAGES = 6


@dataclass
class OrderDetails:
    order_number: str = ""
    email: str = ""
    postcode: str = ""

    def missing(self, second_factor: str) -> list[str]:
        needed = ["order_number", "email" if second_factor == "email" else "postcode"]
        return [name for name in needed if not getattr(self, name)]


def clean_order_number(value: Any) -> str:
    text = re.sub(r"\s+", "", str(value or "")).strip(".,;:!?")
    if text.startswith("#") and len(text) > 1 and text[1] == "#":
        text = text[1:]
    return text if ORDER_NUMBER.match(text) and any(c.isdigit() for c in text) else ""


def clean_email(value: Any) -> str:
    """A plausible address taken from customer text (surrounding <>.,;: dropped), lower-cased;
    "" when it does not look like one. Comparing with the platform's is
    orders.providers.base.normalize_email, which accepts any text."""
    text = str(value or "").strip().strip("<>.,;:").lower()
    return text if EMAIL.fullmatch(text) else ""


def clean_postcode(value: Any) -> str:
    """A plausible postcode from customer text, spaces kept; "" otherwise (see normalize_postcode)."""
    text = " ".join(str(value or "").split()).upper()
    return text if re.fullmatch(r"[A-Z0-9][A-Z0-9 \-]{1,9}", text) else ""


def find_email(text: str) -> str:
    match = EMAIL.search(text or "")
    return clean_email(match.group(0)) if match else ""


def find_postcode(text: str) -> str:
    match = POSTCODE.search(text or "")
    return clean_postcode(match.group(1)) if match else ""


def find_order_number(text: str, *, allow_bare: bool = True) -> str:
    """The order number in one message, most explicit form first."""
    text = URL.sub(" ", EMAIL.sub(" ", text or ""))
    text = POSTCODE.sub(" ", text)
    for keyworded in KEYWORDED.finditer(text):
        found = clean_order_number(keyworded.group(1))
        if found:
            return found
    match = HASHED.search(text)
    if match:
        return clean_order_number("#" + match.group(1))
    match = CODED.search(text)
    if match:
        return clean_order_number(match.group(1))
    if not allow_bare:
        return ""
    for match in BARE.finditer(text):
        if NOT_AN_ORDER_AFTER.match(text[match.end() :]):
            continue
        if NOT_AN_ORDER_BEFORE.search(text[: match.start()]):
            continue
        if re.fullmatch(r"(19|20)\d\d", match.group(1)) and not ORDER_WORDS.search(text):
            continue  # a year ("vintage 2019"), unless the message is about an order
        return clean_order_number(match.group(1))
    return ""


def from_extractor(extracted: dict[str, Any] | None) -> OrderDetails:
    details = OrderDetails()
    if not isinstance(extracted, dict):
        return details
    lowered = {str(k).lower(): v for k, v in extracted.items()}
    for name, keys in EXTRACTOR_KEYS.items():
        for key in keys:
            value = lowered.get(key.lower())
            if value in (None, "", "null", "none", "unknown"):
                continue
            cleaner = {"order_number": clean_order_number, "email": clean_email}.get(
                name, clean_postcode
            )
            value = cleaner(value)
            if value:
                setattr(details, name, value)
                break
    return details


def order_details(
    *,
    extracted: dict[str, Any] | None,
    question: str,
    history: list[dict[str, str]] | None = None,
) -> OrderDetails:
    """Extractor JSON first, then the message, then the customer's earlier messages."""
    details = from_extractor(extracted)
    earlier = [m.get("content") or "" for m in reversed(history or []) if m.get("role") == "user"][
        :HISTORY_MESSAGES
    ]
    if not details.order_number:
        details.order_number = find_order_number(question)
    if not details.order_number:
        for text in earlier:
            # A bare number counts in an older message only if it was short or about an order.
            bare = len(text.split()) <= 8 or bool(ORDER_WORDS.search(text))
            details.order_number = find_order_number(text, allow_bare=bare)
            if details.order_number:
                break
    for name, finder in (("email", find_email), ("postcode", find_postcode)):
        if not getattr(details, name):
            for text in (question, *earlier):
                value = finder(text)
                if value:
                    setattr(details, name, value)
                    break
    return details
