"""Secrets and tenant isolation, checked on everything the reliability run produced.

Runs last in the module order on purpose: it scans every response body and WebSocket frame the
clients of the earlier tests received, every log line of the processes they started and of this
process, what this test adds (failing upstream calls, admin pages, the public config), and an
export — for every secret value configured during the run. Then it tries the ways one shop's
visitor or API user could reach another shop's conversation.
"""

from __future__ import annotations

import asyncio
import io
import json
import re

import httpx
import pytest
import websockets
from django.core.management import call_command
from django.test import Client

from tests.fakes.flowise import FakeFlowise
from tests.fakes.openai import FakeOpenAI
from tests.reliability import harness
from tests.reliability.harness import ORIGIN, follow

pytestmark = [pytest.mark.django_db(transaction=True)]

PRIVATE = "my order 4711 goes to Elmegade 12"


def secret_needles() -> list[str]:
    """Every configured secret, and its random part alone (in case a label was cut off)."""
    needles = []
    for value in harness.SECRETS:
        needles.append(value)
        random_part = re.sub(r"^[a-z]+", "", value)
        if len(random_part) >= 16:
            needles.append(random_part)
    return needles


def hits(text: str, needles: list[str]) -> list[str]:
    return [needle for needle in needles if needle in text]


def configure_secrets(flowise, openai) -> dict[str, str]:
    """A shop with every kind of secret this product stores."""
    from chatbots.models import KnowledgeBase
    from helpdesk.models import HelpdeskConnection
    from orders.models import OrderSource

    bot = harness.flowise_bot(flowise, "secret-shop")
    pinecone = KnowledgeBase.objects.create(
        chatbot=bot,
        name="products",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="products",
        host="products-abc.svc.pinecone.io",
        api_key=harness.secret("pckey"),
    )
    flow = bot.flows.get(is_main=True)
    flow.knowledge_base = pinecone
    flow.save(update_fields=["knowledge_base"])
    OrderSource.objects.create(
        chatbot=bot,
        name="Secret Shopify",
        kind="shopify",
        base_url="https://secret-shop.myshopify.com",
        access_token=harness.secret("shpat"),
        client_secret=harness.secret("shsecret"),
    )
    HelpdeskConnection.objects.create(
        chatbot=bot, kind="freshdesk", domain="secretshop", api_key=harness.secret("fdkey")
    )
    # An OpenAI-compatible bot whose key the server refuses: its 401 echoes a masked key.
    harness.openai_bot(openai, "secret-openai")
    openai.scenario["api_key"] = "sk-the-server-expects-another-key"
    return {"flowise": "secret-shop", "openai": "secret-openai"}


