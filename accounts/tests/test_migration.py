"""Upgrading a database from before shops: its data moves into one default shop."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("chatbots", "0005_aiendpoint_default_model"), ("monitoring", "0001_initial")]
AFTER = [("chatbots", "0008_shop_required"), ("monitoring", "0003_errorlog_shop_fill")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_existing_chatbots_endpoints_templates_staff_and_error_rows_move_into_a_default_shop():
    old = migrate(BEFORE)
    try:
        User = old.get_model("auth", "User")
        staff = User.objects.create(username="old-staff", is_staff=True)
        User.objects.create(username="old-operator", is_staff=True, is_superuser=True)
        User.objects.create(username="api-client")
        bot = old.get_model("chatbots", "Chatbot").objects.create(
            public_id="legacy", name="Legacy", widget_key="pk_legacy"
        )
        old.get_model("chatbots", "AIEndpoint").objects.create(name="Builtin", kind="builtin")
        old.get_model("chatbots", "PromptTemplate").objects.create(name="voice", text="Hi")
        old.get_model("monitoring", "ErrorLog").objects.create(
            category="network", code="X", chatbot_id=bot.pk
        )
        old.get_model("monitoring", "ErrorLog").objects.create(category="worker", code="Y")

        new = migrate(AFTER)
        shop = new.get_model("accounts", "Shop").objects.get()
        assert (shop.slug, shop.name) == ("default", "Default shop")
        for name in ("Chatbot", "AIEndpoint", "PromptTemplate"):
            assert list(
                new.get_model("chatbots", name).objects.values_list("shop_id", flat=True)
            ) == [shop.pk]
        rows = dict(new.get_model("monitoring", "ErrorLog").objects.values_list("code", "shop_id"))
        assert rows == {"X": shop.pk, "Y": None}  # a platform failure stays the platform's
        memberships = new.get_model("accounts", "Membership").objects.values_list("user_id", "role")
        # Staff keep seeing what they saw; operators need no membership; API users get none.
        assert list(memberships) == [(staff.pk, "admin")]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
