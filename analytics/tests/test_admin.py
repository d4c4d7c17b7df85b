"""Staff pages: transcript, dashboard (with and without data, links to the conversations behind
each bar), the index's sync button, re-analysis and the CSV / JSONL export."""

from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest
import redis
from django.conf import settings
from django.urls import reverse

from analytics.services.analysis import turn_analyse
from conversations.models import Conversation

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/analytics/conversationanalysis/dashboard/"
CONVERSATIONS = "/admin/conversations/conversation/"


@pytest.fixture
def shop(make_chatbot):
    return make_chatbot(public_id="vinhuset", name="Vinhuset", topics=["levering", "retur"])


@pytest.fixture
def analysed(shop, make_conversation, make_turn):
    """Three analysed conversations: two about delivery (one failed), one about returns."""
    delivery = make_conversation(shop, user_id="anna")
    make_turn(
        conversation=delivery,
        question="Hvornår sker levering?",
        answer="Levering tager 2 dage.",
        sources=[
            {"pageContent": "Vi leverer på 2 dage.", "metadata": {"title": "Fragt", "score": 0.7}}
        ],
    )
    late = make_conversation(shop, user_id="bo")
    make_turn(
        conversation=late,
        question="=HYPERLINK(levering)",
        answer="",
        status="failed",
        error={"code": "UPSTREAM_TIMEOUT", "message": "", "category": "network"},
    )
    returns = make_conversation(shop, user_id="carl")
    make_turn(
        conversation=returns,
        question="Kan jeg få retur? Tak!",
        answer="Ja, inden 30 dage.",
        kind="openai",
    )
    from conversations.models import Turn

    for turn in Turn.objects.all():
        turn_analyse(turn_id=str(turn.pk))
    return {"delivery": delivery, "late": late, "returns": returns}


def hrefs(page: str, needle: str) -> list[str]:
    return [
        html.unescape(h) for h in re.findall(r'href="([^"]+)"', page) if needle in html.unescape(h)
    ]


def listed(client, url: str) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200, url
    return {str(c.pk) for c in response.context["cl"].result_list}


