"""The widget shows an answer's sources (the `source_documents` event) under it when it ends:
titles as text, linked only where the link is http(s)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from tests.browser.conftest import polling_answers_with

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_turns_settle"),
]


def test_an_answer_lists_its_sources_with_only_safe_links(stack, flowise, page):
    bot = create_chatbot(
        public_id="sources", with_main_flow=False, allowed_origins=[stack.base_url]
    )
    endpoint = create_endpoint(kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url)
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    documents = [
        {
            "pageContent": "…",
            "metadata": {"title": "Shop FAQ › Page 1", "link": "https://shop.example/faq.pdf"},
        },
        {
            "pageContent": "…",
            "metadata": {"title": "<b>Returns</b>", "link": "javascript:alert(1)"},
        },
        {
            "pageContent": "…",
            "metadata": {"title": "Shop FAQ › Page 1", "link": "https://shop.example/faq.pdf"},
        },
    ]
    events = [
        {"id": 1, "event": "start", "data": {}},
        {"id": 2, "event": "source_documents", "data": {"documents": documents}},
        {"id": 3, "event": "token", "data": {"text": "Corkage is 50 kroner."}},
        {"id": 4, "event": "end", "data": {"status": "completed"}},
    ]
    # The events as the runner sends them, given to the widget's polling request.
    polling_answers_with(page, events)
    page.goto(f"{stack.base_url}/chat/{bot.public_id}/?transport=polling")
    page.get_by_role("button", name="Open chat").click()
    page.get_by_label("Your message").fill("How much is corkage?")
    page.get_by_label("Your message").press("Enter")

    sources = page.get_by_role("group", name="Sources")
    expect(sources).to_be_visible(timeout=20_000)
    expect(sources.locator("li")).to_have_count(2)  # the repeated page once
    expect(sources.get_by_role("link")).to_have_count(1)
    expect(sources.get_by_role("link", name="Shop FAQ › Page 1")).to_have_attribute(
        "href", "https://shop.example/faq.pdf"
    )
    expect(sources).to_contain_text("<b>Returns</b>")  # text, never HTML
    assert sources.locator("b").count() == 0
