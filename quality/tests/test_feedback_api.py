"""Thumbs up/down on one answer: once per answer, only by the conversation's own customer."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from conversations.models import Message
from conversations.services import conversation_start
from conversations.tests.factories import conversation_auth_headers as auth
from quality.models import AnswerFeedback
from quality.tests.conftest import ask

pytestmark = pytest.mark.django_db


def url(conversation, message_id) -> str:
    return f"/api/sessions/{conversation.pk}/messages/{message_id}/feedback"


def vote(client, conversation, message_id, headers=None, **body):
    return client.post(
        url(conversation, message_id),
        body or {"value": "down"},
        content_type="application/json",
        headers=auth(conversation) if headers is None else headers,
    )


def test_a_vote_is_stored_once_per_answer_and_a_second_vote_changes_it(client, conversation):
    turn = ask(conversation, "Do you ship to Belgium?", answer="Only within the Netherlands.")

    first = vote(client, conversation, turn.assistant_message_id, value="down", comment="wrong")
    again = vote(client, conversation, turn.assistant_message_id, value="up")

    assert first.status_code == 200
    assert first.json() == {
        "message_id": str(turn.assistant_message_id),
        "value": "down",
        "comment": "wrong",
        "created": True,
    }
    assert again.status_code == 200 and again.json()["created"] is False
    [feedback] = AnswerFeedback.objects.all()
    assert (feedback.value, feedback.comment) == ("up", "")
    assert (feedback.chatbot_id, feedback.conversation_id) == (
        conversation.chatbot_id,
        conversation.pk,
    )


def test_the_history_carries_each_answers_vote(client, conversation):
    rated = ask(conversation, "Hi", answer="Hello!")
    ask(conversation, "Bye", answer="Goodbye!")
    vote(client, conversation, rated.assistant_message_id, value="up")

    messages = client.get(
        f"/api/sessions/{conversation.pk}/history", headers=auth(conversation)
    ).json()["messages"]

    votes = {m["content"]: m["metadata"].get("feedback") for m in messages}
    assert votes == {"Hi": None, "Hello!": "up", "Bye": None, "Goodbye!": None}


def test_another_conversations_token_gets_404_and_nothing_is_stored(client, conversation):
    turn = ask(conversation, "Hi", answer="Hello!")
    other = conversation_start(chatbot=conversation.chatbot, user_id="someone else")

    # Their token on our conversation's path, and their path with our answer's id.
    on_ours = vote(client, conversation, turn.assistant_message_id, headers=auth(other))
    on_theirs = vote(client, other, turn.assistant_message_id)

    assert on_ours.status_code == 404
    assert on_ours.json()["error"]["code"] == "CONVERSATION_NOT_FOUND"
    assert on_theirs.status_code == 404
    assert on_theirs.json()["error"]["code"] == "NOT_FOUND"
    assert not AnswerFeedback.objects.exists()


def test_no_token_a_bad_token_and_staff_of_the_shop_get_404(client, conversation):
    turn = ask(conversation, "Hi", answer="Hello!")
    staff = get_user_model().objects.create_superuser("op", password="pw")

    anonymous = vote(client, conversation, turn.assistant_message_id, headers={})
    forged = vote(
        client, conversation, turn.assistant_message_id, headers={"Authorization": "Bearer x.y"}
    )
    client.force_login(staff)
    operator = vote(client, conversation, turn.assistant_message_id, headers={})

    assert [r.status_code for r in (anonymous, forged, operator)] == [404, 404, 404]
    assert not AnswerFeedback.objects.exists()


def test_a_browser_from_a_site_the_bot_does_not_allow_gets_403(client, conversation):
    turn = ask(conversation, "Hi", answer="Hello!")
    headers = auth(conversation) | {"Origin": "https://evil.example"}

    response = vote(client, conversation, turn.assistant_message_id, headers=headers)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ORIGIN_NOT_ALLOWED"


def test_only_finished_bot_answers_take_a_vote(client, conversation):
    answered = ask(conversation, "Hi", answer="Hello!")
    failed = ask(conversation, "Tell me all", status="failed", answer="word0 word1")
    stopped = ask(conversation, "Never mind", status="cancelled", answer="Sure, I")
    agent = Message.objects.create(
        conversation=conversation, role="agent", content="Anna here", sequence=99
    )

    statuses = {
        "question": vote(client, conversation, answered.user_message_id),
        "failed": vote(client, conversation, failed.assistant_message_id),
        "stopped": vote(client, conversation, stopped.assistant_message_id),
        "agent": vote(client, conversation, agent.pk),
        "unknown": vote(client, conversation, "00000000-0000-0000-0000-000000000000"),
    }

    assert {k: r.status_code for k, r in statuses.items()} == {
        "question": 400,
        "failed": 400,
        "stopped": 400,
        "agent": 400,
        "unknown": 404,
    }
    assert statuses["failed"].json()["error"]["message"] == (
        "This answer did not finish, so it cannot be rated."
    )
    assert not AnswerFeedback.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"value": "meh"},
        {},
        {"value": "up", "comment": "x" * 501},
        {"value": "up", "comment": "bad \u0000 byte"},
        {"value": ["up"]},
    ],
)
def test_bad_input_is_a_400_with_the_envelope(client, conversation, body):
    turn = ask(conversation, "Hi", answer="Hello!")

    response = client.post(
        url(conversation, turn.assistant_message_id),
        body,
        content_type="application/json",
        headers=auth(conversation),
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("VALIDATION_ERROR", "INVALID_INPUT")
    assert not AnswerFeedback.objects.exists()


def test_a_lone_surrogate_in_the_raw_body_is_refused(client, conversation):
    turn = ask(conversation, "Hi", answer="Hello!")

    response = client.post(
        url(conversation, turn.assistant_message_id),
        b'{"value": "up", "comment": "\\ud800"}',
        content_type="application/json",
        headers=auth(conversation),
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_INPUT"


def test_a_switched_off_chatbot_takes_no_votes(client, conversation):
    turn = ask(conversation, "Hi", answer="Hello!")
    conversation.chatbot.active = False
    conversation.chatbot.save()

    response = vote(client, conversation, turn.assistant_message_id)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "CHATBOT_INACTIVE"
    assert not AnswerFeedback.objects.exists()
