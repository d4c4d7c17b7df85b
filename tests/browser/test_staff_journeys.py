"""Staff journeys end to end in Chromium: build a bot in the admin, chat with it, edit, chat again.

Everything a person does here goes through the pages: the admin forms are filled in and
submitted by the browser, the chat happens in the widget on /chat/<bot>/, the answer streams
from the fake OpenAI-compatible server through the real worker. Nothing is created behind the
pages' back except the staff account itself.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from accounts.models import Shop
from chatbots.models import AIEndpoint, Chatbot, PromptTemplate
from tests.browser.conftest import admin_log_in, screenshot
from tests.fakes.openai import FakeOpenAI

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_turns_settle"),
]

STAFF = ("shop-staff", "a-long-staff-password-93")
API_KEY = "sk-journey-0f1e2d3c4b5a69788"
ANSWER_TIMEOUT_MS = 20_000


@pytest.fixture
def openai_server():
    with FakeOpenAI(api_key=API_KEY, models=["gpt-4o-mini", "gpt-4.1"]) as server:
        yield server


@pytest.fixture
def staff(page, stack, settings):
    # Daphne checks the password with the default hashers, not the suite's fast MD5.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    User.objects.create_superuser(STAFF[0], "staff@shop.example", STAFF[1])
    # What the operator adds goes to a shop (the add forms start in the first one).
    Shop.objects.get_or_create(slug="journeys", defaults={"name": "Journey shop"})
    page.set_viewport_size({"width": 1280, "height": 900})
    admin_log_in(page, stack.base_url, *STAFF)
    expect(page.locator("#logout-form")).to_have_count(1)
    return page


def save(page) -> None:
    page.locator('input[name="_save"]').click()
    page.wait_for_load_state("load")
    errors = page.locator(".errornote, .errorlist")
    assert errors.count() == 0, errors.all_inner_texts()
    expect(page.locator(".messagelist .success")).to_have_count(1)


def chat(page, stack, public_id: str, question: str) -> str:
    """Ask in the widget on the bot's demo page, as a new customer (a browser profile of its
    own); the answer's text once it has finished."""
    customer = page.context.browser.new_context(viewport={"width": 1200, "height": 850})
    chat_page = customer.new_page()
    response = chat_page.goto(f"{stack.base_url}/chat/{public_id}/")
    assert response is not None and response.status == 200, public_id
    screenshot(chat_page, f"journey-{public_id}-page")
    chat_page.get_by_role("button", name="Open chat").click()
    chat_page.get_by_label("Your message").fill(question)
    chat_page.get_by_label("Your message").press("Enter")
    answer = chat_page.locator(".cbw-msg[data-turn-id]").last
    expect(answer).to_have_attribute("data-status", "completed", timeout=ANSWER_TIMEOUT_MS)
    text = answer.locator(".cbw-text").inner_text()
    screenshot(chat_page, f"journey-{public_id}-{len(question)}")
    customer.close()
    return text


def system_prompts(server) -> list[str]:
    prompts = []
    for request in server.requests:
        if not request.path.endswith("/chat/completions"):
            continue
        for message in request.json.get("messages", []):
            if message.get("role") == "system":
                prompts.append(message["content"])
    return prompts


def add_inline_row(page, verbose_name: str) -> None:
    """Click an inline's "Add another …" row link (not the "+" beside a dropdown)."""
    page.locator(".add-row a").filter(
        has_text=re.compile(f"Add another {verbose_name}", re.I)
    ).click()


def select_by_text(locator, text: str) -> None:
    """Pick the option whose label contains `text` (labels carry the kind, e.g. "— builtin")."""
    options = locator.locator("option").all_inner_texts()
    [label] = [o for o in options if text in o]
    locator.select_option(label=label)


