"""Shops in Chromium: a member of two shops switches between them in the header, new objects
start in the chosen shop, and no page a member opens names a shop they do not belong to."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from accounts.models import Membership, Role, Shop
from chatbots.tests.factories import create_chatbot, create_endpoint
from conversations.services import conversation_start
from tests.browser.conftest import admin_log_in, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MEMBER = ("two-shop-admin", "a-long-member-password-71")
PAGES = [
    "/admin/",
    "/admin/chatbots/chatbot/",
    "/admin/chatbots/aiendpoint/",
    "/admin/chatbots/aiendpoint/add/",
    "/admin/conversations/conversation/",
    "/admin/analytics/conversationanalysis/dashboard/",
    "/admin/monitoring/errorlog/",
]


@pytest.fixture
def shops():
    alpha = Shop.objects.create(slug="alpha", name="Alpha Vinhus")
    beta = Shop.objects.create(slug="beta", name="Beta Boutique")
    hidden = Shop.objects.create(slug="gamma", name="Gamma Hidden Shop")
    for shop in (alpha, beta, hidden):
        bot = create_chatbot(shop=shop, public_id=f"{shop.slug}-bot", name=f"{shop.name} bot")
        create_endpoint(shop=shop, name=f"{shop.name} endpoint")
        conversation_start(chatbot=bot, user_id=f"{shop.slug}-visitor")
    return alpha, beta, hidden


@pytest.fixture
def member(page, stack, settings, shops):
    # Daphne checks the password with the default hashers, not the suite's fast MD5.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    alpha, beta, _ = shops
    user = User.objects.create_user(MEMBER[0], password=MEMBER[1], is_staff=True)
    Membership.objects.create(user=user, shop=alpha, role=Role.ADMIN)
    Membership.objects.create(user=user, shop=beta, role=Role.ADMIN)
    page.set_viewport_size({"width": 1280, "height": 900})
    admin_log_in(page, stack.base_url, *MEMBER)
    expect(page.locator("#logout-form")).to_have_count(1)
    return page


def test_a_member_of_two_shops_switches_shop_and_never_sees_a_third(member, stack):
    page = member
    switcher = page.locator("#shop-switcher-select")
    expect(switcher).to_have_value(str(Shop.objects.get(slug="alpha").pk))
    for path in PAGES:
        response = page.goto(f"{stack.base_url}{path}")
        assert response is not None and response.status == 200, path
        text = page.content()
        assert "Gamma" not in text, path
        assert "gamma-" not in text, path
    page.goto(f"{stack.base_url}/admin/chatbots/chatbot/")
    expect(page.locator("#result_list")).to_contain_text("Alpha Vinhus bot")
    expect(page.locator("#result_list")).to_contain_text("Beta Boutique bot")

    # Choosing Beta in the header: new objects start there.
    page.locator("#shop-switcher-select").select_option(label="Beta Boutique")
    page.wait_for_load_state("load")
    beta = Shop.objects.get(slug="beta")
    expect(page.locator("#shop-switcher-select")).to_have_value(str(beta.pk))
    page.goto(f"{stack.base_url}/admin/chatbots/aiendpoint/add/")
    expect(page.locator("select#id_shop")).to_have_value(str(beta.pk))
    options = page.locator("select#id_shop option").all_inner_texts()
    assert not any("Gamma" in option for option in options), options
    screenshot(page, "shops-switcher")
