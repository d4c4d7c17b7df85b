"""The transcript tells how each question was answered: a client showing the history again shows
the error the customer got live (docs/streaming.md, "History")."""

from __future__ import annotations

import pytest

from conversations.models import Message, Turn
from conversations.services import conversation_start
from conversations.tests.factories import conversation_auth_headers, create_finished_turn

pytestmark = pytest.mark.django_db

REFUSED = ("UPSTREAM_AUTH", "The assistant is not set up correctly. Please contact us.")
CUT_OFF = ("UPSTREAM_STREAM_ERROR", "The assistant ran into a problem while answering.")


def ask(conversation, question: str, status: str, answer: str = "", error=None) -> Turn:
    """A question and its turn as the runner leaves them (the answer stored when text was said)."""
    return create_finished_turn(
        conversation, question, status=status, answer=answer, error=error or ("", "")
    )


@pytest.fixture
def conversation(make_chatbot):
    return conversation_start(chatbot=make_chatbot())


def test_each_question_in_the_history_carries_how_its_answer_ended(
    client, conversation, django_assert_num_queries
):
    answered = ask(conversation, "Hi", "completed", answer="Hello!")
    refused = ask(conversation, "Do you have Barolo?", "failed", error=REFUSED)
    cut = ask(conversation, "Tell me everything", "failed", answer="word0 word1", error=CUT_OFF)
    stopped = ask(conversation, "Never mind", "cancelled")
    Turn.objects.filter(pk=stopped.pk).update(error_message="cancelled by the customer")
    waiting = ask(conversation, "Still there?", "pending")

    with django_assert_num_queries(3):  # the turns come with their messages, in one query
        messages = client.get(
            f"/api/sessions/{conversation.pk}/history",
            headers=conversation_auth_headers(conversation),
        ).json()["messages"]

    outcomes = {m["content"]: m["turn"] for m in messages}
    assert outcomes["Hi"] == {
        "turn_id": str(answered.pk),
        "status": "completed",
        "answer_message_id": str(answered.assistant_message_id),
        "error": None,
    }
    assert outcomes["Do you have Barolo?"] == {
        "turn_id": str(refused.pk),
        "status": "failed",
        "answer_message_id": None,
        "error": {"code": REFUSED[0], "message": REFUSED[1]},
    }
    assert outcomes["Tell me everything"]["answer_message_id"] == str(cut.assistant_message_id)
    assert outcomes["Tell me everything"]["error"] == {"code": CUT_OFF[0], "message": CUT_OFF[1]}
    # A cancel reason is not an error the customer was shown.
    assert outcomes["Never mind"]["status"] == "cancelled"
    assert outcomes["Never mind"]["error"] is None
    assert outcomes["Still there?"] == {
        "turn_id": str(waiting.pk),
        "status": "pending",
        "answer_message_id": None,
        "error": None,
    }
    # Answers carry no turn of their own: their question says how they ended.
    assert outcomes["Hello!"] is None and outcomes["word0 word1"] is None


def test_resuming_gives_the_same_outcomes_as_the_history(client, conversation):
    ask(conversation, "Do you have Barolo?", "failed", error=REFUSED)
    resumed = client.post(
        f"/api/sessions/{conversation.pk}/resume", headers=conversation_auth_headers(conversation)
    ).json()
    assert resumed["history"][0]["turn"]["error"] == {"code": REFUSED[0], "message": REFUSED[1]}
    history = client.get(
        f"/api/sessions/{conversation.pk}/history", headers=conversation_auth_headers(conversation)
    ).json()
    assert resumed["history"] == history["messages"]


def test_a_message_without_a_turn_has_no_outcome(client, conversation):
    Message.objects.create(conversation=conversation, role="user", content="imported", sequence=1)
    messages = client.get(
        f"/api/sessions/{conversation.pk}/history", headers=conversation_auth_headers(conversation)
    ).json()["messages"]
    assert messages[0]["turn"] is None
