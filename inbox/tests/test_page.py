"""The inbox page and its JSON actions: personas with exact statuses, lists, counts, actions."""

from __future__ import annotations

import pytest
from django.test import Client

from conversations.models import Conversation, Message
from inbox.models import PrivateNote

pytestmark = pytest.mark.django_db

API = "/admin/inbox/api/conversations"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def waiting(customer, online):
    customer.say("Where is my parcel?")
    customer.post("person", {"reason": "late"})
    return Conversation.objects.get(pk=customer.session_id)


def post(client, url, body=None):
    return client.post(url, body or {}, content_type="application/json")


def test_the_page_opens_for_an_agent_and_a_viewer_and_not_for_anyone_else(
    online, viewer, outsider, django_user_model
):
    assert signed_in(online).get("/admin/inbox/").status_code == 200
    assert signed_in(viewer).get("/admin/inbox/").status_code == 200
    # A member of another shop has the page (with their own shop's conversations).
    assert signed_in(outsider).get("/admin/inbox/").status_code == 200
    nobody = django_user_model.objects.create_user("staff-no-shop", is_staff=True)
    assert signed_in(nobody).get("/admin/inbox/").status_code == 403
    anonymous = Client().get("/admin/inbox/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert Client().get(f"{API}?view=waiting").status_code == 302


def test_each_persona_sees_exactly_its_shops_waiting_conversations(
    waiting, online, viewer, outsider, second_agent
):
    for user, expected in ((online, 1), (viewer, 1), (second_agent, 1), (outsider, 0)):
        body = signed_in(user).get(f"{API}?view=waiting").json()
        assert body["counts"]["waiting"] == expected, user
        assert [c["conversation_id"] for c in body["conversations"]] == (
            [str(waiting.pk)] if expected else []
        )
    body = signed_in(online).get(f"{API}?view=waiting").json()
    assert body["conversations"][0]["last_customer_text"] == "Where is my parcel?"


def test_a_conversation_is_404_for_another_shop_and_read_only_for_a_viewer(
    waiting, online, viewer, outsider
):
    url = f"{API}/{waiting.pk}"
    assert signed_in(outsider).get(url).status_code == 404
    assert signed_in(viewer).get(url).json()["may_act"] is False
    detail = signed_in(online).get(url).json()
    assert detail["may_act"] is True
    assert [m["role"] for m in detail["messages"]] == ["user", "system"]


@pytest.mark.parametrize("action", ["take", "reply", "hand-back", "resolve", "note"])
def test_actions_answer_each_persona_with_its_exact_status(
    waiting, online, viewer, outsider, action
):
    url = f"{API}/{waiting.pk}/{action}"
    body = {"text": "hello"}
    assert post(signed_in(outsider), url, body).status_code == 404
    assert post(signed_in(viewer), url, body).status_code == 403
    assert post(Client(), url, body).status_code == 302  # the admin's login
    assert post(signed_in(online), url, body).status_code == 200


def test_take_reply_note_and_hand_back_through_the_page(waiting, online):
    client = signed_in(online)
    taken = post(client, f"{API}/{waiting.pk}/take").json()
    assert (taken["handling"], taken["assigned_agent"]["name"]) == ("with_agent", "Anna")
    assert signed_in(online).get(f"{API}?view=mine").json()["counts"] == {
        "waiting": 0,
        "mine": 1,
        "open": 1,
    }
    replied = post(client, f"{API}/{waiting.pk}/reply", {"text": "On its way!"}).json()
    assert replied["messages"][-1]["role"] == "agent"
    assert replied["messages"][-1]["agent"] == {"name": "Anna"}
    noted = post(client, f"{API}/{waiting.pk}/note", {"text": "VIP"}).json()
    assert noted["notes"][0]["text"] == "VIP"
    back = post(client, f"{API}/{waiting.pk}/hand-back").json()
    assert back["handling"] == "bot"
    assert PrivateNote.objects.count() == 1
    # A private note is never part of the customer's transcript.
    assert not Message.objects.filter(content="VIP").exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1]",
        b'{"text": 5}',
        b'{"text": "a\\u0000b"}',
        b'{"text": "\\ud800"}',
        b'{"text": "' + b"x" * 5000 + b'"}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_a_hostile_reply_is_a_4xx_and_stores_nothing(waiting, online, raw):
    client = signed_in(online)
    response = client.post(f"{API}/{waiting.pk}/reply", raw, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
    assert not Message.objects.filter(role="agent").exists()


def test_an_unknown_view_or_action_is_a_clear_4xx(waiting, online):
    client = signed_in(online)
    assert client.get(f"{API}?view=everything").status_code == 400
    assert post(client, f"{API}/{waiting.pk}/explode").status_code == 404
    assert client.get(f"{API}/not-a-uuid").status_code == 404


def test_an_assignment_to_a_viewer_or_another_shops_member_is_refused(
    waiting, online, viewer, outsider, second_agent
):
    client = signed_in(online)
    url = f"{API}/{waiting.pk}/assign"
    for user in (viewer, outsider):
        assert post(client, url, {"user_id": user.pk}).status_code == 400
    assert post(client, url, {"user_id": "x"}).status_code == 400
    ok = post(client, url, {"user_id": second_agent.pk})
    assert ok.status_code == 200 and ok.json()["assigned_agent"]["name"] == "Bo"


def test_only_the_shops_agents_admins_and_owners_are_offered_for_assignment(
    waiting, online, second_agent, viewer, outsider
):
    detail = signed_in(online).get(f"{API}/{waiting.pk}").json()
    assert [a["name"] for a in detail["assignable"]] == ["Anna", "Bo"]
    assert signed_in(viewer).get(f"{API}/{waiting.pk}").json()["assignable"] == []


def test_labels_are_set_by_agents_shown_in_the_lists_and_filter_them(
    waiting, online, viewer, outsider
):
    client = signed_in(online)
    url = f"{API}/{waiting.pk}/labels"
    done = post(client, url, {"labels": ["Refund", " vip ", "refund", ""]})
    assert done.status_code == 200 and done.json()["labels"] == ["refund", "vip"]
    assert post(signed_in(viewer), url, {"labels": ["x"]}).status_code == 403
    assert post(signed_in(outsider), url, {"labels": ["x"]}).status_code == 404
    for bad in (["x" * 41], ["a\\u0000"], "refund", [1], [f"l{n}" for n in range(11)]):
        assert post(client, url, {"labels": bad}).status_code == 400, bad
    listed = client.get(f"{API}?view=open&label=VIP").json()["conversations"]
    assert [(c["conversation_id"], c["labels"]) for c in listed] == [
        (str(waiting.pk), ["refund", "vip"])
    ]
    assert client.get(f"{API}?view=open&label=other").json()["conversations"] == []
    assert client.get(f"{API}?view=open&label=%00").status_code == 400


def test_the_transcript_shows_each_questions_analysis_and_the_customers_images(waiting, online):
    from analytics.models import ConversationAnalysis
    from conversations.models import Turn

    question = Message.objects.get(conversation=waiting, role="user")
    turn = Turn.objects.get(user_message=question)
    ConversationAnalysis.objects.create(
        turn=turn,
        conversation=waiting,
        chatbot=waiting.chatbot,
        topic="delivery",
        sentiment="negative",
        outcome="answered",
    )
    image_id = "0b7f0e5e-2f7a-4c3f-9a5e-1d2c3b4a5f60"
    question.metadata = {"images": [{"image_id": image_id}, "junk"]}
    question.save(update_fields=["metadata"])
    shown = signed_in(online).get(f"{API}/{waiting.pk}").json()["messages"][0]
    assert shown["analysis"] == {
        "topic": "delivery",
        "sentiment": "negative",
        "outcome": "answered",
    }
    assert shown["images"] == [f"/admin/images/imageupload/{image_id}/thumbnail/"]