def test_no_secret_value_appears_in_any_response_log_line_or_export(rstack, caplog):
    from django.contrib.auth.models import User

    from chatbots.models import AIEndpoint, Chatbot, KnowledgeBase
    from conversations.models import AICall, Message, StreamEvent, Turn
    from helpdesk.models import HelpdeskConnection
    from monitoring.models import ErrorLog
    from orders.models import OrderSource

    caplog.set_level("DEBUG")
    with FakeFlowise() as flowise, FakeOpenAI() as openai:
        bots = configure_secrets(flowise, openai)
        flowise.scenario.update(answer="Your order ships tomorrow.")
        ok = harness.post_message(rstack.base_url, bots["flowise"], "Where is my order?")
        refused = harness.post_message(rstack.base_url, bots["openai"], "Hello?")
        seen_ok = asyncio.run(follow(ok, stall=15, timeout=30))
        seen_refused = asyncio.run(follow(refused, stall=15, timeout=30))
        harness.poll(rstack.base_url, ok)
        harness.poll(rstack.base_url, refused)
        sent_key = flowise.requests[-1].headers.get("authorization", "")
    assert seen_ok.text == "Your order ships tomorrow."
    assert seen_refused.events[-2]["data"]["code"] == "UPSTREAM_AUTH"
    # The key did travel where it belongs: to the AI service, in the Authorization header.
    assert any(needle in sent_key for needle in secret_needles())

    harness.keep(httpx.get(f"{rstack.base_url}/api/conversation-config/secret-shop").text)
    staff = User.objects.create_superuser("secrets-admin", "a@shop.example", "pw-123456789")
    admin = Client()
    admin.force_login(staff)
    pages = [
        "/admin/chatbots/aiendpoint/",
        *(
            f"/admin/chatbots/aiendpoint/{pk}/change/"
            for pk in AIEndpoint.objects.values_list("pk", flat=True)
        ),
        *(
            f"/admin/chatbots/knowledgebase/{pk}/change/"
            for pk in KnowledgeBase.objects.values_list("pk", flat=True)
        ),
        *(
            f"/admin/orders/ordersource/{pk}/change/"
            for pk in OrderSource.objects.values_list("pk", flat=True)
        ),
        *(
            f"/admin/helpdesk/helpdeskconnection/{pk}/change/"
            for pk in HelpdeskConnection.objects.values_list("pk", flat=True)
        ),
        "/admin/monitoring/errorlog/",
        *(
            f"/admin/monitoring/errorlog/{pk}/change/"
            for pk in ErrorLog.objects.values_list("pk", flat=True)[:5]
        ),
        *(
            f"/admin/chatbots/chatbot/{pk}/change/"
            for pk in Chatbot.objects.filter(public_id__startswith="secret-").values_list(
                "pk", flat=True
            )
        ),
    ]
    for page in pages:
        response = admin.get(page)
        assert response.status_code in (200, 302), (page, response.status_code)
        harness.keep(response.content.decode(errors="replace"))

    export = io.StringIO()
    call_command("export_chatbots", stdout=export)
    document = export.getvalue()
    assert '"secret-shop"' in document

    needles = secret_needles()
    assert len(needles) >= 8  # endpoints, Pinecone, shop token and secret, helpdesk key
    stored = json.dumps(
        [
            list(ErrorLog.objects.values("message", "context", "stack", "suggestion")),
            list(AICall.objects.values("question", "answer", "error_code")),
            list(Turn.objects.values("error_message", "route", "timings")),
            list(StreamEvent.objects.values("data")),
            list(Message.objects.values("content", "metadata")),
        ],
        default=str,
    )
    found = {
        "responses and frames": sorted(
            {h for text in harness.RESPONSES for h in hits(text, needles)}
        ),
        "process logs": sorted(
            {
                f"{path.name}: {h}"
                for path in harness.LOG_FILES
                if path.exists()
                for h in hits(path.read_text(errors="replace"), needles)
            }
        ),
        "this test's log records": sorted(
            {h for r in caplog.records for h in hits(r.getMessage(), needles)}
        ),
        "export": hits(document, needles),
        "stored errors, calls and events": hits(stored, needles),
    }
    harness.record_figures(
        "secrets_scan",
        secret_values=len(harness.SECRETS),
        responses_and_frames=len(harness.RESPONSES),
        response_mb=round(sum(len(t) for t in harness.RESPONSES) / 1e6, 1),
        log_files=len([p for p in harness.LOG_FILES if p.exists()]),
        log_mb=round(sum(p.stat().st_size for p in harness.LOG_FILES if p.exists()) / 1e6, 1),
        admin_pages=len(pages),
        hits={k: len(v) for k, v in found.items()},
    )
    assert found == {k: [] for k in found}


# --- tenant isolation -------------------------------------------------------------------------------------


def _status(response: httpx.Response) -> int:
    harness.keep(response.text)
    assert PRIVATE not in response.text, response.text[:300]
    return response.status_code


