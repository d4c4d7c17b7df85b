"""Personal data out of the AI-call log where a shop asks: email addresses and phone numbers in
the calls' question and answer text (and the conversation index) are masked as soon as a turn
ends, and by the daily job for calls stored later; other shops' calls are untouched."""

from __future__ import annotations

import pytest
from django.utils import timezone

from analytics.models import ConversationSummary
from chatbots.tests.factories import create_chatbot, create_shop
from conversations.models import AICall, Turn
from conversations.services import turn_timings_update
from monitoring.tests.factories import create_turn
from privacy.models import RetentionPolicy
from privacy.services import retention_enforce

pytestmark = pytest.mark.django_db

TEXT = (
    "Mail erika.m@example.org or call +45 12 34 56 78 / 12 34 56 78 about order 100234 "
    "of 2026-12-05, 2 bottles at 149.95"
)
REDACTED = (
    "Mail [email] or call [phone] / [phone] about order 100234 of 2026-12-05, 2 bottles at 149.95"
)


@pytest.fixture
def shops():
    asking, other = create_shop(name="Asking"), create_shop(name="Other")
    RetentionPolicy.objects.create(shop=asking, redact_ai_calls=True)
    return create_chatbot(shop=asking, public_id="asking"), create_chatbot(
        shop=other, public_id="other"
    )


def call_of(turn: Turn) -> AICall:
    return AICall.objects.create(
        chatbot=turn.conversation.chatbot,
        conversation=turn.conversation,
        turn=turn,
        endpoint_kind="builtin",
        endpoint_name="builtin",
        flow="main",
        purpose="answer",
        question=TEXT,
        answer=f"We will write to erika.m@example.org. {TEXT}",
        status=AICall.Status.OK,
    )


def test_a_finished_turns_calls_are_masked_when_the_shop_asks(shops):
    asking_bot, other_bot = shops
    asking_turn, other_turn = create_turn(chatbot=asking_bot), create_turn(chatbot=other_bot)
    masked, kept = call_of(asking_turn), call_of(other_turn)

    for turn in (asking_turn, other_turn):
        turn_timings_update(turn_id=str(turn.pk), timings={}, status=Turn.Status.COMPLETED)

    masked.refresh_from_db()
    kept.refresh_from_db()
    assert masked.question == REDACTED
    assert masked.answer == f"We will write to [email]. {REDACTED}"
    assert kept.question == TEXT


def test_the_daily_job_masks_calls_stored_after_the_turn_and_the_conversation_index(shops):
    asking_bot, other_bot = shops
    late = call_of(create_turn(chatbot=asking_bot))  # e.g. an analysis call, after turn end
    other = call_of(create_turn(chatbot=other_bot))
    now = timezone.now()
    summary = ConversationSummary.objects.create(
        conversation_id=late.conversation_id,
        chatbot=asking_bot,
        first_message_time=now,
        last_message_time=now,
        message_count=1,
        first_question=TEXT,
        last_question=TEXT,
        first_call_id=late.pk,
        last_call_id=late.pk,
        created_at=now,
        updated_at=now,
    )

    assert retention_enforce()["ai_calls_redacted"] == 1
    assert retention_enforce().get("ai_calls_redacted") is None  # nothing left to mask

    late.refresh_from_db()
    other.refresh_from_db()
    summary.refresh_from_db()
    assert late.question == REDACTED
    assert summary.first_question == summary.last_question == REDACTED
    assert other.question == TEXT


def test_switching_it_on_through_the_api(shops, client):
    from django.contrib.auth import get_user_model

    from accounts.models import Role
    from chatbots.tests.factories import create_member

    _, other_bot = shops
    owner = get_user_model().objects.create_user("owner", password="pw", is_staff=True)
    create_member(user=owner, shop=other_bot.shop, role=Role.OWNER)
    client.force_login(owner)
    response = client.patch(
        f"/api/shops/{other_bot.shop.slug}/retention",
        {"redact_ai_calls": True},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["redact_ai_calls"] is True
    call = call_of(create_turn(chatbot=other_bot))
    retention_enforce()
    call.refresh_from_db()
    assert call.question == REDACTED
