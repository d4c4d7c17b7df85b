"""Two votes on one answer at the same moment still leave one row (the message row lock)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from quality.models import AnswerFeedback
from quality.services import answer_feedback_record
from quality.tests.conftest import ask

pytestmark = pytest.mark.django_db(transaction=True)


def test_simultaneous_votes_on_one_answer_store_one_row(conversation):
    turn = ask(conversation, "Hi", answer="Hello!")
    barrier = threading.Barrier(4)
    outcomes, errors = [], []

    def vote(value: str) -> None:
        try:
            barrier.wait()
            _, created = answer_feedback_record(
                conversation=conversation, message_id=turn.assistant_message_id, value=value
            )
            outcomes.append(created)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=vote, args=(v,)) for v in ("up", "down", "up", "down")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(outcomes) == [False, False, False, True]
    assert AnswerFeedback.objects.count() == 1
