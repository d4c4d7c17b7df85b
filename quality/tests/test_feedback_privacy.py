"""A customer's votes are theirs: in the data export (with the comment), gone with an erasure."""

from __future__ import annotations

import json

import pytest

from chatbots.tests.factories import shop_for_tests
from privacy.services import Customer, customer_erase, customer_export
from quality.models import AnswerFeedback
from quality.services import answer_feedback_record
from quality.tests.conftest import ask

pytestmark = pytest.mark.django_db


def test_the_export_holds_the_customers_votes_and_an_erasure_removes_them(conversation):
    turn = ask(conversation, "Hi", answer="Hello!")
    answer_feedback_record(
        conversation=conversation,
        message_id=turn.assistant_message_id,
        value="down",
        comment="call me on 0612345678",
    )

    data = customer_export(shop=shop_for_tests(), customer=Customer.of(user_id="visitor"))

    [exported] = data["conversations"]
    [vote] = exported["answer_feedback"]
    assert (vote["message_id"], vote["value"], vote["comment"]) == (
        str(turn.assistant_message_id),
        "down",
        "call me on 0612345678",
    )
    json.dumps(data)

    customer_erase(shop=shop_for_tests(), customer=Customer.of(user_id="visitor"))

    assert not AnswerFeedback.objects.exists()
