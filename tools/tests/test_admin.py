"""The bot's tools in the admin: tick tools from the registered ones, bounds validated."""

from __future__ import annotations

import pytest

from tools.models import ChatbotTools

pytestmark = pytest.mark.django_db

ADD = "/admin/tools/chatbottools/add/"


def test_the_add_page_offers_every_built_in_tool_as_a_checkbox(admin_client):
    page = admin_client.get(ADD).content.decode()

    for name in ("order_lookup", "knowledge_search", "opening_hours", "handoff", "create_ticket"):
        assert f'value="{name}"' in page
    assert 'type="checkbox"' in page


def test_staff_tick_two_tools_for_a_bot_and_saving_it_untouched_changes_nothing(
    admin_client, make_chatbot
):
    bot = make_chatbot()
    response = admin_client.post(
        ADD, {"chatbot": bot.pk, "tools": ["order_lookup", "opening_hours"], "max_steps": "3"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    row = ChatbotTools.objects.get(chatbot=bot)
    assert row.tools == ["order_lookup", "opening_hours"] and row.max_steps == 3

    change = f"/admin/tools/chatbottools/{row.pk}/change/"
    response = admin_client.post(
        change,
        {"chatbot": bot.pk, "tools": ["order_lookup", "opening_hours"], "max_steps": "3"},
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.tools == ["order_lookup", "opening_hours"] and row.max_seconds is None


@pytest.mark.parametrize(
    ("field", "value"), [("tools", "rm_rf"), ("max_steps", "0"), ("max_steps", "99")]
)
def test_an_unknown_tool_or_a_bound_out_of_range_is_refused_on_the_form(
    admin_client, make_chatbot, field, value
):
    data = {"chatbot": make_chatbot().pk, "tools": ["opening_hours"], field: value}

    response = admin_client.post(ADD, data)

    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not ChatbotTools.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_staff_connect_an_mcp_server_whose_header_is_never_shown_and_tick_its_tools(
    admin_client, make_chatbot
):
    from tests.fakes.mcp_server import FakeMCPServer
    from tools.models import McpServer

    secret = "Bearer mcp-SECRET-token-777"
    with FakeMCPServer(Authorization=secret) as fake:
        response = admin_client.post(
            "/admin/tools/mcpserver/add/",
            {
                "shop": make_chatbot().shop_id,
                "name": "warehouse",
                "url": f"{fake.url}/mcp",
                "transport": "streamable_http",
                "auth_headers": f"Authorization: {secret}",
                "timeout": "30",
                "active": "on",
            },
            follow=True,
        )
    page = response.content.decode()
    assert response.status_code == 200
    assert "6 tool(s): add, order_status, slow, fail, huge, vanish." in page
    server = McpServer.objects.get()
    for url in ("/admin/tools/mcpserver/", f"/admin/tools/mcpserver/{server.pk}/change/"):
        html = admin_client.get(url).content.decode()
        assert "SECRET" not in html and server.auth_headers.stored not in html, url

    page = admin_client.get(ADD).content.decode()
    assert 'value="mcp__warehouse__order_status"' in page


@pytest.mark.django_db(transaction=True)
def test_staff_try_an_mcp_tool_with_sample_arguments_and_see_what_the_model_would_read(
    admin_client,
):
    from chatbots.tests.factories import shop_for_tests
    from tests.fakes.mcp_server import FakeMCPServer
    from tools.admin import mcp_server_refresh
    from tools.models import McpServer

    with FakeMCPServer() as fake:
        server = McpServer.objects.create(
            shop=shop_for_tests(), name="warehouse", url=f"{fake.url}/mcp"
        )
        mcp_server_refresh(server=server)
        url = f"/admin/tools/mcpserver/{server.pk}/try/"
        assert (
            "Try a tool"
            in admin_client.get(f"/admin/tools/mcpserver/{server.pk}/change/").content.decode()
        )

        page = admin_client.post(url, {"tool": "add", "arguments": '{"a": 2, "b": 40}'})
        assert "The tool answered" in page.content.decode()
        assert '<pre class="tool-result" style="white-space: pre-wrap">42</pre>' in (
            page.content.decode()
        )

        page = admin_client.post(url, {"tool": "fail", "arguments": "{}"}).content.decode()
        assert "The tool failed" in page and "reported an error" in page

        page = admin_client.post(url, {"tool": "add", "arguments": "[1]"}).content.decode()
        assert "Give a JSON object." in page
    assert [name for name, _ in fake.calls] == ["add", "fail"]