def test_the_transcript_shows_messages_turns_analysis_and_the_passages_beside_the_answer(
    staff_client, analysed
):
    conversation = analysed["delivery"]
    response = staff_client.get(f"{CONVERSATIONS}{conversation.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Hvornår sker levering?" in page and "Levering tager 2 dage." in page
    assert "Vi leverer på 2 dage." in page and "Fragt" in page  # the context chunk
    assert "levering · score 4 · neutral · Answered" in page
    assert "Events</dt><dd>1</dd>" in page  # the stored end event
    assert "95 ms" in page  # time to first token


def test_the_conversation_list_is_read_only_and_shows_the_latest_analysis(staff_client, analysed):
    response = staff_client.get(CONVERSATIONS)
    assert response.status_code == 200
    page = response.content.decode()
    assert "levering" in page and "retur" in page
    assert reverse("admin:conversations_conversation_add") not in page
    assert staff_client.post(f"{CONVERSATIONS}{analysed['delivery'].pk}/delete/").status_code == 403


def test_the_dashboard_draws_the_range_and_every_bar_opens_its_conversations(
    staff_client, shop, analysed
):
    response = staff_client.get(DASHBOARD, {"chatbot": shop.pk})
    assert response.status_code == 200
    page = response.content.decode()
    figures = response.context["figures"]
    assert figures["conversations"] == 3 and figures["analysed"] == 3
    assert {t["value"]: t["count"] for t in figures["topics"]} == {"levering": 2, "retur": 1}
    assert [e["value"] for e in figures["errors"]] == ["network"]
    assert "<svg" in page and "Ratings" in page

    (topic_link,) = [h for h in hrefs(page, "topic=levering")]
    assert listed(staff_client, topic_link) == {
        str(analysed["delivery"].pk),
        str(analysed["late"].pk),
    }
    (error_link,) = hrefs(page, "error_category=network")
    assert listed(staff_client, error_link) == {str(analysed["late"].pk)}
    (unanswered,) = hrefs(page, "outcome=unanswered")
    assert listed(staff_client, unanswered) == {str(analysed["late"].pk)}
    day_links = hrefs(page, "day=")
    assert set().union(*(listed(staff_client, h) for h in day_links)) == {
        str(c.pk) for c in analysed.values()
    }
    ttft_links = hrefs(page, "metrics_day=")
    assert ttft_links and listed(staff_client, ttft_links[0])
    (csv_link,) = hrefs(page, "format=csv")
    assert staff_client.get(csv_link).status_code == 200


def test_the_dashboard_renders_without_data_and_rejects_a_backwards_range(staff_client, shop):
    page = staff_client.get(DASHBOARD).content.decode()
    assert "No analysed conversations in this range." in page
    assert "No finished turns in this range." in page
    bad = staff_client.get(DASHBOARD, {"date_from": "2025-02-01", "date_to": "2025-01-01"})
    assert bad.status_code == 200 and "must be on or before" in bad.content.decode()


def test_the_dashboard_is_for_staff(client, member_client):
    assert client.get(DASHBOARD).status_code == 302  # to the admin login
    assert member_client.get(DASHBOARD).status_code == 302


def test_the_sync_button_builds_the_index_and_says_what_it_did(staff_client, analysed):
    url = reverse("admin:analytics_conversationsummary_changelist")
    assert "does not exist yet" in staff_client.get(url).content.decode()
    response = staff_client.post(reverse("admin:analytics_conversationsummary_sync"), follow=True)
    page = response.content.decode()
    assert "Sync finished in" in page and "3 new AI calls" in page
    assert "3 conversations indexed" in page
    assert "Hvornår sker levering?" in page


def test_re_analysis_of_a_range_is_queued_on_the_analytics_queue(staff_client, shop, analysed):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("analytics")
    response = staff_client.post(
        reverse("admin:analytics_reanalyse"),
        {"date_from": "2000-01-01", "date_to": "2100-01-01", "chatbot": shop.pk},
        follow=True,
    )
    assert "Re-analysis of 3 turns queued" in response.content.decode()
    (message,) = [json.loads(m) for m in broker.lrange("analytics", 0, -1)]
    broker.delete("analytics")
    assert message["headers"]["task"] == "analytics.tasks.reanalyse_range"


# --- export ---------------------------------------------------------------------------------------------


def test_the_csv_export_has_one_row_per_conversation_with_its_analysis(
    staff_client, shop, analysed
):
    response = staff_client.get("/api/analytics/export", {"format": "csv", "chatbot": "vinhuset"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    by_id = {row["conversation_id"]: row for row in rows}
    assert set(by_id) == {str(c.pk) for c in analysed.values()}
    delivery = by_id[str(analysed["delivery"].pk)]
    assert (delivery["topic"], delivery["score"], delivery["outcome"]) == (
        "levering",
        "4",
        "answered",
    )
    assert delivery["first_question"] == "Hvornår sker levering?" and delivery["turns"] == "1"
    late = by_id[str(analysed["late"].pk)]
    assert late["first_question"] == "'=HYPERLINK(levering)"  # never a live formula
    assert late["failed_turns"] == "1" and late["outcome"] == "unanswered"


def test_the_jsonl_export_lists_every_turns_analysis_and_honours_the_range(staff_client, analysed):
    response = staff_client.get("/api/analytics/export", {"format": "jsonl", "from": "2000-01-01"})
    lines = [
        json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
    ]
    assert len(lines) == 3
    returns = next(x for x in lines if x["conversation_id"] == str(analysed["returns"].pk))
    assert returns["topic"] == "retur" and returns["sentiment"] == "positive"
    assert [a["topic"] for a in returns["analyses"]] == ["retur"]
    empty = staff_client.get("/api/analytics/export", {"format": "jsonl", "to": "2000-01-01"})
    assert b"".join(empty.streaming_content) == b""
    bad = staff_client.get("/api/analytics/export", {"format": "xlsx"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    garbled = staff_client.get("/api/analytics/export", {"format": "csv", "from": "soon"})
    assert garbled.status_code == 400 and garbled["Content-Type"] == "application/json"


def test_the_admin_action_exports_the_selected_conversations(staff_client, analysed):
    chosen = analysed["returns"]
    response = staff_client.post(
        CONVERSATIONS, {"action": "export_csv", "_selected_action": [str(chosen.pk)]}
    )
    assert response.status_code == 200
    rows = list(
        csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig")))
    )
    assert [row["conversation_id"] for row in rows] == [str(chosen.pk)]
    assert Conversation.objects.count() == 3


def test_helpdesk_ratings_show_on_the_dashboard_and_link_to_their_conversations(
    staff_client, shop, analysed
):
    from django.apps import apps

    try:
        rating = apps.get_model("helpdesk", "ConversationRating")
    except LookupError:
        pytest.skip("the helpdesk app has no ConversationRating model (yet)")
    rating.objects.create(conversation=analysed["delivery"], score=5)
    page = staff_client.get(DASHBOARD).content.decode()
    (link,) = hrefs(page, "rating=5")
    assert listed(staff_client, link) == {str(analysed["delivery"].pk)}


def test_the_dashboard_compares_sequential_and_parallel_routing(
    staff_client, shop, make_conversation, make_turn
):
    from analytics.services.metrics import turn_metrics_record

    for mode, routing_ms, outcome in (
        ("sequential", 300, None),
        ("parallel", 200, "released"),
        ("parallel", 250, "aborted"),
    ):
        turn = make_turn(
            conversation=make_conversation(shop), question="q", timings={"routing_ms": routing_ms}
        )
        turn.route = {"mode": mode, **({"parallel": outcome} if outcome else {})}
        turn.save(update_fields=["route"])
        turn_metrics_record(turn=turn)

    response = staff_client.get(DASHBOARD)
    rows = {r["routing_mode"]: r for r in response.context["execution"]}
    assert rows["parallel"]["main_flow_released"] == 1
    assert rows["parallel"]["main_flow_calls_aborted"] == 1
    assert rows["sequential"]["routed_turns"] == 1
    page = " ".join(response.content.decode().split())
    assert "Routing: sequential against parallel" in page
    assert "<td>1 / 1</td>" in page and "200 (200.0 per answer)" in page


def test_the_dashboard_counts_only_the_members_shops_not_bots_granted_as_an_api_user(
    client, make_conversation
):
    from django.contrib.auth import get_user_model

    from accounts.models import Role
    from chatbots.tests.factories import create_chatbot, create_member, create_shop

    own = create_chatbot(public_id="own-bot", shop=create_shop(slug="own"))
    other = create_chatbot(public_id="other-bot", shop=create_shop(slug="other"))
    make_conversation(own)
    make_conversation(other)
    make_conversation(other)
    user = get_user_model().objects.create_user("shop-admin", password="pw", is_staff=True)
    create_member(user=user, shop=own.shop, role=Role.ADMIN)
    other.api_users.add(user)  # an integration account of the other shop, say
    client.force_login(user)

    response = client.get(DASHBOARD)

    assert response.status_code == 200
    assert response.context["figures"]["conversations"] == 1


def test_the_dashboard_shows_handoffs_first_human_replies_and_csat_per_agent(
    staff_client, shop, analysed
):
    import datetime as dt

    from django.contrib.auth.models import User
    from django.utils import timezone

    from conversations.models import Message
    from helpdesk.models import ConversationRating

    agent = User.objects.create_user("maja", first_name="Maja", password="x" * 12)
    handed = analysed["delivery"]
    handed_at = timezone.now() - dt.timedelta(minutes=10)
    Conversation.objects.filter(pk=handed.pk).update(handoff_at=handed_at, assigned_agent=agent)
    reply = Message.objects.create(
        conversation=handed, role=Message.Role.AGENT, content="Hej!", sequence=99
    )
    Message.objects.filter(pk=reply.pk).update(created_at=handed_at + dt.timedelta(seconds=90))
    ConversationRating.objects.create(conversation=handed, score=4)

    page = html.unescape(staff_client.get(DASHBOARD).content.decode())

    people = page[page.index("People: handoffs and agents") :]
    people = people[: people.index("</div>")]
    assert "<strong>1</strong> of 3 conversations (33 %)" in people
    assert "median <strong>90.0 s</strong>" in people
    assert re.search(r"<th scope=\"row\">Maja</th><td>4.0</td><td>1</td>", people)
