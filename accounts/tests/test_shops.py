"""Shops own their configuration: per-shop names, imports into one shop, admin pages scoped."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError

from accounts.models import Role
from chatbots.models import AIEndpoint, Chatbot
from chatbots.tests.factories import (
    create_chatbot,
    create_endpoint,
    create_member,
    create_shop,
    create_template,
)

pytestmark = pytest.mark.django_db


def staff(username: str):
    return get_user_model().objects.create_user(username, password="pw", is_staff=True)


def test_two_shops_may_each_have_an_endpoint_and_a_template_of_the_same_name():
    a, b = create_shop(), create_shop()
    create_endpoint(shop=a, name="Flowise production")
    create_endpoint(shop=b, name="Flowise production")
    create_template(shop=a, name="voice")
    create_template(shop=b, name="voice")
    with pytest.raises(IntegrityError):
        create_endpoint(shop=a, name="Flowise production")


def test_an_import_writes_into_the_named_shop_and_refuses_another_shops_chatbot_id(tmp_path):
    a, b = create_shop(slug="alpha"), create_shop(slug="beta")
    create_chatbot(shop=a, public_id="taken")
    out = io.StringIO()
    call_command("export_chatbots", "--shop", "alpha", stdout=out)
    document = json.loads(out.getvalue())
    assert [bot["public_id"] for bot in document["chatbots"]] == ["taken"]

    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    with pytest.raises(CommandError) as failure:
        call_command("import_chatbots", str(path), "--shop", "beta", stdout=io.StringIO())
    assert "the chatbot id is taken" in str(failure.value)
    assert not Chatbot.objects.filter(shop=b).exists()

    document["chatbots"][0]["public_id"] = "fresh"
    document["chatbots"][0].pop("widget_key", None)  # keys are unique server-wide too
    path.write_text(json.dumps(document))
    call_command("import_chatbots", str(path), "--shop", "beta", stdout=io.StringIO())
    fresh = Chatbot.objects.get(public_id="fresh")
    assert fresh.shop == b
    # The flow's endpoint was created in shop B, not borrowed from shop A.
    assert {flow.endpoint.shop_id for flow in fresh.flows.all()} == {b.pk}


def test_an_import_naming_no_shop_among_several_says_which_to_name(tmp_path):
    create_shop(slug="alpha")
    create_shop(slug="beta")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"format": "chatbot-config", "version": 1, "chatbots": []}))
    with pytest.raises(CommandError) as failure:
        call_command("import_chatbots", str(path), stdout=io.StringIO())
    assert "--shop" in str(failure.value)
    with pytest.raises(CommandError) as failure:
        call_command("import_chatbots", str(path), "--shop", "gamma", stdout=io.StringIO())
    assert "No shop “gamma”" in str(failure.value)


def test_a_shop_admin_lists_and_opens_only_their_own_shops_chatbots(client):
    a, b = create_shop(name="Alpha wines"), create_shop(name="Beta clothes")
    mine = create_chatbot(shop=a, name="Alpha bot")
    theirs = create_chatbot(shop=b, name="Beta bot")
    user = staff("alice")
    create_member(user=user, shop=a, role=Role.ADMIN)
    client.force_login(user)

    listing = client.get("/admin/chatbots/chatbot/")
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "Alpha bot" in body
    assert "Beta bot" not in body
    assert "Beta clothes" not in body
    assert client.get(f"/admin/chatbots/chatbot/{mine.pk}/change/").status_code == 200
    # Another shop's chatbot gets what a chatbot that does not exist gets.
    other = client.get(f"/admin/chatbots/chatbot/{theirs.pk}/change/")
    missing = client.get("/admin/chatbots/chatbot/999999/change/")
    assert other.status_code == missing.status_code == 302
    assert other["Location"] == missing["Location"]


def test_a_staff_user_with_no_membership_sees_no_chatbot_even_with_django_permissions(client):
    from django.contrib.auth.models import Permission

    create_chatbot(name="Hidden bot")
    user = staff("mallory")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="chatbots"))
    client.force_login(user)
    response = client.get("/admin/chatbots/chatbot/")
    assert response.status_code == 403
    assert "Hidden bot" not in response.content.decode()


def test_an_admin_adds_an_endpoint_into_their_current_shop_but_only_an_owner_sets_its_key(client):
    a = create_shop(name="Alpha wines")
    user = staff("alice")
    create_member(user=user, shop=a, role=Role.ADMIN)
    client.force_login(user)
    page = client.get("/admin/chatbots/aiendpoint/add/").content.decode()
    assert 'name="shop"' in page
    assert 'name="api_key"' not in page  # admins see whether a key is stored, no more
    response = client.post(
        "/admin/chatbots/aiendpoint/add/",
        {
            "shop": a.pk,
            "name": "Builtin",
            "kind": "builtin",
            "base_url": "",
            "default_model": "",
            "connect_timeout": "5",
            "read_timeout": "60",
            "total_timeout": "180",
            "pool_size": "200",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert AIEndpoint.objects.get(name="Builtin").shop == a


def test_leaving_a_shop_ends_the_users_refresh_tokens_and_at_once_their_access(
    client, django_capture_on_commit_callbacks
):
    from rest_framework_simplejwt.tokens import RefreshToken

    shop = create_shop()
    bot = create_chatbot(shop=shop)
    user = staff("leaver")
    membership = create_member(user=user, shop=shop, role=Role.VIEWER)
    refresh = RefreshToken.for_user(user)
    access = str(refresh.access_token)
    export = f"/api/analytics/export?format=jsonl&chatbot={bot.public_id}"
    assert client.get(export, HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        membership.delete()
    # The access token still verifies, but reaches nothing: roles are read on every request.
    assert client.get(export, HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 403
    response = client.post(
        "/api/auth/token/refresh", {"refresh": str(refresh)}, content_type="application/json"
    )
    assert response.status_code == 401


def test_the_admin_index_offers_the_operators_page_to_operators_only(client):
    shop = create_shop()
    owner = staff("owner")
    create_member(user=owner, shop=shop, role=Role.OWNER)
    client.force_login(owner)
    assert "Workers and queues" not in client.get("/admin/").content.decode()
    operator = get_user_model().objects.create_superuser("root", password="pw")
    client.force_login(operator)
    assert "Workers and queues" in client.get("/admin/").content.decode()


def test_a_configuration_cached_before_shops_is_read_again(make_chatbot):
    import json

    from chatbots.selectors import CONFIG_KEY, chatbot_config_get
    from config.redis import get_redis

    bot = make_chatbot()
    stale = {"id": bot.pk, "public_id": bot.public_id, "flows": []}
    get_redis().set(CONFIG_KEY.format(bot.public_id), json.dumps(stale))
    assert chatbot_config_get(public_id=bot.public_id)["shop_id"] == bot.shop_id


def test_viewers_read_conversations_but_only_agents_and_up_may_re_analyse(client):
    shop = create_shop()
    create_chatbot(shop=shop)
    for role, offered in ((Role.VIEWER, False), (Role.AGENT, True)):
        user = staff(f"{role}-user")
        create_member(user=user, shop=shop, role=role)
        client.force_login(user)
        page = client.get("/admin/conversations/conversation/")
        assert page.status_code == 200
        assert ('value="reanalyse_conversations"' in page.content.decode()) is offered, role
        reanalyse = client.get("/admin/analytics/conversationanalysis/reanalyse/")
        assert reanalyse.status_code == (200 if offered else 403), role
