"""Published versions (issue #26 item 1): a reviewed bot's customers get its live version while
staff edit the draft; publishing and rollback move what customers get, and nothing else does."""

from __future__ import annotations

import json

import pytest
from reversion.models import Version

from accounts.models import AuditEvent
from chatbots import selectors
from chatbots.models import AIEndpoint, Chatbot, TemplateAssignment, TextRule
from chatbots.secrets import SecretValue
from chatbots.services import configuration_revert
from chatbots.versions import (
    chatbot_publishing_set,
    draft_diff,
    version_publish,
    version_rollback,
)
from tools.models import ChatbotTools
from tools.selectors import toolset_for_turn

pytestmark = pytest.mark.django_db


def rules(public_id: str, preview: str | None = None) -> list[dict]:
    return selectors.chatbot_turn_config_get(public_id=public_id, preview=preview)["text_rules"]


@pytest.fixture
def reviewed(make_chatbot):
    bot = make_chatbot(public_id="reviewed")
    TextRule.objects.create(chatbot=bot, kind="replace", find="wine", replace="vin")
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)
    bot.refresh_from_db()
    return bot


def test_an_instant_bot_answers_from_what_was_just_saved(make_chatbot):
    bot = make_chatbot(public_id="instant")
    assert bot.publishing == Chatbot.Publishing.INSTANT
    assert rules("instant") == []
    TextRule.objects.create(chatbot=bot, kind="exclamation", replace=".")
    assert [r["kind"] for r in rules("instant")] == ["exclamation"]
    assert bot.versions.count() == 0


def test_switching_to_reviewed_publishes_the_current_configuration_as_version_one(reviewed):
    assert reviewed.live_version.number == 1
    assert rules("reviewed") == [{"kind": "replace", "find": "wine", "replace": "vin"}]


def test_a_draft_edit_reaches_the_preview_but_not_customers_until_it_is_published(reviewed):
    TextRule.objects.create(chatbot=reviewed, kind="exclamation", replace=".")

    assert len(rules("reviewed")) == 1
    assert len(rules("reviewed", preview="draft")) == 2

    version_publish(chatbot=reviewed, note="house style")

    assert len(rules("reviewed")) == 2
    assert selectors.chatbot_turn_config_get(public_id="reviewed")["version"] == 2


def test_a_preview_of_a_version_runs_that_version(reviewed):
    TextRule.objects.all().delete()
    version_publish(chatbot=reviewed)
    assert rules("reviewed") == []
    assert len(rules("reviewed", preview="1")) == 1


def test_rollback_publishes_a_copy_of_the_earlier_version_and_keeps_the_draft(reviewed):
    TextRule.objects.all().delete()
    version_publish(chatbot=reviewed)
    first = reviewed.versions.get(number=1)

    copy = version_rollback(chatbot=reviewed, version=first)

    assert (copy.number, copy.copied_from_id) == (3, first.pk)
    assert list(reviewed.versions.values_list("number", flat=True)) == [3, 2, 1]
    assert len(rules("reviewed")) == 1
    assert rules("reviewed", preview="draft") == []


def test_a_shared_template_edit_does_not_reach_a_published_version(reviewed, make_template):
    template = make_template(name="voice", text="Be brief, {{shop_name}}.")
    flow = reviewed.flows.get(is_main=True)
    TemplateAssignment.objects.create(chatbot=reviewed, flow=flow, template=template)
    version_publish(chatbot=reviewed)

    template.text = "Shout, {{shop_name}}!"
    template.save()

    live = selectors.chatbot_turn_config_get(public_id="reviewed")["flows"][0]["template"]
    draft = selectors.chatbot_turn_config_get(public_id="reviewed", preview="draft")
    assert live["text"] == "Be brief, {{shop_name}}."
    assert draft["flows"][0]["template"]["text"] == "Shout, {{shop_name}}!"
    assert draft_diff(chatbot=reviewed) == [
        "Flow main: the text of its prompt template “voice” changed."
    ]


def test_a_version_holds_no_key_and_a_rotated_key_reaches_live_at_once(
    make_chatbot, make_endpoint, make_flow
):
    bot = make_chatbot(public_id="keyed", with_main_flow=False)
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.OPENAI, default_model="m", api_key="sk-first-key-123456"
    )
    make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)

    version = bot.versions.get()
    assert "api_key_stored" not in json.dumps(version.config)
    assert "sk-first-key" not in json.dumps(version.config)

    endpoint.api_key = SecretValue.from_plaintext("sk-rotated-key-654321")
    endpoint.save()
    stored = selectors.chatbot_turn_config_get(public_id="keyed")["flows"][0]["endpoint"]
    assert SecretValue(stored=stored["api_key_stored"]).reveal() == "sk-rotated-key-654321"


def test_a_history_revert_changes_the_draft_but_not_what_is_live(reviewed, admin_user):
    saved = Version.objects.get_for_object(reviewed).first()
    if saved is None:  # the fixture saved outside a revision: save one now
        import reversion

        with reversion.create_revision():
            reversion.add_to_revision(reviewed)
        saved = Version.objects.get_for_object(reviewed).first()
    TextRule.objects.all().delete()
    version_publish(chatbot=reviewed)
    reviewed.refresh_from_db()
    live = reviewed.live_version_id

    configuration_revert(version=saved, user=admin_user)

    reviewed.refresh_from_db()
    assert (reviewed.publishing, reviewed.live_version_id) == ("reviewed", live)
    assert rules("reviewed") == []
    assert len(rules("reviewed", preview="draft")) == 1


def test_publishing_is_recorded_in_the_history_and_the_audit_log(reviewed, admin_user):
    TextRule.objects.create(chatbot=reviewed, kind="exclamation", replace=".")
    version_publish(chatbot=reviewed, user=admin_user, note="calmer")

    comments = [v.revision.comment for v in Version.objects.get_for_object(reviewed)]
    assert "Published version 2: calmer" in comments
    event = AuditEvent.objects.filter(object_id=str(reviewed.pk)).latest("id")
    assert event.actor == admin_user
    assert event.detail["version"] == 2
    assert event.detail["changes"] == ["Text rules changed (1 → 2 rules)."]
    assert reviewed.versions.get(number=2).created_by == admin_user


def test_a_published_version_keeps_its_tools_while_the_draft_changes_them(reviewed):
    ChatbotTools.objects.create(chatbot=reviewed, tools=["opening_hours"], max_steps=2)
    version_publish(chatbot=reviewed)
    ChatbotTools.objects.filter(chatbot=reviewed).update(tools=[])

    live = selectors.chatbot_turn_config_get(public_id="reviewed")
    toolset = toolset_for_turn(chatbot_id=reviewed.pk, binding=live["tools"])
    assert toolset is not None and list(toolset.tools) == ["opening_hours"]
    assert toolset.max_steps == 2
    draft = selectors.chatbot_turn_config_get(public_id="reviewed", preview="draft")
    assert "tools" not in draft
    assert toolset_for_turn(chatbot_id=reviewed.pk) is None
    assert draft_diff(chatbot=reviewed) == ["Tools removed: opening_hours."]
