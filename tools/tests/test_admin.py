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
