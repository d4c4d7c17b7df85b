"""The chatbot admin's publishing: switching to reviewed publishes version 1, saves are a draft,
the Versions page says what publishing would change, and only who may change the bot may
publish or roll back (issue #26 items 1 and 3, docs/versions.md)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages

from accounts.models import Role
from chatbots.models import Chatbot, TextRule
from chatbots.selectors import chatbot_turn_config_get
from chatbots.tests.factories import create_member, create_shop, shop_for_tests
from chatbots.versions import chatbot_publishing_set
from tests.html_form import form_data

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def url(bot: Chatbot, suffix: str) -> str:
    return f"/admin/chatbots/chatbot/{bot.pk}/{suffix}"


def save_form(client, bot: Chatbot, **changes) -> None:
    data = form_data(client.get(url(bot, "change/")).content.decode())
    data.update(changes)
    response = client.post(url(bot, "change/"), data)
    assert response.status_code == 302, response.context and response.context["errors"]


def member(client, shop, role: str):
    user = get_user_model().objects.create_user(f"{role}-{shop.slug}", password="x", is_staff=True)
    create_member(user=user, shop=shop, role=role)
    client.force_login(user)
    return user


def test_switching_to_reviewed_in_the_form_publishes_version_one(admin_client, make_chatbot):
    bot = make_chatbot(public_id="switching")
    save_form(admin_client, bot, publishing="reviewed")
    bot.refresh_from_db()
    assert bot.publishing == "reviewed"
    assert bot.live_version.number == 1
    assert "Switched to reviewed publishing" in bot.live_version.note


def test_back_to_reviewed_after_instant_publishes_what_customers_had_meanwhile(
    admin_client, make_chatbot
):
    bot = make_chatbot(public_id="back-and-forth")
    save_form(admin_client, bot, publishing="reviewed")
    save_form(admin_client, bot, publishing="instant")
    TextRule.objects.create(chatbot=bot, kind="exclamation", replace=".")  # live at once
    assert len(chatbot_turn_config_get(public_id="back-and-forth")["text_rules"]) == 1

    save_form(admin_client, bot, publishing="reviewed")

    bot.refresh_from_db()
    assert bot.live_version.number == 2
    assert len(chatbot_turn_config_get(public_id="back-and-forth")["text_rules"]) == 1


def test_a_save_of_a_reviewed_bot_is_a_draft_until_published_on_the_versions_page(
    admin_client, make_chatbot
):
    bot = make_chatbot(public_id="drafting")
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)
    TextRule.objects.create(chatbot=bot, kind="exclamation", replace=".")

    page = admin_client.get(url(bot, "versions/")).content.decode()
    assert "Version 1 is live." in page
    assert "Text rules changed (0 → 1 rules)." in page
    assert chatbot_turn_config_get(public_id="drafting")["text_rules"] == []

    response = admin_client.post(url(bot, "versions/publish/"), {"note": "calm"})

    assert response.status_code == 302
    assert "Published version 2" in [str(m) for m in get_messages(response.wsgi_request)][-1]
    assert len(chatbot_turn_config_get(public_id="drafting")["text_rules"]) == 1
    page = admin_client.get(url(bot, "versions/")).content.decode()
    assert "Nothing: the draft is the live version." in page
    assert "Roll back to version 1" in page

    admin_client.post(url(bot, "versions/1/rollback/"))
    assert chatbot_turn_config_get(public_id="drafting")["text_rules"] == []
    bot.refresh_from_db()
    assert (bot.live_version.number, bot.live_version.copied_from.number) == (3, 1)


def test_a_viewer_cannot_publish_or_roll_back(client, make_chatbot):
    bot = make_chatbot(public_id="viewed")
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)
    member(client, shop_for_tests(), Role.ADMIN)
    assert client.get(url(bot, "versions/")).status_code == 200

    # Viewers (and agents) see transcripts, not configuration (accounts/access.py): to them the
    # bot's pages do not exist.
    client.force_login(member(client, shop_for_tests(), Role.VIEWER))
    assert client.get(url(bot, "versions/")).status_code == 404
    assert client.post(url(bot, "versions/publish/")).status_code == 404
    assert client.post(url(bot, "versions/1/rollback/")).status_code == 404
    assert bot.versions.count() == 1


def test_another_shops_member_finds_no_such_chatbot(client, make_chatbot):
    bot = make_chatbot(public_id="theirs")
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)
    member(client, create_shop(), Role.OWNER)
    for suffix in ("versions/", "versions/publish/", "versions/1/rollback/"):
        assert client.post(url(bot, suffix)).status_code == 404
    assert client.get(url(bot, "versions/")).status_code == 404
    assert bot.versions.count() == 1


def test_an_instant_bot_has_no_draft_to_publish(admin_client, make_chatbot):
    bot = make_chatbot(public_id="instant-admin")
    page = admin_client.get(url(bot, "versions/")).content.decode()
    assert "every save at once" in page
    admin_client.post(url(bot, "versions/publish/"))
    assert bot.versions.count() == 0


# --- Preview chat (issue #26 item 2) --------------------------------------------------------


def test_staff_get_a_preview_conversation_of_the_draft_or_a_version(admin_client, make_chatbot):
    from conversations.access import conversation_token_check
    from conversations.models import Conversation

    bot = make_chatbot(public_id="previewed")
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)
    page = admin_client.get(url(bot, "preview/")).content.decode()
    assert "version 1 (live)" in page

    response = admin_client.post(url(bot, "preview/start/"), {"version": "1"})

    assert response.status_code == 201
    body = response.json()
    conversation = Conversation.objects.get(pk=body["session_id"])
    assert (conversation.preview, body["preview"]) == ("1", "1")
    assert conversation_token_check(body["conversation_token"]).conversation_id == conversation.pk
    draft = admin_client.post(url(bot, "preview/start/"), {"version": "draft"}).json()
    assert draft["preview"] == "draft"


def test_a_preview_of_a_version_that_does_not_exist_is_a_clear_400(admin_client, make_chatbot):
    bot = make_chatbot(public_id="no-such-version")
    response = admin_client.post(url(bot, "preview/start/"), {"version": "7"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_outsiders_get_no_preview_token(client, make_chatbot):
    from conversations.models import Conversation

    bot = make_chatbot(public_id="guarded")
    # Not signed in: the admin's login page, no token.
    response = client.post(url(bot, "preview/start/"))
    assert response.status_code == 302 and "/login/" in response["Location"]
    member(client, create_shop(), Role.OWNER)
    assert client.post(url(bot, "preview/start/")).status_code == 404
    member(client, shop_for_tests(), Role.VIEWER)
    assert client.post(url(bot, "preview/start/")).status_code == 404
    assert not Conversation.objects.exists()


def test_the_transcripts_list_shows_customers_unless_previews_are_asked_for(
    admin_client, admin_user, make_chatbot
):
    from chatbots.preview import preview_conversation_start
    from conversations.services import conversation_start

    bot = make_chatbot(public_id="listed")
    customer = conversation_start(chatbot=bot)
    staff_preview, _ = preview_conversation_start(chatbot=bot, choice="draft", user=admin_user)

    listed = admin_client.get("/admin/conversations/conversation/").content.decode()
    previews = admin_client.get("/admin/conversations/conversation/?preview=yes").content.decode()

    assert str(customer.pk)[:8] in listed and str(staff_preview.pk)[:8] not in listed
    assert str(staff_preview.pk)[:8] in previews and str(customer.pk)[:8] not in previews
    opened = admin_client.get(f"/admin/conversations/conversation/{staff_preview.pk}/change/")
    assert opened.status_code == 200


def test_an_unchanged_draft_is_not_published_again(admin_client, make_chatbot):
    bot = make_chatbot(public_id="unchanged")
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)
    page = admin_client.get(url(bot, "versions/")).content.decode()
    assert "Nothing: the draft is the live version." in page
    assert 'id="publish-draft"' not in page

    response = admin_client.post(url(bot, "versions/publish/"))

    assert "Nothing to publish" in [str(m) for m in get_messages(response.wsgi_request)][-1]
    assert bot.versions.count() == 1
