"""Issue #20's "done when", in Chromium: staff connect an MCP server in the admin, tick two of
its tools for a bot, a customer asks in the widget, the model calls one, the widget shows the
step, and the transcript shows the call with its timing.

The admin forms are filled in and submitted by the browser. The bot and its OpenAI-compatible
endpoint are created directly (test_staff_journeys.py builds those through the pages); the MCP
server is a real one built with the `mcp` SDK, the model the fake OpenAI server scripted to call
the tool, the turn runs in the stack's real worker.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Shop
from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from conversations.models import Turn
from tests.browser.conftest import screenshot
from tests.browser.test_staff_journeys import (  # the staff session and form helpers
    ANSWER_TIMEOUT_MS,
    save,
    select_by_text,
    staff,  # noqa: F401 - a fixture
)
from tests.fakes.mcp_server import FakeMCPServer
from tests.fakes.openai import FakeOpenAI
from tools.models import ChatbotTools, McpServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_turns_settle"),
]

MCP_TOKEN = "Bearer mcp-journey-SECRET-5150"


def test_staff_connect_an_mcp_server_tick_two_tools_and_the_bot_uses_one_in_the_widget(
    staff,  # noqa: F811 - the fixture imported above
    stack,
):
    page = staff
    base = stack.base_url
    shop = Shop.objects.get(slug="journeys")
    with FakeMCPServer(Authorization=MCP_TOKEN) as mcp_fake, FakeOpenAI() as model:
        endpoint = create_endpoint(
            shop=shop, name="Tools model", kind=AIEndpoint.Kind.OPENAI, base_url=f"{model.url}/v1"
        )
        bot = create_chatbot(
            shop=shop,
            public_id="toolshop",
            name="The Tool Shop",
            allowed_origins=[base],
            with_main_flow=False,
        )
        create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)

        # 1. Connect the MCP server: saving lists its tools.
        page.goto(f"{base}/admin/tools/mcpserver/add/")
        select_by_text(page.get_by_label("Shop"), "Journey shop")
        page.get_by_label("Name").fill("warehouse")
        page.get_by_label("Url").fill(f"{mcp_fake.url}/mcp")
        page.get_by_label("Auth headers").fill(f"Authorization: {MCP_TOKEN}")
        page.locator('input[name="_save"]').click()
        page.wait_for_load_state("load")
        assert page.locator(".errornote, .errorlist").count() == 0
        # Two messages: Django's "was added", and what listing the tools found.
        expect(page.locator(".messagelist .success").first).to_contain_text(
            "6 tool(s): add, order_status"
        )
        assert "SECRET" not in page.content()
        assert McpServer.objects.get().headers_text() == f"Authorization: {MCP_TOKEN}"

        # 2. Tick two of its tools for the bot.
        page.goto(f"{base}/admin/tools/chatbottools/add/")
        select_by_text(page.get_by_label("Chatbot"), "The Tool Shop")
        page.get_by_label("warehouse: order_status (MCP)").check()
        page.get_by_label("warehouse: add (MCP)").check()
        save(page)
        assert set(ChatbotTools.objects.get(chatbot=bot).tools) == {
            "mcp__warehouse__order_status",
            "mcp__warehouse__add",
        }

        # 3. A customer asks; the model calls the order tool; the widget shows the step.
        model.configure(
            script=[
                {
                    "content": "Let me check. ",
                    "tool_calls": [
                        {
                            "name": "mcp__warehouse__order_status",
                            "arguments": {"order_number": "1001"},
                        }
                    ],
                }
            ],
            tokens_per_second=50,
        )
        customer = page.context.browser.new_context(viewport={"width": 1200, "height": 850})
        chat = customer.new_page()
        chat.goto(f"{base}/chat/toolshop/")
        chat.get_by_role("button", name="Open chat").click()
        chat.get_by_label("Your message").fill("Where is order 1001?")
        chat.get_by_label("Your message").press("Enter")
        answer = chat.locator(".cbw-msg[data-turn-id]").last
        expect(answer).to_have_attribute("data-status", "completed", timeout=ANSWER_TIMEOUT_MS)
        step = answer.locator(".cbw-step")
        expect(step).to_have_text("Asking warehouse…")
        expect(step).to_have_class("cbw-step cbw-step-done")
        text = answer.locator(".cbw-text").inner_text()
        assert text.startswith("Let me check. From the tools: Order 1001 is packed")
        screenshot(chat, "tool-journey-widget")
        customer.close()
        assert mcp_fake.calls == [("order_status", {"order_number": "1001"})]

    # 4. The transcript shows the call with its timing.
    turn = Turn.objects.get(conversation__chatbot=bot)
    (call,) = turn.route["tools"]["calls"]
    page.goto(f"{base}/admin/conversations/conversation/{turn.conversation_id}/change/")
    tokens = (
        f" · prompt {call['tokens_before']} → {call['tokens_after']} tokens"
        if call.get("tokens_before") is not None and call.get("tokens_after") is not None
        else ""
    )
    expect(page.locator(".tool-ok")).to_have_text(
        f"step 1 · mcp__warehouse__order_status · ok · {call['duration_ms']} ms{tokens}"
    )
    screenshot(page, "tool-journey-transcript")
