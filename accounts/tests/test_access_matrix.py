"""The persona matrix of docs/access.md, run cell by cell: the owner, admin, agent and viewer of
shop A, the same of shop B, a staff user of no shop, an API user of A and an operator, against
every admin page (list, add, change, delete, history of every registered model, on an object of
their own shop and of the other), the staff APIs, the conversation APIs and the exports.

Each cell asserts one exact status, and every response a persona gets is searched for the
other shop's marker: nothing of shop B may appear in what a member of shop A is shown.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import AuditEvent, Invitation, Membership, Role, Shop
from analytics.models import ConversationAnalysis, ConversationSummary, TurnMetrics
from analytics.services.conversation_index import conversation_index_sync
from chatbots.models import KnowledgeEntry
from chatbots.tests.factories import (
    create_chatbot,
    create_endpoint,
    create_entry,
    create_kb,
    create_template,
)
from conversations.models import AICall, Conversation
from conversations.services import conversation_start, message_submit
from helpdesk.models import ConversationRating, Handoff, HelpdeskConnection
from images.models import ImageUpload
from inbox.models import CannedResponse, HandoffRule
from knowledge.models import KnowledgeDocument
from monitoring.models import ErrorLog
from orders.models import OrderSource
from quality.models import AnswerCheck, AnswerFeedback
from tools.models import ChatbotTools, HttpTool, McpServer

pytestmark = pytest.mark.django_db

User = get_user_model()
MARKER = {"a": "zzshopa", "b": "zzshopb"}

# --- the personas -------------------------------------------------------------------------------

MEMBERS = [
    (f"{role} of {shop}", shop, role)
    for shop in ("a", "b")
    for role in (Role.OWNER, Role.ADMIN, Role.AGENT, Role.VIEWER)
]
PERSONAS = [name for name, _, _ in MEMBERS] + ["staff of no shop", "api user of a", "operator"]


def _shop_of(persona: str) -> str | None:
    return next((shop for name, shop, _ in MEMBERS if name == persona), None)


def _role_of(persona: str) -> str:
    for name, _, role in MEMBERS:
        if name == persona:
            return role
    return {"staff of no shop": "none", "api user of a": "api", "operator": "operator"}[persona]


# --- the world: two shops with one of everything, each named with its shop's marker ----------


def _shop_world(key: str) -> dict:
    m = MARKER[key]
    shop = Shop.objects.create(slug=m, name=f"{m} shop")
    bot = create_chatbot(shop=shop, public_id=f"{m}-bot", name=f"{m} bot")
    endpoint = create_endpoint(shop=shop, name=f"{m} endpoint")
    template = create_template(shop=shop, name=f"{m} template")
    kb = create_kb(chatbot=bot, name=f"{m} kb")
    entry = create_entry(knowledge_base=kb, title=f"{m} entry")
    document = KnowledgeDocument.objects.create(
        knowledge_base=kb, title=f"{m} document", text=f"{m} pasted text"
    )
    source = OrderSource.objects.create(
        chatbot=bot,
        name=f"{m} orders",
        kind="shopify",
        base_url=f"https://{m}.example",
        store_code="",
    )
    helpdesk = HelpdeskConnection.objects.create(
        chatbot=bot, kind="freshdesk", domain=f"{m}.freshdesk.com", agent_email=f"a@{m}.example"
    )
    tools = ChatbotTools.objects.create(chatbot=bot, tools=["opening_hours"])
    mcp_server = McpServer.objects.create(shop=shop, name=f"{m}-mcp", url=f"https://{m}.example")
    http_tool = HttpTool.objects.create(
        shop=shop, name=f"{m}-http", description=m, url=f"https://{m}.example/x"
    )
    handoff_rule = HandoffRule.objects.create(chatbot=bot, keywords=f"{m} keyword")
    answer_check = AnswerCheck.objects.create(
        chatbot=bot, question=f"{m} check question", must_contain=[f"{m} phrase"]
    )
    canned = CannedResponse.objects.create(shop=shop, shortcut=f"{m}-canned", text=f"{m} text")
    conversation = conversation_start(chatbot=bot, user_id=f"{m}-visitor")
    turn, _ = message_submit(conversation=conversation, text=f"{m} private question")
    AICall.objects.create(
        chatbot=bot,
        conversation=conversation,
        turn=turn,
        endpoint_kind="builtin",
        endpoint_name=endpoint.name,
        flow="main",
        purpose="answer",
        question=f"{m} private question",
        answer=f"{m} private answer",
        model=f"{m}-model",
    )
    analysis = ConversationAnalysis.objects.create(
        turn=turn, conversation=conversation, chatbot=bot, topic=f"{m} topic", outcome="answered"
    )
    metrics = TurnMetrics.objects.create(
        turn=turn,
        chatbot=bot,
        conversation=conversation,
        flow=f"{m}-flow",
        status="completed",
        created_at=timezone.now(),
    )
    image = ImageUpload.objects.create(
        conversation=conversation,
        chatbot=bot,
        mime="image/png",
        size=1,
        received_size=1,
        width=1,
        height=1,
        sha256="0" * 64,
        storage_name=f"{m}.png",
        original_name=f"{m}.png",
    )
    handoff = Handoff.objects.create(
        conversation=conversation, kind="ticket", mode="ticket", reason=f"{m} reason"
    )
    answer = conversation.messages.create(role="assistant", content=f"{m} answer", sequence=90)
    feedback = AnswerFeedback.objects.create(
        message=answer, conversation=conversation, chatbot=bot, value="down", comment=f"{m} vote"
    )
    rating = ConversationRating.objects.create(
        conversation=conversation, score=5, comment=f"{m} comment"
    )
    error = ErrorLog.objects.create(
        category="network", code="X", message=f"{m} error", chatbot=bot, shop=shop
    )
    invitation = Invitation.objects.create(
        shop=shop,
        email=f"{m}-invited@example.com",
        role="agent",
        token_hash=f"{m:0>64}"[-64:],
        expires_at=timezone.now() + datetime.timedelta(days=7),
    )
    audit = AuditEvent.objects.create(
        shop=shop, actor_label=f"{m}-someone", action="read", object_label=f"{m} audited"
    )
    members = {}
    for name, shop_key, role in MEMBERS:
        if shop_key == key:
            user = User.objects.create_user(f"{m}-{role}", password="pw", is_staff=True)
            members[name] = Membership.objects.create(user=user, shop=shop, role=role)
    return {
        "shop": shop,
        "bot": bot,
        "conversation": conversation,
        "objects": {
            "accounts.shop": shop,
            "accounts.membership": members[f"{Role.VIEWER} of {key}"],
            "accounts.auditevent": audit,
            "accounts.invitation": invitation,
            "chatbots.chatbot": bot,
            "chatbots.aiendpoint": endpoint,
            "chatbots.prompttemplate": template,
            "chatbots.knowledgebase": kb,
            "chatbots.knowledgeentry": entry,
            "knowledge.knowledgedocument": document,
            "orders.ordersource": source,
            "helpdesk.helpdeskconnection": helpdesk,
            "inbox.handoffrule": handoff_rule,
            "inbox.cannedresponse": canned,
            "tools.chatbottools": tools,
            "tools.mcpserver": mcp_server,
            "tools.httptool": http_tool,
            "quality.answercheck": answer_check,
            "quality.answerfeedback": feedback,
            "helpdesk.handoff": handoff,
            "helpdesk.conversationrating": rating,
            "conversations.conversation": conversation,
            "analytics.conversationanalysis": analysis,
            "analytics.turnmetrics": metrics,
            "images.imageupload": image,
            "monitoring.errorlog": error,
        },
    }


@pytest.fixture
def world():
    a, b = _shop_world("a"), _shop_world("b")
    conversation_index_sync()
    for key, shop_world in (("a", a), ("b", b)):
        summary = ConversationSummary.objects.get(conversation_id=shop_world["conversation"].pk)
        shop_world["objects"]["analytics.conversationsummary"] = summary
        assert MARKER[key] in summary.first_question
    api_user = User.objects.create_user("api-user-of-a", password="pw")
    a["bot"].api_users.add(api_user)
    User.objects.create_user("staff-of-no-shop", password="pw", is_staff=True)
    User.objects.create_superuser("operator", password="pw")
    return {"a": a, "b": b}


def client_for(persona: str) -> Client:
    client = Client()
    if persona == "api user of a":
        token = RefreshToken.for_user(User.objects.get(username="api-user-of-a")).access_token
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client
    if persona == "staff of no shop":
        username = "staff-of-no-shop"
    elif persona == "operator":
        username = "operator"
    else:
        username = f"{MARKER[_shop_of(persona)]}-{_role_of(persona)}"
    client.force_login(User.objects.get(username=username))
    return client


def assert_nothing_of_the_other_shop(persona: str, response, where: str) -> None:
    if persona == "operator":
        return
    own = _shop_of(persona) or ("a" if persona == "api user of a" else None)
    hidden = [m for key, m in MARKER.items() if key != own]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode(errors="replace").lower()
    # What the caller sent is echoed back (e.g. the user id asked about): that is not a leak.
    for part in where.lower().replace("?", "/").replace("&", "/").replace("=", "/").split("/"):
        if any(marker in part for marker in hidden):
            text = text.replace(part, "")
    for marker in hidden:
        assert marker not in text, f"{persona} saw {marker} at {where}"


# --- the admin matrix, as data ---------------------------------------------------------------------
# Columns: list, add, change, delete, history of an object of the persona's own shop, then
# change, delete, history of an object of the other shop (what an unknown id also gets).
# 302 on a change/delete/history page is the admin's "does not exist" redirect.

OK5 = "200 200 200 200 200"
DENIED = "403 403 403 403 302 | 403 403 302"
CONFIG = {
    "owner": f"{OK5} | 302 302 302",
    "admin": f"{OK5} | 302 302 302",
    "agent": DENIED,
    "viewer": DENIED,
    "none": DENIED,
}
# Models with reversion's history (chatbots, endpoints, templates, knowledge bases) check the
# permission before looking the object up: 403 on every history page for those without one.
DENIED_VERSIONED = "403 403 403 403 403 | 403 403 403"
VERSIONED = CONFIG | {role: DENIED_VERSIONED for role in ("agent", "viewer", "none")}
READ_ONLY = {  # the analytics lists: nobody adds, changes or deletes
    role: "200 403 200 403 200 | 302 403 302" for role in ("owner", "admin", "agent", "viewer")
} | {"none": DENIED, "operator": "200 403 200 403 200"}
CONVERSATION = {  # its own transcript page answers 404 for what it does not show
    role: "200 403 200 403 200 | 404 403 302" for role in ("owner", "admin", "agent", "viewer")
} | {"none": "403 403 404 403 302 | 404 403 302", "operator": "200 403 200 403 200"}
HANDLED = {  # handoffs and ratings: agents act on them, operators may delete
    role: "200 403 200 403 200 | 302 403 302" for role in ("owner", "admin", "agent", "viewer")
} | {"none": DENIED, "operator": "200 403 200 200 200"}
ERROR_LOG = {
    "owner": "200 403 200 403 200 | 302 403 302",
    "admin": "200 403 200 403 200 | 302 403 302",
    "agent": DENIED,
    "viewer": DENIED,
    "none": DENIED,
    "operator": "200 403 200 200 200",
}
ADMIN_MATRIX: dict[str, dict[str, str]] = {
    "chatbots.chatbot": VERSIONED,
    "chatbots.aiendpoint": VERSIONED,
    "chatbots.prompttemplate": VERSIONED,
    "chatbots.knowledgebase": VERSIONED,
    "chatbots.knowledgeentry": CONFIG,
    "knowledge.knowledgedocument": CONFIG,
    "orders.ordersource": CONFIG,
    "helpdesk.helpdeskconnection": CONFIG,
    "inbox.handoffrule": CONFIG,
    "inbox.cannedresponse": CONFIG,
    "tools.chatbottools": CONFIG,
    "tools.mcpserver": CONFIG,
    "tools.httptool": CONFIG,
    "quality.answercheck": CONFIG,
    "quality.answerfeedback": READ_ONLY,
    "conversations.conversation": CONVERSATION,
    "analytics.conversationanalysis": READ_ONLY,
    "analytics.turnmetrics": READ_ONLY,
    "analytics.conversationsummary": READ_ONLY,
    "images.imageupload": HANDLED,
    "helpdesk.handoff": HANDLED,
    "helpdesk.conversationrating": HANDLED,
    "monitoring.errorlog": ERROR_LOG,
    "accounts.shop": {
        "owner": "200 403 200 403 200 | 302 403 302",
        **{r: "200 403 200 403 200 | 302 403 302" for r in ("admin", "agent", "viewer")},
        "none": DENIED,
    },
    "accounts.membership": {
        # Owners invite (accounts.invitation); adding by username is the operators'.
        "owner": "200 403 200 200 200 | 302 302 302",
        **{r: DENIED for r in ("admin", "agent", "viewer", "none")},
    },
    "accounts.invitation": {
        "owner": f"{OK5} | 302 302 302",
        **{r: DENIED for r in ("admin", "agent", "viewer", "none")},
    },
    "accounts.auditevent": {
        "owner": "200 403 200 403 200 | 302 403 302",
        **{r: DENIED for r in ("admin", "agent", "viewer", "none")},
        "operator": "200 403 200 403 200",
    },
}
OPERATOR_DEFAULT = OK5
# Registered models with no shop (the platform's): members get 403 on the list and the add page.
PLATFORM_LIST_ADD = {"member": "403 403", "operator": None}


def _url(model, page: str, pk=None) -> str:
    base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    if page == "list":
        return base
    if page == "add":
        return base + "add/"
    return f"{base}{pk}/{page + '/' if page != 'change' else 'change/'}"


def _expected(label: str, role: str) -> tuple[list[int], list[int]]:
    row = ADMIN_MATRIX[label].get(role)
    if row is None:  # the operator, where no special row is given
        row = OPERATOR_DEFAULT
    own, _, other = row.partition("|")
    return [int(s) for s in own.split()], [int(s) for s in other.split()]


def _pk(obj):
    return str(obj.pk)


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_admin_page_answers_each_persona_exactly_and_shows_nothing_of_the_other_shop(
    world, persona
):
    client = client_for(persona)
    role = _role_of(persona)
    own_key = _shop_of(persona)
    failures = []

    def check(url: str, expected: int) -> None:
        response = client.get(url)
        if response.status_code != expected:
            failures.append(f"{url}: {response.status_code}, expected {expected}")
        if response.status_code == 200:
            assert_nothing_of_the_other_shop(persona, response, url)

    for model in admin.site._registry:
        label = model._meta.label_lower
        if role == "api":
            # Not staff: every admin page sends them to the login page.
            check(_url(model, "list"), 302)
            continue
        if label not in ADMIN_MATRIX:
            if label == "monitoring.workersoverview" and role == "operator":
                check(_url(model, "list"), 200)
                continue
            expected = 200 if role == "operator" else 403
            check(_url(model, "list"), expected)
            continue
        own, other = _expected(label, role)
        check(_url(model, "list"), own[0])
        check(_url(model, "add"), own[1])
        if role == "operator":
            targets = [("own", world["a"]), ("own", world["b"])]
        elif own_key is None:
            targets = [("other", world["a"]), ("other", world["b"])]
        else:
            other_key = "b" if own_key == "a" else "a"
            targets = [("own", world[own_key]), ("other", world[other_key])]
        for kind, shop_world in targets:
            obj = shop_world["objects"][label]
            statuses = own[2:] if kind == "own" else other
            if role == "none":
                statuses = other
            for page, expected in zip(("change", "delete", "history"), statuses, strict=True):
                check(_url(model, page, _pk(obj)), expected)
        # An id that does not exist gets what another shop's object gets.
        if role not in ("operator",):
            unknown = (
                str(uuid.uuid4())
                if label
                in (
                    "conversations.conversation",
                    "analytics.conversationsummary",
                    "images.imageupload",
                    "helpdesk.handoff",
                )
                else "987654321"
            )
            for page, expected in zip(("change", "delete", "history"), other, strict=True):
                check(_url(model, page, unknown), expected)
    assert not failures, "\n".join(failures)


def test_the_admin_index_and_the_dashboard_name_only_the_personas_own_shop(world):
    for persona in PERSONAS:
        if persona == "api user of a":
            continue
        client = client_for(persona)
        for url in ("/admin/", "/admin/analytics/conversationanalysis/dashboard/"):
            response = client.get(url)
            assert response.status_code in (200, 403), (persona, url)
            assert_nothing_of_the_other_shop(persona, response, url)
    own = client_for("viewer of a").get("/admin/").content.decode()
    assert "zzshopa shop" in own  # the header names the current shop


def test_an_action_on_another_shops_row_changes_nothing(world):
    bot_b = world["b"]["bot"]
    key = bot_b.widget_key
    client = client_for("admin of a")
    response = client.post(
        "/admin/chatbots/chatbot/",
        {"action": "regenerate_widget_key", "_selected_action": [bot_b.pk]},
    )
    assert response.status_code == 302
    bot_b.refresh_from_db()
    assert bot_b.widget_key == key


def test_a_knowledge_entry_cannot_be_added_to_another_shops_knowledge_base(world):
    client = client_for("admin of a")
    kb_b = world["b"]["objects"]["chatbots.knowledgebase"]
    response = client.post(
        "/admin/chatbots/knowledgeentry/add/",
        {"knowledge_base": kb_b.pk, "title": "planted", "tags": "", "text": "x"},
    )
    assert response.status_code == 200  # the form again, with "select a valid choice"
    assert not KnowledgeEntry.objects.filter(title="planted").exists()


# --- the APIs ------------------------------------------------------------------------------------
# (method, url template, {role: status}); roles not listed get `default`.

MEMBER_ROLES = ("owner", "admin", "agent", "viewer")


def _api_cells(world) -> list[tuple[str, str, dict | None, dict[str, int]]]:
    conv_a = world["a"]["conversation"].pk
    member_read = {"none": 403, "api": 403, "operator": 200} | {r: 200 for r in MEMBER_ROLES}
    operators = {"operator": 200} | {r: 403 for r in (*MEMBER_ROLES, "none", "api")}
    return [
        ("get", "/api/analytics/export?format=jsonl", None, member_read),
        # Naming another shop's chatbot is naming one that does not exist.
        (
            "get",
            "/api/analytics/export?format=csv&chatbot=zzshopb-bot",
            None,
            {"none": 403, "api": 403, "operator": 200} | {r: "404-in-a" for r in MEMBER_ROLES},
        ),
        ("get", "/api/messages/conversations", None, member_read),
        ("get", "/api/monitoring/processing-metrics", None, member_read),
        ("get", "/api/orders/stats", None, member_read),
        ("get", "/api/sync/stats", None, operators),
        ("post", "/api/sync/sync", {}, operators),
        ("get", "/api/monitoring/cache-stats", None, operators),
        ("get", "/api/monitoring/connection-pools", None, operators),
        ("post", "/api/monitoring/clear-cache", {}, operators),
        (
            "get",
            "/metrics",
            None,
            {"operator": 200} | {r: 403 for r in MEMBER_ROLES} | {"none": 403, "api": 401},
        ),
        # The conversation APIs, on shop A's conversation: members of A read, agents and up
        # write; shop B's staff, staff of no shop get what an unknown id gets.
        ("get", f"/api/sessions/{conv_a}/history", None, "read-a"),
        ("post", f"/api/sessions/{conv_a}/resolve", {"notes": "done"}, "write-a"),
        (
            "get",
            "/api/users/zzshopa-visitor/sessions",
            None,
            {r: 200 for r in (*MEMBER_ROLES, "none", "api", "operator")},
        ),
    ]


def _conversation_status(rule: str, persona: str) -> int:
    role, shop = _role_of(persona), _shop_of(persona)
    if role in ("operator", "api"):
        return 200
    if shop != "a":
        return 404
    if rule == "write-a" and role == Role.VIEWER:
        return 404
    return 200


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_staff_and_conversation_api_answers_each_persona_exactly(world, persona):
    client = client_for(persona)
    role = _role_of(persona)
    failures = []
    for method, url, body, expected in _api_cells(world):
        status = (
            _conversation_status(expected, persona) if isinstance(expected, str) else expected[role]
        )
        if status == "404-in-a":
            status = 404 if _shop_of(persona) == "a" else 200
        if body is None:
            response = getattr(client, method)(url)
        else:
            response = getattr(client, method)(url, body, content_type="application/json")
        if response.status_code != status:
            failures.append(f"{method.upper()} {url}: {response.status_code}, expected {status}")
        assert_nothing_of_the_other_shop(persona, response, url)
        Conversation.objects.filter(pk=world["a"]["conversation"].pk).update(
            status="active", is_resolved=False
        )
    assert not failures, "\n".join(failures)


def test_an_export_holds_exactly_the_personas_shops_conversations(world):
    for persona, expected in (
        ("viewer of a", {"zzshopa"}),
        ("agent of b", {"zzshopb"}),
        ("operator", {"zzshopa", "zzshopb"}),
    ):
        response = client_for(persona).get("/api/analytics/export?format=jsonl")
        text = b"".join(response.streaming_content).decode()
        assert {m for m in MARKER.values() if m in text} == expected, persona
    listing = client_for("admin of b").get("/api/messages/conversations").json()
    assert [c["chatbot"] for c in listing["conversations"]] == ["zzshopb-bot"]
    users = client_for("owner of b").get("/api/users/zzshopa-visitor/sessions").json()
    assert users["count"] == 0
