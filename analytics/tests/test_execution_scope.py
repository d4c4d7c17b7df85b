"""The dashboard's routing statistics (#22 item 5) are a shop's own: the cross-shop probe of
that new table."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from accounts.models import Role
from analytics.services.metrics import turn_metrics_record
from chatbots.tests.factories import create_chatbot, create_member, create_shop

DASHBOARD = "/admin/analytics/conversationanalysis/dashboard/"


def routed(make_conversation, make_turn, bot, *, mode: str, routing_ms: int, outcome=None):
    turn = make_turn(
        conversation=make_conversation(bot), question="q", timings={"routing_ms": routing_ms}
    )
    turn.route = {"mode": mode, **({"parallel": outcome} if outcome else {})}
    turn.save(update_fields=["route"])
    turn_metrics_record(turn=turn)


def test_a_shops_admin_sees_the_routing_statistics_of_its_own_bots_only(
    client, make_conversation, make_turn
):
    own = create_chatbot(public_id="own-routing", shop=create_shop(slug="own-routing"))
    other = create_chatbot(public_id="other-routing", shop=create_shop(slug="other-routing"))
    routed(make_conversation, make_turn, own, mode="sequential", routing_ms=300)
    routed(make_conversation, make_turn, other, mode="sequential", routing_ms=900)
    routed(make_conversation, make_turn, other, mode="parallel", routing_ms=200, outcome="aborted")
    user = get_user_model().objects.create_user("routing-admin", password="pw", is_staff=True)
    create_member(user=user, shop=own.shop, role=Role.ADMIN)
    other.api_users.add(user)  # granted as an API user: not a member of the other shop
    client.force_login(user)

    response = client.get(DASHBOARD)

    assert response.status_code == 200
    rows = response.context["execution"]
    assert [(r["routing_mode"], r["routed_turns"]) for r in rows] == [("sequential", 1)]
    assert rows[0]["router_wait_ms"] == {"p50": 300.0, "p95": 300.0}
