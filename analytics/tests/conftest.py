"""Fixtures for analytics tests: staff / member / outsider clients and finished turns.

Turns are finished through the same services the runner uses (message_submit, turn_claim,
turn_finish), with the timings, AI calls and sources a real run would record.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from conversations import services, streaming
from conversations.models import AICall, Conversation, Turn

_ids = itertools.count(1)

DEFAULT_TIMINGS = {
    "config_load_ms": 3,
    "routing_ms": 12,
    "upstream_connect_ms": 40,
    "first_token_ms": 95,
    "streaming_ms": 400,
    "total_ms": 520,
}


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_superuser(
        username=f"staff{next(_ids)}", password="pw-staff-123", email="s@example.com"
    )
    client.force_login(user)
    return client


@pytest.fixture
def member_client(client, db):
    """Logged in, but not staff (a widget user or an integrator)."""
    user = get_user_model().objects.create_user(username=f"member{next(_ids)}", password="pw")
    client.force_login(user)
    return client


def finish_turn(
    *,
    conversation: Conversation,
    question: str,
    answer: str = "Here is the answer.",
    status: str = "completed",
    timings: dict[str, Any] | None = None,
    calls: list[dict[str, Any]] | None = None,
    sources: list[dict] | None = None,
    error: dict | None = None,
    flow: str = "main",
    kind: str = "builtin",
) -> Turn:
    turn, _ = services.message_submit(
        conversation=conversation, text=question, client_ip="203.0.113.7"
    )
    work = services.turn_claim(turn_id=str(turn.pk), worker="test")
    assert work is not None
    if calls is None:
        calls = [
            {
                "endpoint_kind": kind,
                "endpoint_name": kind,
                "flow": flow,
                "purpose": "answer",
                "question": question,
                "answer": answer,
                "model": "builtin" if kind == "builtin" else "gpt-4o-mini",
                "status": "ok",
                "latency_ms": 450,
                "first_token_ms": 30,
            }
        ]
    timings = dict(DEFAULT_TIMINGS if timings is None else timings)
    services.turn_finish(
        turn_id=str(turn.pk),
        status=status,
        text=answer,
        flow=flow,
        route={"mode": "sequential", "flow": flow},
        usage={},
        timings=timings,
        sources=sources,
        ai_calls=calls,
        end_event=streaming.envelope(work.first_seq + 1, "end", {"status": status}),
        message_id=str(uuid.uuid4()) if answer else None,
        error=error,
    )
    # As the runner does: the time storing took is known only after the commit; this also
    # sends conversations.services.turn_finished.
    services.turn_timings_update(
        turn_id=str(turn.pk), timings={"persistence_ms": 4, **timings}, status=status
    )
    return Turn.objects.select_related("assistant_message", "conversation").get(pk=turn.pk)


@pytest.fixture
def make_turn(db):
    return finish_turn


@pytest.fixture
def make_conversation(db):
    def make(chatbot, user_id: str = "visitor-1") -> Conversation:
        return services.conversation_start(chatbot=chatbot, user_id=user_id)

    return make


def ai_call(**fields) -> AICall:
    """An AICall row as the runner records it (for the conversation index)."""
    fields.setdefault("endpoint_kind", "openai")
    fields.setdefault("endpoint_name", "OpenAI")
    fields.setdefault("flow", "main")
    fields.setdefault("purpose", "answer")
    fields.setdefault("status", "ok")
    fields.setdefault("model", "gpt-4o-mini")
    return AICall.objects.create(**fields)
