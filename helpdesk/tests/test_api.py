"""Ratings, outsiders on every endpoint, and the helpdesk admin."""

from __future__ import annotations

import pytest

from conversations.access import conversation_token_issue
from helpdesk.models import ConversationRating, Handoff, HelpdeskConnection
from helpdesk.tests.conftest import Widget, connect, conversation_with_messages

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "support", None),
    ("post", "contact", {"email": "a@b.dk", "message": "hi"}),
    ("post", "handoff", {"reason": "hi"}),
    ("post", "rating", {"score": 5}),
]


def test_a_rating_is_stored_and_a_new_one_replaces_it(widget):
    first = widget.post("rating", {"score": 2, "comment": "Slow"})
    second = widget.post("rating", {"score": 5})

    assert first.status_code == second.status_code == 200
    assert second.json()["score"] == 5 and second.json()["comment"] == ""
    rating = ConversationRating.objects.get()
    assert (rating.conversation_id, rating.score) == (widget.conversation.pk, 5)
    assert widget.get("support").json()["rating"] == {"score": 5, "comment": ""}


@pytest.mark.parametrize(
    "data",
    [{"score": 0}, {"score": 6}, {"score": "great"}, {}, {"score": 3, "comment": "x" * 2001}],
)
def test_an_invalid_rating_is_refused(widget, data):
    response = widget.post("rating", data)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert not ConversationRating.objects.exists()


@pytest.mark.parametrize(("method", "name", "data"), ENDPOINTS)
def test_outsiders_get_404_on_every_endpoint(client, widget, open_bot, method, name, data):
    other, other_token = conversation_with_messages(open_bot)
    forged = conversation_token_issue(conversation_id=widget.conversation.pk, chatbot_id=999999)
    callers = [
        Widget(client, widget.conversation, None),  # no token
        Widget(client, widget.conversation, "not-a-token"),
        Widget(client, widget.conversation, other_token),  # another conversation's token
        Widget(client, widget.conversation, forged),  # right id, wrong chatbot
    ]
    for caller in callers:
        response = caller.get(name) if method == "get" else caller.post(name, data)
        assert response.status_code == 404, (caller.token, response.content)
        assert response.json()["error"]["code"] == "CONVERSATION_NOT_FOUND"
    assert not Handoff.objects.exists() and not ConversationRating.objects.exists()
    assert other.handoffs.count() == 0


def test_the_support_endpoint_reads_a_fixed_number_of_queries(widget, django_assert_num_queries):
    widget.post("rating", {"score": 4})
    widget.post("handoff", {})
    with django_assert_num_queries(4):  # conversation, connection, latest handoff, rating
        assert widget.get("support").status_code == 200


KEY = "fd_admin_secret_key_777"


def test_staff_add_a_freshdesk_connection_whose_key_is_never_shown(
    admin_client, make_chatbot, freshdesk
):
    bot = make_chatbot()
    response = admin_client.post(
        "/admin/helpdesk/helpdeskconnection/add/",
        {
            "chatbot": bot.pk,
            "kind": "freshdesk",
            "active": "on",
            "domain": "Acme",
            "api_key": KEY,
            "priority": 2,
            "tags": "vip,web",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connection = HelpdeskConnection.objects.get()
    assert connection.api_base == "https://acme.freshdesk.com"
    assert connection.api_key.reveal() == KEY and connection.tags == ["vip", "web"]
    page = admin_client.get(f"/admin/helpdesk/helpdeskconnection/{connection.pk}/change/")
    assert KEY not in page.content.decode()


def test_test_connection_reports_success_and_a_rejected_key(admin_client, open_bot, freshdesk):
    connection = connect(open_bot, freshdesk)
    url = f"/admin/helpdesk/helpdeskconnection/{connection.pk}/test-connection/"

    ok = admin_client.post(url, follow=True)
    connection.api_key = KEY
    connection.save()
    refused = admin_client.post(url, follow=True)

    [ok_message] = [str(m) for m in ok.context["messages"]]
    [refused_message] = [str(m) for m in refused.context["messages"]]
    assert "Connected to Freshdesk" in ok_message and "requests left" in ok_message
    assert "rejected the API key" in refused_message and KEY not in refused_message
    assert freshdesk.requests[0].method == "GET"  # nothing was created to test it
    assert freshdesk.tickets == []


def test_a_zendesk_connection_needs_the_agent_email(admin_client, make_chatbot):
    response = admin_client.post(
        "/admin/helpdesk/helpdeskconnection/add/",
        {
            "chatbot": make_chatbot().pk,
            "kind": "zendesk",
            "active": "on",
            "domain": "acme",
            "api_key": "x" * 20,
            "priority": 1,
            "tags": "",
        },
    )
    assert "Zendesk API tokens belong to an agent" in response.content.decode()


def test_handoffs_and_ratings_are_listed_for_staff(admin_client, widget):
    widget.post("handoff", {"reason": "Wrong size"})
    widget.post("rating", {"score": 3, "comment": "ok"})

    for url in ("/admin/helpdesk/handoff/", "/admin/helpdesk/conversationrating/"):
        response = admin_client.get(url)
        assert response.status_code == 200
        assert widget.conversation.chatbot.public_id in response.content.decode()