def test_another_tenants_keys_tokens_and_api_users_reach_nothing(rstack):
    from django.contrib.auth.models import User
    from rest_framework_simplejwt.tokens import RefreshToken

    from chatbots.models import Chatbot

    harness.builtin_bot("tenant-a", [("Orders", "Orders ship within two days.")])
    shop_b = harness.builtin_bot("tenant-b", [("Orders", "Orders ship within a week.")])
    Chatbot.objects.filter(pk=shop_b.pk).update(allowed_origins=["https://b.example"])
    api_b = User.objects.create_user("api-b", password="pw-123456789")
    shop_b.api_users.add(api_b)
    jwt_b = {"Authorization": f"Bearer {RefreshToken.for_user(api_b).access_token}"}

    a1 = harness.post_message(rstack.base_url, "tenant-a", PRIVATE, user_id="visitor-a")
    a2 = harness.post_message(rstack.base_url, "tenant-a", "Another visitor of shop A")
    b1 = harness.post_message(
        rstack.base_url, "tenant-b", "A visitor of shop B", headers={"Origin": "https://b.example"}
    )
    asyncio.run(follow(a1, stall=15, timeout=30))
    base = rstack.base_url
    attempts: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=15) as client:

        def token(reply):
            return {"Authorization": f"Bearer {reply['conversation_token']}"}

        key_a = harness.widget_headers("tenant-a")["X-Widget-Key"]
        attempts["shop A's widget key starts a conversation on shop B"] = _status(
            client.post(
                "/api/process-message",
                json={"chatbot_id": "tenant-b", "message_text": "hi"},
                headers={"X-Widget-Key": key_a, "Origin": "https://b.example"},
            )
        )
        attempts["shop A's widget key from shop A's site on shop B"] = _status(
            client.post(
                "/api/process-message",
                json={"chatbot_id": "tenant-b", "message_text": "hi"},
                headers={"X-Widget-Key": key_a, "Origin": ORIGIN},
            )
        )
        for who, other in (("shop B's visitor", b1), ("another visitor of shop A", a2)):
            attempts[f"{who} posts into A1"] = _status(
                client.post(
                    "/api/process-message",
                    json={
                        "chatbot_id": "tenant-a",
                        "message_text": "let me in",
                        "session_id": a1["session_id"],
                    },
                    headers=token(other),
                )
            )
            attempts[f"{who} reads A1's events"] = _status(
                client.get(f"/api/stream-events/{a1['turn_id']}", headers=token(other))
            )
            attempts[f"{who} reads A1's history"] = _status(
                client.get(f"/api/sessions/{a1['session_id']}/history", headers=token(other))
            )
            attempts[f"{who} cancels A1's turn"] = _status(
                client.post(f"/api/turns/{a1['turn_id']}/cancel", headers=token(other))
            )
        attempts["shop B's API user reads A1's history"] = _status(
            client.get(f"/api/sessions/{a1['session_id']}/history", headers=jwt_b)
        )
        attempts["shop B's API user reads A1's events"] = _status(
            client.get(f"/api/stream-events/{a1['turn_id']}", headers=jwt_b)
        )
        attempts["shop B's API user starts a conversation on shop A"] = _status(
            client.post(
                "/api/process-message",
                json={"chatbot_id": "tenant-a", "message_text": "hi"},
                headers=jwt_b,
            )
        )
        listing = client.get("/api/users/visitor-a/sessions", headers=jwt_b)
        attempts["shop B's API user lists visitor A's sessions"] = _status(listing)
        assert a1["session_id"] not in listing.text
        forged = client.get(
            f"/api/stream-events/{a1['turn_id']}",
            headers={"Authorization": "Bearer " + a1["conversation_token"][:-4] + "AAAA"},
        )
        attempts["a forged token reads A1's events"] = _status(forged)

    async def websockets_of_others():
        outcomes = {}
        # B's token on A1's conversation.
        url = a1["websocket_url"] + "?token=" + b1["conversation_token"]
        async with websockets.connect(url) as ws:
            frame = await asyncio.wait_for(ws.recv(), 10)
            assert PRIVATE not in frame
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as exc:
                outcomes["shop B's token opens A1's socket"] = exc.rcvd.code if exc.rcvd else 0
        # A2's own socket asks for A1's turn.
        url = a2["websocket_url"] + "?token=" + a2["conversation_token"]
        async with websockets.connect(url) as ws:
            await asyncio.wait_for(ws.recv(), 10)
            await ws.send(
                json.dumps({"type": "resume", "turn_id": a1["turn_id"], "last_event_id": 0})
            )
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert PRIVATE not in json.dumps(frame)
            outcomes["another visitor resumes A1's turn on their socket"] = frame["error"]["code"]
        return outcomes

    ws_outcomes = asyncio.run(websockets_of_others())
    harness.record_figures("tenant_isolation", **attempts, **ws_outcomes)
    # docs/access.md: a key that is not the bot's is 401, a grant for another bot may not start
    # (403), and a conversation or turn that is not yours does not exist (404).
    expected = {attempt: 404 for attempt in attempts}
    expected["shop A's widget key starts a conversation on shop B"] = 401
    expected["shop A's widget key from shop A's site on shop B"] = 401
    expected["shop B's API user starts a conversation on shop A"] = 403
    expected["shop B's API user lists visitor A's sessions"] = 200  # an empty list
    assert attempts == expected
    assert ws_outcomes == {
        "shop B's token opens A1's socket": 4404,
        "another visitor resumes A1's turn on their socket": "TURN_NOT_FOUND",
    }
