"""The audit log: who changed which configuration, who read or exported conversations, who
signed in — each event in its shop, seen by that shop's owners and by operators."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import AuditEvent, Role
from chatbots.tests.factories import create_chatbot, create_member, create_shop
from conversations.services import conversation_start
from tests.html_form import form_data

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def two_shops():
    a, b = create_shop(name="Alpha wines"), create_shop(name="Beta clothes")
    bot_a = create_chatbot(shop=a, public_id="alpha", name="Alpha bot")
    bot_b = create_chatbot(shop=b, public_id="beta", name="Beta bot")
    owner_a = User.objects.create_user("owner-a", password="pw", is_staff=True)
    create_member(user=owner_a, shop=a, role=Role.OWNER)
    admin_a = User.objects.create_user("admin-a", password="pw", is_staff=True)
    create_member(user=admin_a, shop=a, role=Role.ADMIN)
    owner_b = User.objects.create_user("owner-b", password="pw", is_staff=True)
    create_member(user=owner_b, shop=b, role=Role.OWNER)
    return {"a": a, "b": b, "bot_a": bot_a, "bot_b": bot_b, "owner_a": owner_a, "admin_a": admin_a}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_configuration_change_in_the_admin_is_recorded_in_the_objects_shop(two_shops):
    client = logged_in(two_shops["admin_a"])
    bot = two_shops["bot_a"]
    url = f"/admin/chatbots/chatbot/{bot.pk}/change/"
    data = form_data(client.get(url).content.decode())
    data["name"] = "Alpha bot renamed"
    assert client.post(url, data).status_code == 302
    changed = AuditEvent.objects.get(action=AuditEvent.Action.CHANGE)
    assert changed.shop == two_shops["a"]
    assert changed.actor_label == "admin-a"
    assert "name" in changed.detail["change"].lower()

    client.post(f"/admin/chatbots/chatbot/{bot.pk}/delete/", {"post": "yes"})
    deleted = AuditEvent.objects.get(action=AuditEvent.Action.DELETE)
    assert deleted.shop == two_shops["a"]
    assert deleted.object_label == "Alpha bot renamed (alpha)"


def test_an_export_through_the_api_is_recorded_per_shop_with_its_size(two_shops):
    conversation_start(chatbot=two_shops["bot_a"], user_id="anna")
    conversation_start(chatbot=two_shops["bot_a"], user_id="bo")
    conversation_start(chatbot=two_shops["bot_b"], user_id="cy")
    token = RefreshToken.for_user(two_shops["admin_a"]).access_token
    response = Client().get(
        "/api/analytics/export?format=jsonl", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert body.count("\n") == 2  # shop A's two conversations, not shop B's
    event = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT)
    assert event.shop == two_shops["a"]
    assert event.detail["conversations"] == 2
    assert event.actor_label == "admin-a"


def test_a_staff_read_of_a_transcript_is_recorded_but_the_visitors_own_reads_are_not(two_shops):
    conversation = conversation_start(chatbot=two_shops["bot_a"], user_id="anna")
    client = logged_in(two_shops["admin_a"])
    assert client.get(f"/api/sessions/{conversation.pk}/history").status_code == 200
    read = AuditEvent.objects.get(action=AuditEvent.Action.READ)
    assert read.shop == two_shops["a"]
    assert read.object_id == str(conversation.pk)


def test_sign_ins_are_recorded_in_the_users_shops_and_failed_ones_in_no_shop(two_shops, client):
    two_shops["owner_a"].set_password("right-password-1")
    two_shops["owner_a"].save()
    client.post("/admin/login/", {"username": "owner-a", "password": "wrong"})
    failed = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED)
    assert failed.shop is None
    assert failed.actor_label == "owner-a"
    assert "wrong" not in str(failed.detail)
    client.post("/admin/login/", {"username": "owner-a", "password": "right-password-1"})
    signed_in = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN, actor_label="owner-a")
    assert [event.shop for event in signed_in] == [two_shops["a"]]


def test_owners_read_their_shops_audit_log_and_nobody_elses(two_shops):
    AuditEvent.objects.create(
        shop=two_shops["b"], actor_label="someone", action="read", object_label="Beta secret read"
    )
    AuditEvent.objects.create(
        shop=two_shops["a"], actor_label="someone", action="read", object_label="Alpha read"
    )
    owner = logged_in(two_shops["owner_a"])
    page = owner.get("/admin/accounts/auditevent/")
    assert page.status_code == 200
    assert "Alpha read" in page.content.decode()
    assert "Beta secret read" not in page.content.decode()
    # An admin (not an owner) of the same shop does not see the audit log.
    assert logged_in(two_shops["admin_a"]).get("/admin/accounts/auditevent/").status_code == 403


def test_audit_events_older_than_the_retention_go_with_the_error_log_prune(settings):
    import datetime as dt

    from django.utils import timezone

    from monitoring import tasks

    settings.AUDIT_LOG_RETENTION_DAYS = 365
    shop = create_shop()
    old = AuditEvent.objects.create(shop=shop, action="read", object_label="old")
    kept = AuditEvent.objects.create(shop=shop, action="read", object_label="kept")
    AuditEvent.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - dt.timedelta(days=365, minutes=1)
    )
    AuditEvent.objects.filter(pk=kept.pk).update(created_at=timezone.now() - dt.timedelta(days=364))
    tasks.error_logs_prune.apply()
    assert list(AuditEvent.objects.values_list("object_label", flat=True)) == ["kept"]
