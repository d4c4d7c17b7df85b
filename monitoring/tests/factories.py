"""Turns and their events in any state, created directly (no task is enqueued)."""

from __future__ import annotations

import itertools

from django.utils import timezone

from conversations.models import Conversation, Message, StreamEvent, Turn

_seq = itertools.count(1)


def create_turn(*, chatbot, status: str = Turn.Status.PENDING, **fields) -> Turn:
    conversation = Conversation.objects.create(chatbot=chatbot)
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="Hello", sequence=1
    )
    return Turn.objects.create(
        conversation=conversation, user_message=message, status=status, **fields
    )


def create_events(turn: Turn, count: int) -> list[StreamEvent]:
    now = timezone.now()
    events = StreamEvent.objects.bulk_create(
        StreamEvent(turn=turn, seq=i, event="token", data={"text": f"t{i}"}, created_at=now)
        for i in range(1, count + 1)
    )
    Turn.objects.filter(pk=turn.pk).update(last_event_id=count)
    return events
