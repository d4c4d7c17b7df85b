"""Retention per shop: what is older than a shop's period goes, at the boundary a row exactly
that old stays; shops without a period keep everything; the daily job applies it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Role
from analytics.models import ConversationSummary
from chatbots.tests.factories import create_chatbot, create_member, create_shop
from conversations.models import AICall, Conversation
from conversations.services import conversation_start
from images.models import ImageUpload
from images.services import image_store
from images.tests.samples import image_bytes
from monitoring.models import JobRun
from privacy.models import RetentionPolicy
from privacy.services import retention_enforce

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def two_shops():
    strict, lenient = create_shop(name="Strict"), create_shop(name="Lenient")
    return (
        strict,
        create_chatbot(shop=strict, public_id="strict", image_upload_enabled=True),
        lenient,
        create_chatbot(shop=lenient, public_id="lenient", image_upload_enabled=True),
    )


def conversation_idle_since(bot, when) -> Conversation:
    conversation = conversation_start(chatbot=bot, user_id="u")
    Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=when)
    return conversation


def call_at(bot, when) -> AICall:
    call = AICall.objects.create(
        chatbot=bot,
        endpoint_kind="builtin",
        endpoint_name="builtin",
        flow="main",
        purpose="answer",
        question="q",
        status=AICall.Status.OK,
    )
    AICall.objects.filter(pk=call.pk).update(created_at=when)
    return call


def test_conversations_idle_longer_than_the_period_go_and_one_exactly_that_old_stays(two_shops):
    strict, bot, _, other_bot = two_shops
    RetentionPolicy.objects.create(shop=strict, conversations_days=30)
    boundary = conversation_idle_since(bot, NOW - 30 * DAY)
    expired = conversation_idle_since(bot, NOW - 30 * DAY - SECOND)
    recent = conversation_idle_since(bot, NOW - DAY)
    elsewhere = conversation_idle_since(other_bot, NOW - 400 * DAY)
    linked_call = call_at(bot, NOW)
    AICall.objects.filter(pk=linked_call.pk).update(conversation=expired)

    assert retention_enforce(now=NOW)["conversations"] == 1

    remaining = set(Conversation.objects.values_list("pk", flat=True))
    assert remaining == {boundary.pk, recent.pk, elsewhere.pk}
    # The AI calls of a deleted conversation go with it (their link alone would be nulled).
    assert not AICall.objects.filter(pk=linked_call.pk).exists()


def test_ai_calls_older_than_the_period_go(two_shops):
    strict, bot, _, other_bot = two_shops
    RetentionPolicy.objects.create(shop=strict, ai_calls_days=7)
    boundary, expired = call_at(bot, NOW - 7 * DAY), call_at(bot, NOW - 7 * DAY - SECOND)
    elsewhere = call_at(other_bot, NOW - 100 * DAY)

    assert retention_enforce(now=NOW)["ai_calls"] == 1

    assert set(AICall.objects.values_list("pk", flat=True)) == {boundary.pk, elsewhere.pk}
    assert not AICall.objects.filter(pk=expired.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_images_older_than_the_period_go_with_their_files(two_shops):
    strict, bot, _, _ = two_shops
    RetentionPolicy.objects.create(shop=strict, images_days=14)
    conversation = conversation_start(chatbot=bot, user_id="u")
    old = image_store(conversation=conversation, data=image_bytes(color=(1, 2, 3)))
    kept = image_store(conversation=conversation, data=image_bytes(color=(9, 9, 9)))
    ImageUpload.objects.filter(pk=old.pk).update(created_at=NOW - 14 * DAY - SECOND)
    ImageUpload.objects.filter(pk=kept.pk).update(created_at=NOW - 14 * DAY)
    old_file = Path(settings.MEDIA_ROOT) / old.storage_name
    assert old_file.exists()

    assert retention_enforce(now=NOW)["images"] == 1

    assert list(ImageUpload.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not old_file.exists()
    assert (Path(settings.MEDIA_ROOT) / kept.storage_name).exists()
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def summary_at(bot, when) -> ConversationSummary:
    conversation = conversation_start(chatbot=bot, user_id="u")
    return ConversationSummary.objects.create(
        conversation_id=conversation.pk,
        chatbot=bot,
        first_message_time=when,
        last_message_time=when,
        message_count=1,
        first_call_id=1,
        last_call_id=1,
        created_at=when,
        updated_at=when,
    )


def test_analytics_older_than_the_period_leave_the_conversation_index(two_shops):
    strict, bot, _, other_bot = two_shops
    RetentionPolicy.objects.create(shop=strict, analytics_days=90)
    boundary = summary_at(bot, NOW - 90 * DAY)
    summary_at(bot, NOW - 90 * DAY - SECOND)
    elsewhere = summary_at(other_bot, NOW - 900 * DAY)

    assert retention_enforce(now=NOW)["conversation_index"] == 1

    remaining = set(ConversationSummary.objects.values_list("pk", flat=True))
    assert remaining == {boundary.pk, elsewhere.pk}
    assert Conversation.objects.count() == 3  # analytics retention leaves conversations alone


def test_a_shop_without_periods_keeps_everything(two_shops):
    strict, bot, _, _ = two_shops
    RetentionPolicy.objects.create(shop=strict)  # every period blank
    conversation_idle_since(bot, NOW - 5000 * DAY)
    call_at(bot, NOW - 5000 * DAY)
    assert retention_enforce(now=NOW) == {}
    assert Conversation.objects.count() == 1 and AICall.objects.count() == 1


def test_the_nightly_job_is_scheduled_and_records_its_run(two_shops):
    from privacy.tasks import retention_enforce as task

    strict, bot, _, _ = two_shops
    assert settings.CELERY_BEAT_SCHEDULE["privacy-retention"]["task"] == task.name
    assert settings.CELERY_TASK_ROUTES["privacy.tasks.*"] == {"queue": "maintenance"}
    RetentionPolicy.objects.create(shop=strict, ai_calls_days=1)
    # 03:15 in Copenhagen (the shop's default time zone) on a winter night; the call is two
    # days older than that night (not than today: the test must not depend on when it runs).
    night = dt.datetime(2026, 12, 5, 2, 15, tzinfo=dt.UTC)
    call_at(bot, night - 2 * DAY)

    assert task.apply(kwargs={"now": night.isoformat()}).get() == 1

    run = JobRun.objects.get(job="privacy-retention")
    assert run.outcome == JobRun.Outcome.OK and run.rows_affected == 1
    assert run.details == {"ai_calls": 1}


# --- the staff API --------------------------------------------------------------------------------


def logged_in(client, shop, role):
    user = get_user_model().objects.create_user(f"{role}-user", password="pw", is_staff=True)
    create_member(user=user, shop=shop, role=role)
    client.force_login(user)
    return client


def test_an_admin_reads_and_sets_the_shops_periods(two_shops, client):
    strict = two_shops[0]
    logged_in(client, strict, Role.ADMIN)
    url = f"/api/shops/{strict.slug}/retention"
    assert client.get(url).json() == {
        "conversations_days": None,
        "ai_calls_days": None,
        "images_days": None,
        "analytics_days": None,
        "redact_ai_calls": False,
    }
    response = client.patch(
        url, {"conversations_days": 180, "ai_calls_days": 30}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["conversations_days"] == 180
    response = client.patch(url, {"ai_calls_days": None}, content_type="application/json")
    assert response.json() == {
        "conversations_days": 180,
        "ai_calls_days": None,
        "images_days": None,
        "analytics_days": None,
        "redact_ai_calls": False,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"conversations_days": 0},
        {"conversations_days": -5},
        {"conversations_days": 10**30},
        {"conversations_days": "30"},
        {"conversations_days": 1.5},
        {"conversations_days": True},
        {"keep_forever": 1},
        {"redact_ai_calls": "yes"},
        [1],
    ],
)
def test_bad_periods_get_400(two_shops, client, body):
    strict = two_shops[0]
    logged_in(client, strict, Role.OWNER)
    response = client.patch(
        f"/api/shops/{strict.slug}/retention", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert not RetentionPolicy.objects.exclude(conversations_days=None).exists()


@pytest.mark.parametrize(("role", "status"), [(Role.AGENT, 403), (Role.VIEWER, 403)])
def test_agents_and_viewers_may_not_read_or_set_periods(two_shops, client, role, status):
    strict = two_shops[0]
    logged_in(client, strict, role)
    assert client.get(f"/api/shops/{strict.slug}/retention").status_code == status


def test_another_shops_owner_gets_404(two_shops, client):
    strict, _, lenient, _ = two_shops
    logged_in(client, lenient, Role.OWNER)
    assert client.get(f"/api/shops/{strict.slug}/retention").status_code == 404
    assert client.get("/api/shops/no-such-shop/retention").status_code == 404


def test_each_shop_is_done_once_a_night_at_night_in_its_own_time_zone(two_shops):
    copenhagen, cph_bot, new_york, ny_bot = two_shops
    new_york.timezone = "America/New_York"
    new_york.save(update_fields=["timezone"])
    for shop in (copenhagen, new_york):
        # Both done the night before (local dates), as in any night after the first.
        RetentionPolicy.objects.create(
            shop=shop, ai_calls_days=1, last_enforced_on=dt.date(2026, 12, 4)
        )
    winter = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    old_calls = [call_at(bot, winter - 2 * DAY) for bot in (cph_bot, ny_bot)]

    def left() -> set[str]:
        return set(
            AICall.objects.filter(pk__in=[c.pk for c in old_calls]).values_list(
                "chatbot__public_id", flat=True
            )
        )

    # 01:15 UTC: 02:15 in Copenhagen, 20:15 the evening before in New York — nobody's night yet.
    assert retention_enforce(now=winter + dt.timedelta(hours=1, minutes=15), nightly=True) == {}
    assert left() == {"strict", "lenient"}
    # 02:15 UTC is 03:15 in Copenhagen: its night has come.
    retention_enforce(now=winter + dt.timedelta(hours=2, minutes=15), nightly=True)
    assert left() == {"lenient"}
    assert RetentionPolicy.objects.get(shop=copenhagen).last_enforced_on == dt.date(2026, 12, 5)
    # Later that night Copenhagen is not done again (a call just past the period stays).
    late = call_at(cph_bot, winter + dt.timedelta(hours=3) - DAY - SECOND)
    retention_enforce(now=winter + dt.timedelta(hours=4, minutes=15), nightly=True)
    assert AICall.objects.filter(pk=late.pk).exists()
    # 08:15 UTC is 03:15 in New York.
    retention_enforce(now=winter + dt.timedelta(hours=8, minutes=15), nightly=True)
    assert left() == set()
    # A run that was missed is made up at the next one: the next evening still counts.
    RetentionPolicy.objects.filter(shop=new_york).update(last_enforced_on=dt.date(2026, 12, 3))
    assert _due(new_york, winter + dt.timedelta(hours=23)) == dt.date(2026, 12, 5)


def _due(shop, now):
    from privacy.services import _due_tonight

    return _due_tonight(RetentionPolicy.objects.select_related("shop").get(shop=shop), now)


def test_a_shop_time_zone_must_be_a_real_one():
    from django.core.exceptions import ValidationError

    shop = create_shop(name="Nowhere")
    shop.timezone = "Mars/Olympus_Mons"
    with pytest.raises(ValidationError):
        shop.full_clean()