def test_staff_build_a_bot_for_an_openai_endpoint_chat_edit_twice_and_chat_again(
    staff, stack, openai_server
):
    page = staff
    base = stack.base_url

    # 1. The AI endpoint, with its key and the model picked from what the server offers.
    page.goto(f"{base}/admin/chatbots/aiendpoint/add/")
    page.get_by_label("Name").fill("Shop OpenAI")
    select_by_text(page.get_by_label("Kind"), "OpenAI-compatible")
    page.get_by_label("Base URL").fill(f"{openai_server.url}/v1")
    page.get_by_label("API key").fill(API_KEY)
    save(page)
    endpoint = AIEndpoint.objects.get(name="Shop OpenAI")
    assert endpoint.api_key.reveal() == API_KEY

    page.goto(f"{base}/admin/chatbots/aiendpoint/{endpoint.pk}/change/")
    page.get_by_role("button", name=re.compile("Test connection")).click()
    expect(page.locator(".messagelist .success")).to_contain_text("gpt-4.1")
    page.get_by_label("Default model").select_option("gpt-4.1")
    save(page)

    # 2. A prompt template that uses the shop's name and an override.
    page.goto(f"{base}/admin/chatbots/prompttemplate/add/")
    page.get_by_label("Name").fill("friendly-shop")
    page.locator("#id_text").fill(
        "You are the assistant of {{shop_name}}. Be {{tone}}. First version."
    )
    page.locator("#id_variables").fill('{"tone": "brief"}')
    save(page)

    # 3. The chatbot with its main flow on that endpoint and a builtin knowledge base.
    page.goto(f"{base}/admin/chatbots/chatbot/add/")
    page.locator("#id_public_id").fill("wineshop")
    page.locator("#id_name").fill("The Wine Shop")
    page.locator("#id_language").select_option(label="English")
    page.locator("#id_allowed_origins").fill(base)
    page.locator("#id_flows-0-name").fill("main")
    page.locator("#id_flows-0-is_main").check()
    select_by_text(page.locator("#id_flows-0-endpoint"), "Shop OpenAI")
    add_inline_row(page, "knowledge base")
    page.locator("#id_knowledge_bases-0-name").fill("FAQ")
    save(page)
    chatbot = Chatbot.objects.get(public_id="wineshop")

    # 4. Knowledge entries, and the template on the main flow with an override.
    page.goto(f"{base}/admin/chatbots/knowledgeentry/add/")
    # The knowledge base box is an autocomplete: type, then pick.
    page.locator("#id_knowledge_base + .select2").click()
    page.locator(".select2-search__field").fill("FAQ")
    page.locator(".select2-results__option", has_text="FAQ").click()
    page.get_by_label("Title").fill("Shipping")
    page.locator("#id_text").fill("We ship wine to Denmark in two working days.")
    save(page)

    page.goto(f"{base}/admin/chatbots/chatbot/{chatbot.pk}/change/")
    add_inline_row(page, "prompt template")
    select_by_text(page.locator("#id_template_assignments-0-flow"), "main")
    select_by_text(page.locator("#id_template_assignments-0-template"), "friendly-shop")
    page.locator("#id_template_assignments-0-overrides").fill('{"tone": "warm"}')
    save(page)

    # 5. Chat: the answer streams from the endpoint's default model with the template.
    answer = chat(page, stack, "wineshop", "Do you ship to Denmark?")
    assert answer == "You asked: Do you ship to Denmark?"
    last = openai_server.requests[-1].json
    assert last["model"] == "gpt-4.1"
    assert system_prompts(openai_server)[-1].startswith(
        "You are the assistant of The Wine Shop. Be warm. First version."
    )

    # 6. Edit the endpoint's timeout only (the key box left empty) and the template's text.
    page.goto(f"{base}/admin/chatbots/aiendpoint/{endpoint.pk}/change/")
    page.get_by_label("Read timeout").fill("45")
    save(page)
    endpoint.refresh_from_db()
    assert endpoint.read_timeout == 45 and endpoint.api_key.reveal() == API_KEY

    template = PromptTemplate.objects.get(name="friendly-shop")
    page.goto(f"{base}/admin/chatbots/prompttemplate/{template.pk}/change/")
    page.locator("#id_text").fill("You are the assistant of {{shop_name}}. Be {{tone}}. Second.")
    save(page)

    # 7. Chat again: it still answers (the key survived) and uses the new template at once.
    answer = chat(page, stack, "wineshop", "And to Sweden?")
    assert answer == "You asked: And to Sweden?"
    assert system_prompts(openai_server)[-1].startswith(
        "You are the assistant of The Wine Shop. Be warm. Second."
    )


def test_staff_change_the_demo_bots_greeting_and_the_widget_shows_it(staff, stack):
    from chatbots.demo import demo_load

    demo = demo_load()
    demo.allowed_origins = [stack.base_url]
    demo.save()
    page = staff
    page.goto(f"{stack.base_url}/admin/chatbots/chatbot/{demo.pk}/change/")
    page.locator("#id_greeting").fill("Welcome to the demo shop — ask me anything!")
    save(page)

    chat_page = page.context.new_page()
    chat_page.goto(f"{stack.base_url}/chat/demo/")
    chat_page.get_by_role("button", name="Open chat").click()
    expect(chat_page.locator(".cbw-greeting")).to_have_text(
        re.compile("Welcome to the demo shop — ask me anything!")
    )
    screenshot(chat_page, "journey-demo-greeting")
    # And it still answers from its knowledge base after the save.
    chat_page.get_by_label("Your message").fill("How long does shipping take?")
    chat_page.get_by_label("Your message").press("Enter")
    answer = chat_page.locator(".cbw-msg[data-turn-id]").last
    expect(answer).to_have_attribute("data-status", "completed", timeout=ANSWER_TIMEOUT_MS)
    expect(answer.locator(".cbw-text")).to_contain_text("working days")
