"""Owners invite people by email; nobody picks from the server's accounts.

Picking a member by username told an owner which usernames exist, made any user staff, and
(since leaving a shop ends the user's refresh tokens) let an owner sign anyone out everywhere.
"""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.models import AuditEvent, Invitation, Membership, Role
from chatbots.tests.factories import create_shop
from tests.html_form import form_data

pytestmark = pytest.mark.django_db

LINK = re.compile(r"value='(http://testserver/admin/accounts/invitation/accept/[^/']+/)'")


@pytest.fixture
def shop_and_owner(client):
    shop = create_shop(slug="inv-shop", name="Invited Wine")
    owner = User.objects.create_user("inv-owner", password="x" * 12, is_staff=True)
    Membership.objects.create(user=owner, shop=shop, role=Role.OWNER)
    client.force_login(owner)
    return shop, owner


def _invite(client, shop, email: str, role: str = Role.AGENT) -> tuple[object, str]:
    data = form_data(client.get("/admin/accounts/invitation/add/").content.decode())
    data.update(shop=str(shop.pk), email=email, role=role)
    response = client.post("/admin/accounts/invitation/add/", data, follow=True)
    assert response.status_code == 200
    [link] = LINK.findall(response.content.decode())
    return response, link


def test_an_owner_cannot_add_a_member_by_username_any_more(client, shop_and_owner):
    assert client.get("/admin/accounts/membership/add/").status_code == 403


def test_an_operator_still_adds_a_member_by_username(client):
    client.force_login(User.objects.create_superuser("inv-op", "op@example.com", "x" * 12))
    assert client.get("/admin/accounts/membership/add/").status_code == 200


def test_inviting_says_the_same_whether_or_not_the_address_has_an_account(client, shop_and_owner):
    shop, _ = shop_and_owner
    User.objects.create_user("someone", email="known@example.com", password="x" * 12)

    known, _ = _invite(client, shop, "known@example.com")
    unknown, _ = _invite(client, shop, "unknown@example.com")

    def said(response) -> list[str]:
        return [
            re.sub(r"(known|unknown)@example\.com|accept/[^/']+/", "…", str(m))
            for m in response.context["messages"]
        ]

    assert said(known) == said(unknown)
    assert len(said(known)) == 2  # the link to send, and Django's "was added"
    assert "someone" not in known.content.decode()
    assert Invitation.objects.filter(shop=shop).count() == 2
    # Only the hash of the link is stored.
    assert all(len(i.token_hash) == 64 for i in Invitation.objects.all())


def test_a_new_person_creates_an_account_from_the_link_and_joins_with_the_role(
    client, shop_and_owner
):
    shop, _ = shop_and_owner
    _, link = _invite(client, shop, "new.agent@example.com")
    client.logout()

    page = client.get(link)
    assert page.status_code == 200
    assert "Invited Wine" in page.content.decode()
    data = form_data(page.content.decode(), form_id="invitation_form")
    data.update(
        username="new-agent", password1="a long pass phrase 42", password2="a long pass phrase 42"
    )
    response = client.post(link, data)

    assert response.status_code == 302
    user = User.objects.get(username="new-agent")
    assert (user.email, user.is_staff, user.is_superuser) == ("new.agent@example.com", True, False)
    assert Membership.objects.get(user=user).role == Role.AGENT
    assert client.get("/admin/").status_code == 200  # signed in
    event = AuditEvent.objects.get(shop=shop, object_type="membership")
    assert event.detail["via"] == "invitation" and event.detail["invited_by"] == "inv-owner"
    # The link works once.
    client.logout()
    assert client.get(link).status_code == 404


def test_a_member_of_another_shop_signs_in_and_joins_keeping_their_other_shop(
    client, shop_and_owner
):
    shop, _ = shop_and_owner
    other = create_shop(slug="inv-other")
    person = User.objects.create_user("two-shops", password="x" * 12, is_staff=True)
    Membership.objects.create(user=person, shop=other, role=Role.ADMIN)
    _, link = _invite(client, shop, "two@example.com", Role.VIEWER)
    client.force_login(person)

    page = client.get(link)
    assert "signed in as" in page.content.decode()
    response = client.post(link, form_data(page.content.decode(), form_id="invitation_form"))

    assert response.status_code == 302
    assert dict(Membership.objects.filter(user=person).values_list("shop__slug", "role")) == {
        "inv-other": Role.ADMIN,
        "inv-shop": Role.VIEWER,
    }


def test_a_bad_expired_or_withdrawn_link_is_one_page_saying_so(client, shop_and_owner):
    shop, _ = shop_and_owner
    _, expired = _invite(client, shop, "late@example.com")
    Invitation.objects.filter(email="late@example.com").update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    _, withdrawn = _invite(client, shop, "gone@example.com")
    Invitation.objects.filter(email="gone@example.com").delete()
    client.logout()

    for link in (expired, withdrawn, "/admin/accounts/invitation/accept/not-a-token/"):
        response = client.get(link)
        assert response.status_code == 404
        assert "not valid" in response.content.decode()
        assert (
            client.post(link, {"username": "x", "password1": "p", "password2": "p"}).status_code
            == 404
        )
    assert not User.objects.filter(username="x").exists()


def test_admins_agents_and_viewers_cannot_invite_and_another_shops_owner_sees_none(
    client, shop_and_owner
):
    shop, _ = shop_and_owner
    _invite(client, shop, "someone@example.com")
    for role in (Role.ADMIN, Role.AGENT, Role.VIEWER):
        user = User.objects.create_user(f"inv-{role}", password="x" * 12, is_staff=True)
        Membership.objects.create(user=user, shop=shop, role=role)
        client.force_login(user)
        assert client.get("/admin/accounts/invitation/").status_code == 403
        assert client.get("/admin/accounts/invitation/add/").status_code == 403
    stranger = User.objects.create_user("inv-stranger", password="x" * 12, is_staff=True)
    Membership.objects.create(user=stranger, shop=create_shop(slug="inv-b"), role=Role.OWNER)
    client.force_login(stranger)
    listing = client.get("/admin/accounts/invitation/")
    assert listing.status_code == 200
    assert "someone@example.com" not in listing.content.decode()
    invitation = Invitation.objects.get(email="someone@example.com")
    assert client.get(f"/admin/accounts/invitation/{invitation.pk}/change/").status_code == 302
