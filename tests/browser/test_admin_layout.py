"""The admin where staff look for things, in headless Chromium on a 1,280 px screen: the chatbot
page fits, opening hours are a week table that saves untouched hours unchanged, the default
model is picked from the list "Test connection" fetched, the lists fit, the index leads on.

Screenshots go to test-artifacts/admin/ (tests/browser/conftest.py empties browser/ per run)."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from chatbots.models import (
    AIEndpoint,
    Chatbot,
    Flow,
    KnowledgeBase,
    PromptTemplate,
    TemplateAssignment,
    TextRule,
)
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow, shop_for_tests
from conversations.models import Conversation
from monitoring.models import ErrorLog
from tests.browser.conftest import admin_log_in, artifact_name
from tests.e2e.conftest import ARTIFACTS
from tests.fakes.openai import FakeOpenAI

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = ARTIFACTS / "admin"
SCREEN = {"width": 1280, "height": 900}
PASSWORD = "correct horse battery"
# Stored as staff would have it: a split Monday, a closed Saturday written out, the other days
# left out. Saving the page untouched must store exactly this again.
HOURS = {
    "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
    "tue": [["09:00", "17:00"]],
    "fri": [["10:00", "15:30"]],
    "sat": [],
}


@pytest.fixture
def staff(settings):
    # Daphne checks the password with the default hashers, not the suite's fast MD5.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    return User.objects.create_superuser("staff", "staff@example.com", PASSWORD)


@pytest.fixture
def admin_page(browser, stack, staff, request):
    """A 1,280 px wide browser, logged in to the admin."""
    context = browser.new_context(viewport=SCREEN, locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    admin_log_in(page, stack.base_url, "staff", PASSWORD)
    expect(page.locator("#site-name")).to_be_visible()
    yield page
    if getattr(getattr(request.node, "report_call", None), "failed", False):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(SHOTS / f"FAILED-{artifact_name(request.node.name)}.png"), full_page=True
        )
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


OVERFLOWING_JS = """width => [...document.querySelectorAll("body *")]
    .filter(el => el.getBoundingClientRect().right > width && el.getBoundingClientRect().width)
    .filter(el => ![...el.children].some(c => c.getBoundingClientRect().right > width))
    .slice(0, 10)
    .map(el => `${el.tagName.toLowerCase()}.${el.className} ${el.getAttribute("name") || ""}`)"""


# Boxes that scroll sideways inside the page (the admin's result lists do, instead of widening
# the document), form inputs aside.
SCROLLERS_JS = """() => [...document.querySelectorAll("body *")]
    .filter(el => !["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName))
    .filter(el => ["auto", "scroll"].includes(getComputedStyle(el).overflowX))
    .filter(el => el.scrollWidth > el.clientWidth + 1)
    .map(el => `${el.tagName.toLowerCase()}.${el.className}: ${el.scrollWidth} > ${el.clientWidth}`)"""


def sideways(page) -> list[str]:
    """What makes a person scroll sideways on a 1,280 px screen: the document wider than the
    window (its innermost culprits named), or a box on the page that scrolls sideways."""
    width = page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )
    problems = page.evaluate(SCROLLERS_JS)
    if width > SCREEN["width"]:
        culprits = ", ".join(page.evaluate(OVERFLOWING_JS, SCREEN["width"]))
        problems.insert(0, f"document {width} px wide: {culprits}")
    return problems


def configured_bot() -> Chatbot:
    """A bot with everything its page shows: several flows on several endpoints, a template,
    text rules and knowledge bases."""
    bot = create_chatbot(
        public_id="vinhuset",
        name="Vinhuset",
        with_main_flow=False,
        opening_hours=HOURS,
        allowed_origins=["https://www.vinhuset.example", "https://vinhuset.example"],
        topics=["levering", "retur", "produkt", "ordre"],
    )
    openai = create_endpoint(
        name="OpenAI production",
        kind=AIEndpoint.Kind.OPENAI,
        base_url="https://api.openai.example/v1",
        default_model="gpt-4o-mini",
    )
    flowise = create_endpoint(
        name="Flowise production", kind=AIEndpoint.Kind.FLOWISE, base_url="https://flowise.example"
    )
    builtin = create_endpoint(name="Builtin", kind=AIEndpoint.Kind.BUILTIN)
    kb = KnowledgeBase.objects.create(chatbot=bot, name="help-pages")
    KnowledgeBase.objects.create(
        chatbot=bot,
        name="products",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="vinhuset-products-2024",
        host="vinhuset-products-2024-abc123.svc.aped-4627-b74a.pinecone.io",
        namespace="products-da",
    )
    main = create_flow(
        chatbot=bot, name="main", is_main=True, endpoint=openai, target="", knowledge_base=kb
    )
    create_flow(
        chatbot=bot,
        name="flow2",
        routing_key="productfilter",
        endpoint=flowise,
        target=str(uuid.uuid4()),
        namespace="products-da-extended",
    )
    create_flow(chatbot=bot, name="router", role=Flow.Role.ROUTER, endpoint=builtin)
    create_flow(
        chatbot=bot,
        name="orders",
        role=Flow.Role.EXTRACTOR,
        applies_to="order",
        endpoint=openai,
        target="gpt-4o",
    )
    template = PromptTemplate.objects.create(
        shop=shop_for_tests(),
        name="shop-assistant",
        text="You help {{shop_name}} customers. {{context}}",
    )
    TemplateAssignment.objects.create(
        chatbot=bot, flow=main, template=template, overrides={"shop_name": "Vinhuset ApS"}
    )
    TextRule.objects.create(chatbot=bot, kind=TextRule.Kind.EXCLAMATION, replace=".")
    TextRule.objects.create(chatbot=bot, find="Hej", replace="Hej med dig", position=1)
    return bot


def test_the_chatbot_page_fits_a_1280_px_screen_and_an_untouched_save_changes_nothing(
    stack, admin_page
):
    bot = configured_bot()
    flows_before = list(Flow.objects.filter(chatbot=bot).order_by("name").values())
    page = admin_page
    page.goto(f"{stack.base_url}/admin/chatbots/chatbot/{bot.pk}/change/")
    expect(page.locator("table.opening-hours")).to_be_visible()
    shot(page, "chatbot-change-page")

    assert sideways(page) == []

    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist .success")).to_be_visible()
    bot.refresh_from_db()
    assert bot.opening_hours == HOURS
    assert set(bot.opening_hours) == set(HOURS)  # "sat": [] kept, no day added
    assert list(Flow.objects.filter(chatbot=bot).order_by("name").values()) == [
        {**flow, "updated_at": flow_after["updated_at"]}
        for flow, flow_after in zip(
            flows_before,
            Flow.objects.filter(chatbot=bot).order_by("name").values(),
            strict=True,
        )
    ]


OPENAI_KEY = "sk-test-admin-layout-5c4d3e2f"
OFFERED = ["gpt-4o-mini", "gpt-4o", "llama-3.1-8b-instruct"]


def test_the_default_model_is_picked_from_the_list_test_connection_fetched(stack, admin_page):
    page = admin_page
    with FakeOpenAI(api_key=OPENAI_KEY, models=OFFERED) as server:
        endpoint = create_endpoint(
            name="OpenAI production",
            kind=AIEndpoint.Kind.OPENAI,
            base_url=f"{server.url}/v1",
            api_key=OPENAI_KEY,
        )
        page.goto(f"{stack.base_url}/admin/chatbots/aiendpoint/{endpoint.pk}/change/")
        expect(page.locator(".field-default_model .model-choices")).to_contain_text(
            "Press “Test connection” to list the models this server offers."
        )

        page.get_by_role("button", name="Test connection", exact=True).click()
        expect(page.locator(".messagelist .success")).to_contain_text(
            "No model is chosen yet: pick the default model below from the server's list. "
            "The server offers 3 models: gpt-4o-mini, gpt-4o, llama-3.1-8b-instruct."
        )
        choices = page.get_by_label("Default model")
        offered = choices.locator("option").evaluate_all("options => options.map(o => o.value)")
        assert offered[1:-1] == OFFERED  # between "— none —" and "another model"
        choices.select_option("gpt-4o")
        shot(page, "endpoint-change-page")
        page.locator("input[name=_save]").click()
        expect(page.locator(".messagelist .success")).to_be_visible()
        endpoint.refresh_from_db()
        assert endpoint.default_model == "gpt-4o"

        page.goto(f"{stack.base_url}/admin/chatbots/aiendpoint/{endpoint.pk}/change/")
        expect(page.get_by_label("Default model")).to_have_value("gpt-4o")
        page.get_by_role("button", name="Test connection", exact=True).click()
        expect(page.locator(".messagelist .success")).to_contain_text(
            "Flows without a model of their own use “gpt-4o”, which the server lists."
        )


def test_the_lists_and_the_add_pages_fit_a_1280_px_screen(stack, admin_page):
    bot = create_chatbot(public_id="a-chatbot-with-a-rather-long-public-identifier")
    long_text = " ".join(["The upstream AI service answered with something unexpected"] * 12)
    for number in range(3):
        ErrorLog.objects.create(
            category=ErrorLog.Category.UPSTREAM_AI,
            code="UPSTREAM_MALFORMED_RESPONSE_FROM_A_VERY_LONG_NAMED_PROVIDER",
            message=f"{number}: {long_text}",
            chatbot=bot,
        )
        Conversation.objects.create(
            chatbot=bot,
            user_id="visitor-" + "x" * 150 + str(number),
            message_count=number,
        )
    page = admin_page
    for name, url in (
        ("error-log-list", "/admin/monitoring/errorlog/"),
        ("conversation-list", "/admin/conversations/conversation/"),
        ("chatbot-add-page", "/admin/chatbots/chatbot/add/"),
        ("endpoint-add-page", "/admin/chatbots/aiendpoint/add/"),
    ):
        page.goto(stack.base_url + url)
        expect(page.locator("#content")).to_be_visible()
        shot(page, name)
        assert sideways(page) == [], url


def test_the_admin_index_leads_to_the_dashboard_and_the_operators_page(stack, admin_page):
    page = admin_page
    page.goto(f"{stack.base_url}/admin/")
    expect(page.get_by_role("link", name="View site")).to_have_count(0)
    pages = page.locator("#staff-pages")
    expect(pages).to_contain_text("Live inbox")

    pages.get_by_role("link", name="Conversation dashboard").click()
    expect(page.locator("h1")).to_have_text("Conversation dashboard")
    page.go_back()
    page.locator("#staff-pages").get_by_role("link", name="Workers and queues").click()
    expect(page.locator("h1")).to_have_text("Workers and queues")
