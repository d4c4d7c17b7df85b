"""Configuration history cannot reach another shop: reversion's revision page looks a version up
by object id alone, and one revision (an operator's bulk action) can hold several shops' rows."""

from __future__ import annotations

import pytest
import reversion
from django.contrib.auth.models import User
from reversion.models import Version

from accounts.models import Role
from chatbots.models import Chatbot
from chatbots.tests.factories import create_chatbot, create_endpoint, create_member, create_shop

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_shops():
    shop_a, shop_b = create_shop(slug="shop-a"), create_shop(slug="shop-b")
    with reversion.create_revision():
        bot_a = create_chatbot(public_id="bot-a", shop=shop_a, greeting="A before")
        bot_b = create_chatbot(public_id="bot-b", shop=shop_b, greeting="B before")
    admin_a = User.objects.create_user("admin-a", password="x" * 12, is_staff=True)
    create_member(user=admin_a, shop=shop_a, role=Role.ADMIN)
    return shop_a, shop_b, bot_a, bot_b, admin_a


def test_a_revision_holding_another_shops_rows_cannot_be_reverted_by_a_member(client, two_shops):
    _, _, bot_a, bot_b, admin_a = two_shops
    version = Version.objects.get_for_object(bot_a).get()
    Chatbot.objects.filter(pk__in=[bot_a.pk, bot_b.pk]).update(greeting="after")
    client.force_login(admin_a)

    response = client.post(f"/admin/chatbots/chatbot/{bot_a.pk}/history/{version.pk}/revert/")

    assert response.status_code == 302
    bot_a.refresh_from_db()
    bot_b.refresh_from_db()
    assert (bot_a.greeting, bot_b.greeting) == ("after", "after")  # nothing reverted


def test_an_operator_may_revert_a_revision_that_spans_shops(client, two_shops):
    _, _, bot_a, bot_b, _ = two_shops
    version = Version.objects.get_for_object(bot_a).get()
    Chatbot.objects.filter(pk__in=[bot_a.pk, bot_b.pk]).update(greeting="after")
    client.force_login(User.objects.create_superuser("op", "op@example.com", "x" * 12))

    client.post(f"/admin/chatbots/chatbot/{bot_a.pk}/history/{version.pk}/revert/")

    bot_b.refresh_from_db()
    assert bot_b.greeting == "B before"


def test_reversions_revision_page_only_shows_versions_of_that_object(client, two_shops):
    shop_a, shop_b, _, _, admin_a = two_shops
    # Another shop's endpoint whose id happens to equal one of this shop's chatbots' ids.
    with reversion.create_revision():
        other = create_endpoint(pk=900001, name="Theirs", shop=shop_b)
    own = create_chatbot(pk=900001, public_id="bot-a2", shop=shop_a, with_main_flow=False)
    other_version = Version.objects.get_for_object(other).get()
    client.force_login(admin_a)

    url = f"/admin/chatbots/chatbot/{own.pk}/history/{other_version.pk}/"
    response = client.get(url)

    assert response.status_code == 404
    assert "Theirs" not in response.content.decode()


# --- secrets are not history ---------------------------------------------------------------


def test_no_version_holds_a_key_and_a_revert_by_an_admin_keeps_the_key_stored_now(client):
    shop = create_shop(slug="keys")
    with reversion.create_revision():
        endpoint = create_endpoint(
            name="Before",
            shop=shop,
            kind="openai",
            api_key="sk-old-key-that-was-rotated-0001",
        )
    with reversion.create_revision():
        endpoint.name = "After"
        endpoint.api_key = "sk-new-key-stored-now-0002"
        endpoint.save()
    first = Version.objects.get_for_object(endpoint).order_by("pk").first()
    admin = User.objects.create_user("keys-admin", password="x" * 12, is_staff=True)
    create_member(user=admin, shop=shop, role=Role.ADMIN)
    client.force_login(admin)

    response = client.post(f"/admin/chatbots/aiendpoint/{endpoint.pk}/history/{first.pk}/revert/")

    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.name == "Before"  # the revert happened
    assert endpoint.api_key.reveal() == "sk-new-key-stored-now-0002"  # but not to the old key
    for version in Version.objects.get_for_object(endpoint):
        assert "api_key" not in version.serialized_data


def test_the_migration_strips_keys_from_versions_stored_before(transactional_db):
    import importlib
    import json

    from django.apps import apps

    strip = importlib.import_module("accounts.migrations.0002_history_without_secrets")
    with reversion.create_revision():
        endpoint = create_endpoint(name="Old", kind="openai", api_key="sk-kept-in-history-03")
    version = Version.objects.get_for_object(endpoint).get()
    data = json.loads(version.serialized_data)
    stored = type(endpoint).objects.get(pk=endpoint.pk).api_key.stored
    data[0]["fields"]["api_key"] = stored  # as versions held it before
    Version.objects.filter(pk=version.pk).update(serialized_data=json.dumps(data))

    strip.strip_secrets(apps, None)

    version.refresh_from_db()
    assert "api_key" not in json.loads(version.serialized_data)[0]["fields"]
    assert json.loads(version.serialized_data)[0]["fields"]["name"] == "Old"
