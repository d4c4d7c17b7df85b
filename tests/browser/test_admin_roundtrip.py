"""Every admin change form, saved untouched in Chromium, changes nothing.

For each model registered in the admin: open an existing object whose secrets are all set,
press Save without touching anything, and compare every row of every admin-managed table (the
object, its inlines, everything else) and every decrypted secret before and after. The page
is submitted by the browser, so whatever the page shows is what gets posted — a key box that
displays "True" stores "True". Models get a hand-made object below when they need a realistic
one (secrets set, inlines filled); every other registered model gets one from model_bakery, so
a new model admin is covered without anyone writing a test for it.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.urls import reverse
from model_bakery import baker
from playwright.sync_api import expect

from chatbots.demo import demo_load
from chatbots.models import (
    AIEndpoint,
    Flow,
    KnowledgeBase,
    KnowledgeEntry,
    PromptTemplate,
    TemplateAssignment,
    TextRule,
)
from chatbots.secrets import EncryptedSecretField
from tests.browser.conftest import admin_log_in, artifact_name, screenshot

pytestmark = [
    pytest.mark.e2e,  # Serialized rollback keeps content types (and so their ids) across the flush between
    # tests: Daphne caches them, and an admin save logs against them.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

STAFF = ("roundtrip-admin", "a-long-test-password-71")
SECRETS = {
    "openai": "sk-roundtrip-openai-0a1b2c3d4e",
    "pinecone": "pcsk-roundtrip-pinecone-5f6a7b",
    "helpdesk": "helpdesk-roundtrip-key-8c9d0e",
    "webhook": "webhook-roundtrip-secret-2b3c4d",
    "client_secret": "client-secret-roundtrip-1f2a3b",
    "access_token": "access-token-roundtrip-4c5d6e",
    "token_secret": "token-secret-roundtrip-7f8a9b",
    # Auth headers are one "Name: value" per line: two lines, as a textarea posts them back.
    "mcp_headers": "Authorization: Bearer mcp-roundtrip-3e4f5a\nX-Shop-Id: 7",
    "http_headers": "Authorization: Bearer http-roundtrip-6b7c8d\nX-Shop-Id: 7",
}


def registered_models() -> list[type[models.Model]]:
    return sorted(admin.site._registry, key=lambda m: m._meta.label)


def managed_models() -> list[type[models.Model]]:
    """Registered models and their inline models: everything a change form could write."""
    found: dict[str, type[models.Model]] = {}
    for model, model_admin in admin.site._registry.items():
        for m in (model, *(inline.model for inline in model_admin.inlines)):
            if m._meta.managed and not m._meta.proxy:
                found[m._meta.label] = m
    return [found[label] for label in sorted(found)]


def _value(field: models.Field, obj: models.Model) -> Any:
    value = field.value_from_object(obj)
    if isinstance(field, EncryptedSecretField):
        return ("secret", value.reveal() if value else "")
    return value


def snapshot() -> dict[tuple[str, Any], dict[str, Any]]:
    """Every row of every admin-managed table, auto_now stamps left out (a save sets them)."""
    rows: dict[tuple[str, Any], dict[str, Any]] = {}
    for model in managed_models():
        fields = [f for f in model._meta.concrete_fields if not getattr(f, "auto_now", False)]
        for obj in model._default_manager.all():
            rows[(model._meta.label, obj.pk)] = {f.attname: _value(f, obj) for f in fields}
        for f in model._meta.many_to_many:
            for obj in model._default_manager.all():
                rows[(model._meta.label, obj.pk)][f.name] = sorted(
                    getattr(obj, f.name).values_list("pk", flat=True)
                )
    return rows


# Logs a save is meant to write (the shop's audit log records who changed what).
APPEND_ONLY = {"accounts.AuditEvent"}


def differences(before: dict, after: dict) -> list[str]:
    out = []
    for key in sorted(set(before) | set(after), key=str):
        if key not in after:
            out.append(f"{key}: row deleted")
        elif key not in before:
            if key[0] not in APPEND_ONLY:
                out.append(f"{key}: row added")
        else:
            for name in before[key]:
                if before[key][name] != after[key].get(name):
                    out.append(f"{key}.{name}: {before[key][name]!r} → {after[key][name]!r}")
    return out


def populate() -> None:
    """Realistic objects for the models whose forms are the riskiest, every secret set."""
    chatbot = demo_load()
    chatbot.opening_hours = {"mon": [["09:00", "12:00"], ["13:00", "16:30"]], "sat": []}
    chatbot.save()
    openai = AIEndpoint.objects.create(
        shop=chatbot.shop,
        name="OpenAI",
        kind=AIEndpoint.Kind.OPENAI,
        base_url="https://api.openai.example/v1",
        api_key=SECRETS["openai"],
        read_timeout=42.5,
    )
    pinecone = KnowledgeBase.objects.create(
        chatbot=chatbot,
        name="Products",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="products",
        host="products-abc.svc.pinecone.io",
        namespace="da",
        api_key=SECRETS["pinecone"],
    )
    flow = Flow.objects.create(
        chatbot=chatbot,
        name="products",
        role=Flow.Role.ANSWER,
        routing_key="product",
        endpoint=openai,
        target="gpt-4o-mini",
        knowledge_base=pinecone,
        top_k=3,
    )
    template = PromptTemplate.objects.create(
        shop=chatbot.shop,
        name="shop-assistant",
        description="The shop's tone",
        text="You are {{shop_name}}'s assistant. Tone: {{tone}}.\n\n{{context}}",
        variables={"tone": "friendly", "shop_name": "Demo"},
    )
    TemplateAssignment.objects.create(
        chatbot=chatbot, flow=flow, template=template, overrides={"tone": "warm"}
    )
    TextRule.objects.create(
        chatbot=chatbot, position=1, kind="replace", find="cheap", replace="affordable"
    )
    KnowledgeEntry.objects.create(
        knowledge_base=KnowledgeBase.objects.get(chatbot=chatbot, name="Shop FAQ"),
        title="Line breaks",
        text="First line.\nSecond line with  two spaces.\n\n  Indented third.",
        tags=["a", "b c"],
    )
    from helpdesk.models import HelpdeskConnection
    from orders.models import OrderSource

    OrderSource.objects.create(
        chatbot=chatbot,
        name="Magento",
        kind=OrderSource.Kind.MAGENTO,
        base_url="https://shop.example",
        auth_method=OrderSource.AuthMethod.OAUTH1,
        client_id="consumer-key",
        client_secret=SECRETS["client_secret"],
        access_token=SECRETS["access_token"],
        token_secret=SECRETS["token_secret"],
        timeout=12.5,
    )
    HelpdeskConnection.objects.create(
        chatbot=chatbot,
        kind="freshdesk",
        domain="demo.freshdesk.com",
        api_key=SECRETS["helpdesk"],
        webhook_secret=SECRETS["webhook"],
        agent_email="agent@demo-shop.example",
        tags=["web", "vip"],
    )
    from tools.models import HttpTool, McpServer

    # Saving an MCP server lists its tools; nothing listens on port 9, so the listing fails
    # (a warning) and leaves the row as it was.
    McpServer.objects.create(
        shop=chatbot.shop,
        name="warehouse",
        url="http://127.0.0.1:9/mcp",
        auth_headers=SECRETS["mcp_headers"],
        timeout=2,
    )
    HttpTool.objects.create(
        shop=chatbot.shop,
        name="stock",
        description="Stock of a product by its SKU.",
        url="https://shop.example/api/stock/{sku}",
        parameters={"type": "object", "properties": {"sku": {"type": "string"}}},
        personal_arguments="email",
        auth_headers=SECRETS["http_headers"],
    )


# Values model_bakery cannot guess (it knows field types, not CHECK constraints).
BAKER_VALUES: dict[str, dict[str, Any]] = {
    "helpdesk.ConversationRating": {"score": 4},
    # A shortcut is typed as /shortcut: lower-case letters, digits, - and _ (its validator).
    "inbox.CannedResponse": {"shortcut": "returns"},
    # An answer check's form wants a language code and phrases as a list of text.
    "quality.AnswerCheck": {
        "expect_language": "nl",
        "must_contain": ["free shipping", "€50"],
        "must_not_contain": ["guarantee"],
    },
    # An HTTP tool's form wants an http(s) address and a JSON Schema object for its arguments.
    "tools.HttpTool": {
        "url": "https://shop.example/api/stock/{sku}",
        "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
    },
}


def _within_validators(model: type[models.Model]) -> dict[str, Any]:
    """A value inside each field's Min/MaxValueValidator: model_bakery fills numbers at random,
    which a bounded field's form then refuses (a page that shows an error cannot save)."""
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        low = high = None
        for validator in field.validators:
            if isinstance(validator, MinValueValidator):
                low = validator.limit_value
            elif isinstance(validator, MaxValueValidator):
                high = validator.limit_value
        if callable(low) or callable(high):
            continue
        if low is not None or high is not None:
            values[field.name] = low if low is not None else high
    return values


