"""handoff_for: whether a conversation reached a person, as the analyses and check runs read it."""

from __future__ import annotations

import datetime as dt

import pytest

from conversations.models import Conversation
from helpdesk.models import Handoff
from helpdesk.selectors import handoff_for

pytestmark = pytest.mark.django_db


def handoff(conversation, *, state: str, reason: str = "", minutes_ago: int = 0) -> Handoff:
    row = Handoff.objects.create(
        conversation=conversation,
        kind=Handoff.Kind.HANDOFF,
        mode=Handoff.Mode.TICKET,
        state=state,
        reason=reason,
    )
    created = row.created_at - dt.timedelta(minutes=minutes_ago)
    Handoff.objects.filter(pk=row.pk).update(created_at=created)
    return row


def test_a_conversation_without_a_handoff_was_not_handed_off(make_chatbot):
    conversation = Conversation.objects.create(chatbot=make_chatbot())
    assert handoff_for(conversation_id=conversation.pk) == (False, "")


def test_a_failed_request_did_not_reach_a_person_and_the_latest_other_one_gives_the_reason(
    make_chatbot,
):
    conversation = Conversation.objects.create(chatbot=make_chatbot())
    handoff(conversation, state=Handoff.State.CREATED, reason="wants a refund", minutes_ago=5)
    handoff(conversation, state=Handoff.State.FAILED, reason="newer but failed")
    assert handoff_for(conversation_id=conversation.pk) == (True, "wants a refund")

    Handoff.objects.exclude(state=Handoff.State.FAILED).delete()
    assert handoff_for(conversation_id=conversation.pk) == (False, "")


def test_a_handoff_without_a_reason_is_named_by_its_kind(make_chatbot):
    conversation = Conversation.objects.create(chatbot=make_chatbot())
    handoff(conversation, state=Handoff.State.PENDING)
    assert handoff_for(conversation_id=conversation.pk) == (True, "Talk to a person")
