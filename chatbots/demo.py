"""The demo chatbot: a small shop FAQ answered by the builtin endpoint, no API key needed."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Shop
from chatbots.models import AIEndpoint, Chatbot, Flow, KnowledgeBase, KnowledgeEntry

DEMO_ENTRIES = [
    (
        "Shipping and delivery",
        "We ship to Denmark, Sweden and Norway. Orders placed before 14:00 on a weekday leave "
        "our warehouse the same day and usually arrive in 1-3 working days. Shipping is free "
        "for orders over 499 DKK; below that it costs 49 DKK. You get a tracking link by email "
        "when the parcel leaves us.",
        ["shipping", "delivery", "tracking"],
    ),
    (
        "Levering og fragt",
        "Vi sender til Danmark, Sverige og Norge. Bestillinger afgivet før kl. 14 på hverdage "
        "sendes samme dag og er normalt fremme på 1-3 hverdage. Fri fragt ved køb over 499 kr., "
        "ellers koster fragten 49 kr. Du får et sporingslink på e-mail, når pakken er afsendt.",
        ["levering", "fragt", "sporing"],
    ),
    (
        "Returns and refunds",
        "You can return unused items within 30 days of delivery. Start a return from the link "
        "in your order confirmation, pack the items securely and drop the parcel at any "
        "parcel shop. We refund the purchase price within 5 working days after we receive the "
        "return. Damaged items: send us a photo and we replace them free of charge.",
        ["returns", "refund", "damaged"],
    ),
    (
        "Returnering og fortrydelsesret",
        "Du kan returnere ubrugte varer inden for 30 dage efter levering. Start returneringen "
        "fra linket i din ordrebekræftelse, pak varerne godt ind og aflever pakken i en "
        "pakkeshop. Vi refunderer købsbeløbet inden for 5 hverdage efter vi har modtaget "
        "returneringen. Beskadigede varer: send os et billede, så erstatter vi dem gratis.",
        ["retur", "refusion", "beskadiget"],
    ),
    (
        "Opening hours and contact",
        "Our customer service answers Monday to Friday 9:00-16:00 by chat, email and phone. "
        "Write to kundeservice@demo-shop.example or call +45 70 00 00 00. Outside opening "
        "hours you can leave a message and we reply the next working day.",
        ["opening hours", "contact", "customer service"],
    ),
    (
        "Åbningstider og kontakt",
        "Kundeservice har åbent mandag til fredag kl. 9-16 på chat, e-mail og telefon. Skriv "
        "til kundeservice@demo-shop.example eller ring på 70 00 00 00. Uden for åbningstiden "
        "kan du lægge en besked, så svarer vi næste hverdag.",
        ["åbningstider", "kontakt", "kundeservice"],
    ),
    (
        "Payment methods",
        "We accept Visa, Mastercard, MobilePay, Apple Pay and invoice through Klarna. The "
        "amount is reserved when you order and charged when the parcel is shipped. All "
        "prices include VAT.",
        ["payment", "mobilepay", "card", "invoice"],
    ),
    (
        "Betaling",
        "Vi tager imod Visa, Mastercard, MobilePay, Apple Pay og faktura via Klarna. Beløbet "
        "reserveres ved bestilling og trækkes, når pakken afsendes. Alle priser er inkl. moms.",
        ["betaling", "mobilepay", "kort", "faktura"],
    ),
]


DEMO_SHOP_SLUG = "demo"


def demo_shop() -> Shop:
    """The demo bots' shop account; the admin user, a superuser, sees it like every shop."""
    shop, _ = Shop.objects.get_or_create(slug=DEMO_SHOP_SLUG, defaults={"name": "Demo"})
    return shop


def _demo_chatbot(public_id: str, *, shop: Shop, name: str, greeting: str, **extra) -> Chatbot:
    """A demo bot as first made (an existing one is left as staff edited it): English, served
    to the demo page on this machine, mail to the demo shop's customer service; `extra` adds
    fields."""
    chatbot, _ = Chatbot.objects.get_or_create(
        public_id=public_id,
        defaults={
            "shop": shop,
            "name": name,
            "language": "en",
            "greeting": greeting,
            "allowed_origins": ["http://127.0.0.1:8000", "http://localhost:8000"],
            "contact_email": "kundeservice@demo-shop.example",
            **extra,
        },
    )
    return chatbot


@transaction.atomic
def demo_load() -> Chatbot:
    shop = demo_shop()
    endpoint, _ = AIEndpoint.objects.get_or_create(
        shop=shop, name="Builtin", defaults={"kind": AIEndpoint.Kind.BUILTIN}
    )
    chatbot = _demo_chatbot(
        "demo",
        shop=shop,
        name="Demo Shop",
        greeting="Hi! Ask me about shipping, returns, payment or opening hours.",
        opening_hours={day: [["09:00", "16:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
        contact_phone="+45 70 00 00 00",
        topics=["shipping", "returns", "payment", "opening hours", "order"],
    )
    kb, _ = KnowledgeBase.objects.get_or_create(
        chatbot=chatbot, name="Shop FAQ", defaults={"kind": KnowledgeBase.Kind.BUILTIN}
    )
    for title, text, tags in DEMO_ENTRIES:
        KnowledgeEntry.objects.update_or_create(
            knowledge_base=kb, title=title, defaults={"text": text, "tags": tags}
        )
    Flow.objects.get_or_create(
        chatbot=chatbot,
        name="main",
        defaults={
            "role": Flow.Role.ANSWER,
            "is_main": True,
            "endpoint": endpoint,
            "knowledge_base": kb,
            "top_k": 2,
        },
    )
    if chatbot.live_version_id is None:
        # The demo shows reviewed publishing: staff edit a draft, customers get version 1.
        from chatbots.versions import chatbot_publishing_set

        chatbot_publishing_set(chatbot=chatbot, publishing=Chatbot.Publishing.REVIEWED)
    return chatbot


DEMO_CHATFLOW_ID = "0d5e1f2a-3b4c-4d6e-8f90-a1b2c3d4e5f6"


@transaction.atomic
def demo_flowise_load(*, base_url: str) -> Chatbot:
    """A second demo bot on a Flowise endpoint (the fake Flowise `./run` starts locally)."""
    shop = demo_shop()
    endpoint, _ = AIEndpoint.objects.update_or_create(
        shop=shop,
        name="Demo Flowise (local fake)",
        defaults={"kind": AIEndpoint.Kind.FLOWISE, "base_url": base_url, "read_timeout": 30.0},
    )
    chatbot = _demo_chatbot(
        "demo-flowise",
        shop=shop,
        name="Demo Shop (Flowise)",
        greeting="Hi! I answer through a (fake) Flowise server.",
    )
    Flow.objects.update_or_create(
        chatbot=chatbot,
        name="main",
        defaults={
            "role": Flow.Role.ANSWER,
            "is_main": True,
            "endpoint": endpoint,
            "target": DEMO_CHATFLOW_ID,
        },
    )
    return chatbot


def demo_allow_origin(*, origin: str) -> None:
    """The demo page is served by this installation: its own origin must be allowed."""
    for chatbot in Chatbot.objects.filter(public_id__in=["demo", "demo-flowise"]):
        if origin not in chatbot.allowed_origins:
            chatbot.allowed_origins = [*chatbot.allowed_origins, origin]
            chatbot.save(update_fields=["allowed_origins", "updated_at"])
