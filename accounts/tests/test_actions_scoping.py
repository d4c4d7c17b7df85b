"""Admin actions act on each selected row only where the user's role in that row's shop allows
it: Django checks an action's permissions once, without an object, so a user who is an agent in
one shop and a viewer in another would otherwise act on both shops' rows."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.models import Membership, Role
from chatbots.tests.factories import create_chatbot, create_shop
from conversations.services import conversation_start
from helpdesk.models import Handoff

pytestmark = pytest.mark.django_db


def _failed_handoff(shop, key: str) -> Handoff:
    bot = create_chatbot(shop=shop, public_id=f"{key}-bot")
    conversation = conversation_start(chatbot=bot, user_id=f"{key}-visitor")
    return Handoff.objects.create(
        conversation=conversation, kind="ticket", mode="ticket", state=Handoff.State.FAILED
    )


def test_retrying_tickets_leaves_the_rows_of_a_shop_where_the_user_only_views_alone(client):
    shop_a, shop_b = create_shop(slug="act-a"), create_shop(slug="act-b")
    own, other = _failed_handoff(shop_a, "act-a"), _failed_handoff(shop_b, "act-b")
    user = User.objects.create_user("agent-a-viewer-b", password="x" * 12, is_staff=True)
    Membership.objects.create(user=user, shop=shop_a, role=Role.AGENT)
    Membership.objects.create(user=user, shop=shop_b, role=Role.VIEWER)
    client.force_login(user)

    response = client.post(
        "/admin/helpdesk/handoff/",
        {"action": "retry_ticket", "_selected_action": [str(own.pk), str(other.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    own.refresh_from_db()
    other.refresh_from_db()
    assert own.state == Handoff.State.PENDING
    assert other.state == Handoff.State.FAILED
    text = response.content.decode()
    assert "1 selected row(s) left alone" in text


def test_a_viewer_of_every_selected_row_changes_nothing(client):
    shop = create_shop(slug="act-v")
    handoff = _failed_handoff(shop, "act-v")
    user = User.objects.create_user("viewer-only", password="x" * 12, is_staff=True)
    Membership.objects.create(user=user, shop=shop, role=Role.VIEWER)
    client.force_login(user)

    response = client.post(
        "/admin/helpdesk/handoff/",
        {"action": "retry_ticket", "_selected_action": [str(handoff.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    handoff.refresh_from_db()
    assert handoff.state == Handoff.State.FAILED


def test_an_operator_acts_on_every_shops_rows(client):
    shop_a, shop_b = create_shop(slug="act-oa"), create_shop(slug="act-ob")
    rows = [_failed_handoff(shop_a, "act-oa"), _failed_handoff(shop_b, "act-ob")]
    client.force_login(User.objects.create_superuser("act-op", "op@example.com", "x" * 12))

    client.post(
        "/admin/helpdesk/handoff/",
        {"action": "retry_ticket", "_selected_action": [str(r.pk) for r in rows]},
    )

    assert {Handoff.objects.get(pk=r.pk).state for r in rows} == {Handoff.State.PENDING}


# --- only owners set secrets, in the shop the object lands in --------------------------------


@pytest.fixture
def owner_of_a_admin_of_b(client):
    from accounts.scoped_admin import CURRENT_SHOP_SESSION_KEY

    shop_a, shop_b = create_shop(slug="sec-a", name="A shop"), create_shop(slug="sec-b")
    user = User.objects.create_user("owner-a-admin-b", password="x" * 12, is_staff=True)
    Membership.objects.create(user=user, shop=shop_a, role=Role.OWNER)
    Membership.objects.create(user=user, shop=shop_b, role=Role.ADMIN)
    client.force_login(user)
    session = client.session
    session[CURRENT_SHOP_SESSION_KEY] = shop_a.pk  # the page opens for the shop they own
    session.save()
    return shop_a, shop_b


def _add_endpoint(client, shop, key: str):
    from tests.html_form import form_data

    data = form_data(client.get("/admin/chatbots/aiendpoint/add/").content.decode())
    data.update(
        shop=str(shop.pk),
        name=f"endpoint of {shop.slug}",
        kind="openai",
        base_url="https://api.openai.example/v1",
        api_key=key,
    )
    return client.post("/admin/chatbots/aiendpoint/add/", data)


def test_a_key_typed_on_an_add_form_for_a_shop_where_the_user_is_no_owner_is_refused(
    client, owner_of_a_admin_of_b
):
    from chatbots.models import AIEndpoint

    _, shop_b = owner_of_a_admin_of_b

    response = _add_endpoint(client, shop_b, "sk-typed-for-the-other-shop-01")

    assert response.status_code == 200  # the form again, with the error
    assert "Only the shop&#x27;s owners set or remove keys" in response.content.decode()
    assert not AIEndpoint.objects.filter(shop=shop_b).exists()


def test_the_same_form_for_the_shop_they_own_stores_the_key(client, owner_of_a_admin_of_b):
    from chatbots.models import AIEndpoint

    shop_a, _ = owner_of_a_admin_of_b

    response = _add_endpoint(client, shop_a, "sk-typed-for-their-own-shop-02")

    assert response.status_code == 302
    assert AIEndpoint.objects.get(shop=shop_a).api_key.reveal() == "sk-typed-for-their-own-shop-02"


def test_an_admin_may_still_add_an_endpoint_without_a_key_in_that_shop(
    client, owner_of_a_admin_of_b
):
    from chatbots.models import AIEndpoint

    _, shop_b = owner_of_a_admin_of_b

    response = _add_endpoint(client, shop_b, "")

    assert response.status_code == 302
    assert not AIEndpoint.objects.get(shop=shop_b).api_key