def ensure_object(model: type[models.Model]) -> models.Model:
    obj = model._default_manager.order_by("pk").last()
    if obj is not None:
        return obj
    values = {**_within_validators(model), **BAKER_VALUES.get(model._meta.label, {})}
    try:
        with transaction.atomic():
            return baker.make(model, _fill_optional=True, **values)
    except Exception:  # optional fields filled at random may break an invariant
        pass
    try:
        with transaction.atomic():
            return baker.make(model, **values)
    except Exception as exc:
        pytest.fail(
            f"model_bakery cannot make a {model._meta.label} ({exc}); add the values it "
            "needs to BAKER_VALUES in this file"
        )


@pytest.fixture
def staff_page(page, stack, settings):
    # Daphne checks the password with the default hashers, not the suite's fast MD5.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    User.objects.create_superuser(STAFF[0], "roundtrip@example.com", STAFF[1])
    page.set_viewport_size({"width": 1280, "height": 900})
    admin_log_in(page, stack.base_url, *STAFF)
    expect(
        page.get_by_role("link", name="Log out").or_(page.locator("#logout-form"))
    ).to_have_count(1)
    return page


@pytest.mark.parametrize(
    "model", registered_models(), ids=[m._meta.label for m in registered_models()]
)
def test_saving_an_untouched_change_form_changes_nothing(staff_page, stack, model):
    page = staff_page
    populate()
    obj = ensure_object(model)
    for other in managed_models():  # every table holds a row, so nothing can hide
        ensure_object(other)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
    before = snapshot()

    response = page.goto(stack.base_url + url)
    assert response is not None and response.status == 200, url
    save = page.locator('input[name="_save"]')
    if save.count() == 0:
        pytest.skip(f"{model._meta.label}: the change page is read-only (no Save button)")
    for box in page.locator('input[type="password"], textarea[autocomplete="new-password"]').all():
        assert box.input_value() == "", "a secret box must start empty"
    save.click()
    page.wait_for_load_state("load")

    errors = page.locator(".errornote, .errorlist")
    if errors.count():
        screenshot(page, f"roundtrip-{artifact_name(model._meta.label)}")
    assert errors.count() == 0, f"{model._meta.label}: {errors.all_inner_texts()}"
    assert differences(before, snapshot()) == []


def test_the_round_trip_covers_every_secret_field():
    from chatbots.transfer import encrypted_secret_fields

    covered = {m._meta.label for m in managed_models()}
    assert {m._meta.label for m, _ in encrypted_secret_fields()} <= covered


def test_the_object_each_round_trip_opens_has_every_secret_set():
    """A secret left empty would pass the round trip whatever its box posts: the object the
    test opens for a model with secrets must hold every one (set it in populate())."""
    from chatbots.transfer import encrypted_secret_fields

    populate()
    unset = [
        f"{model._meta.label}.{field.name}"
        for model, field in encrypted_secret_fields()
        if model._meta.label in {m._meta.label for m in managed_models()}
        and not getattr(ensure_object(model), field.name)
    ]
    assert unset == []
