"""The access matrix of docs/access.md: every persona against every conversation endpoint."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Membership, Role
from conversations.access import conversation_token_issue
from conversations.models import Conversation
from conversations.services import conversation_start, message_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_chatbot):
    """Two bots; a conversation of the owner, another visitor of the same bot, one of bot B."""
    bot_a = make_chatbot(public_id="bot-a", allowed_origins=["https://a.example"])
    bot_b = make_chatbot(public_id="bot-b", allowed_origins=["https://b.example"])
    owner = conversation_start(chatbot=bot_a, user_id="anna")
    turn, _ = message_submit(conversation=owner, text="my private question")
    other = conversation_start(chatbot=bot_a, user_id="bo")
    foreign = conversation_start(chatbot=bot_b, user_id="cy")
    api_user = User.objects.create_user("shop-a-server", password="pw-123456789")
    bot_a.api_users.add(api_user)
    User.objects.create_user("shop-b-server", password="pw-123456789").api_chatbots.add(bot_b)
    staff = User.objects.create_user("staff", password="pw-123456789", is_staff=True)
    Membership.objects.create(user=staff, shop=bot_a.shop, role=Role.AGENT)
    # Staff status alone grants nothing: a member of no shop is an outsider.
    User.objects.create_user("staff of no shop", password="pw-123456789", is_staff=True)
    return {
        "a": bot_a,
        "b": bot_b,
        "owner": owner,
        "turn": turn,
        "other": other,
        "foreign": foreign,
    }


def token_for(conversation: Conversation) -> str:
    return conversation_token_issue(
        conversation_id=conversation.pk, chatbot_id=conversation.chatbot_id
    )


def jwt_for(username: str) -> str:
    return str(RefreshToken.for_user(User.objects.get(username=username)).access_token)


def persona_headers(persona: str, world, settings, client) -> dict:
    if persona == "owner":
        return {"Authorization": f"Bearer {token_for(world['owner'])}"}
    if persona == "same-bot visitor":
        return {"Authorization": f"Bearer {token_for(world['other'])}"}
    if persona == "other-bot visitor":
        return {"Authorization": f"Bearer {token_for(world['foreign'])}"}
    if persona == "expired token":
        token = token_for(world["owner"])
        settings.CONVERSATION_TOKEN_MAX_AGE = -1
        return {"Authorization": f"Bearer {token}"}
    if persona == "forged token":
        return {"Authorization": "Bearer " + token_for(world["owner"])[:-3] + "abc"}
    if persona == "api user of the bot":
        return {"Authorization": f"Bearer {jwt_for('shop-a-server')}"}
    if persona == "api user of another bot":
        return {"Authorization": f"Bearer {jwt_for('shop-b-server')}"}
    if persona in ("staff", "staff of no shop"):
        # force_login: client.login() calls authenticate() without a request, which axes refuses.
        client.force_login(User.objects.get(username=persona))
        return {}
    return {}


ALLOWED = {"owner", "api user of the bot", "staff"}
PERSONAS = [
    "owner",
    "same-bot visitor",
    "other-bot visitor",
    "no credentials",
    "expired token",
    "forged token",
    "api user of the bot",
    "api user of another bot",
    "staff",
    "staff of no shop",
]


def endpoints(world):
    sid, tid = world["owner"].pk, world["turn"].pk
    return [
        ("get", f"/api/sessions/{sid}/history", None),
        ("post", f"/api/sessions/{sid}/resume", {}),
        ("get", f"/api/stream-events/{tid}", None),
        ("post", f"/api/turns/{tid}/cancel", {}),
        (
            "post",
            "/api/process-message",
            {"chatbot_id": "bot-a", "message_text": "hi", "session_id": str(sid)},
        ),
        ("post", f"/api/sessions/{sid}/resolve", {"notes": "done"}),
        ("post", f"/api/sessions/{sid}/end", {"reason": "bye"}),
    ]


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_persona_gets_exactly_what_the_matrix_says(client, world, settings, persona):
    headers = persona_headers(persona, world, settings, client)
    for method, url, body in endpoints(world):
        if body is None:
            response = getattr(client, method)(url, headers=headers)
        else:
            response = getattr(client, method)(
                url, body, content_type="application/json", headers=headers
            )
        if persona in ALLOWED:
            assert response.status_code == 200, (persona, url, response.content)
        else:
            # docs/access.md: a conversation or turn that is not yours looks like one that does
            # not exist, whatever the credentials (none, expired, forged, another bot's).
            code = "TURN_NOT_FOUND" if "/stream-events/" in url or "/turns/" in url else None
            assert response.status_code == 404, (persona, url, response.status_code)
            assert response.json()["error"]["code"] == (code or "CONVERSATION_NOT_FOUND")
            assert "my private question" not in response.content.decode()
        # Resolve/end change state: start each persona from an active conversation.
        Conversation.objects.filter(pk=world["owner"].pk).update(status="active", is_resolved=False)


def test_an_unknown_id_and_a_forbidden_id_look_the_same(client, world):
    import uuid

    headers = {"Authorization": f"Bearer {token_for(world['other'])}"}
    forbidden = client.get(f"/api/sessions/{world['owner'].pk}/history", headers=headers)
    unknown = client.get(f"/api/sessions/{uuid.uuid4()}/history", headers=headers)
    assert forbidden.status_code == unknown.status_code == 404
    assert forbidden.json() == unknown.json()


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "NOT_AUTHENTICATED"),
        ({"X-Widget-Key": "pk_wrong"}, 401, "NOT_AUTHENTICATED"),
        ({"X-Widget-Key": "RIGHT"}, 403, "ORIGIN_NOT_ALLOWED"),
        ({"X-Widget-Key": "RIGHT", "Origin": "https://evil.example"}, 403, "ORIGIN_NOT_ALLOWED"),
        ({"X-Widget-Key": "B-KEY", "Origin": "https://a.example"}, 401, "NOT_AUTHENTICATED"),
        ({"X-Widget-Key": "RIGHT", "Origin": "https://a.example"}, 201, None),
    ],
)
def test_starting_a_conversation_needs_the_widget_key_from_an_allowed_origin(
    client, world, headers, status, code
):
    headers = {
        k: {"RIGHT": world["a"].widget_key, "B-KEY": world["b"].widget_key}.get(v, v)
        for k, v in headers.items()
    }
    response = client.post(
        "/api/sessions",
        {"chatbot_id": "bot-a", "userId": "u"},
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == status, response.content
    if code:
        assert response.json()["error"]["code"] == code
    else:
        assert response.json()["conversation_token"]


def test_api_users_start_conversations_only_for_their_bots(client, world):
    ok = client.post(
        "/api/sessions",
        {"chatbot_id": "bot-a"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {jwt_for('shop-a-server')}"},
    )
    assert ok.status_code == 201
    denied = client.post(
        "/api/sessions",
        {"chatbot_id": "bot-a"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {jwt_for('shop-b-server')}"},
    )
    assert denied.status_code == 403


def test_a_browser_on_another_site_cannot_use_a_valid_token(client, world):
    response = client.get(
        f"/api/sessions/{world['owner'].pk}/history",
        headers={
            "Authorization": f"Bearer {token_for(world['owner'])}",
            "Origin": "https://evil.example",
        },
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ORIGIN_NOT_ALLOWED"


def test_user_session_lists_need_an_api_user_and_stay_within_its_bots(client, world):
    assert client.get("/api/users/anna/sessions").status_code == 401
    visitor = client.get(
        "/api/users/anna/sessions", headers={"Authorization": f"Bearer {token_for(world['owner'])}"}
    )
    assert visitor.status_code == 401
    mine = client.get(
        "/api/users/anna/sessions?type=unresolved",
        headers={"Authorization": f"Bearer {jwt_for('shop-a-server')}"},
    ).json()
    assert (
        mine["count"] == 1
        and mine["sessions"][0]["recentMessages"][0]["content"] == "my private question"
    )
    theirs = client.get(
        "/api/users/anna/sessions", headers={"Authorization": f"Bearer {jwt_for('shop-b-server')}"}
    ).json()
    assert theirs["count"] == 0


def test_jwt_obtain_and_refresh(client, world):
    tokens = client.post(
        "/api/auth/token",
        {"username": "shop-a-server", "password": "pw-123456789"},
        content_type="application/json",
    ).json()
    assert tokens["access"] and tokens["refresh"]
    refreshed = client.post(
        "/api/auth/token/refresh", {"refresh": tokens["refresh"]}, content_type="application/json"
    )
    assert refreshed.status_code == 200 and refreshed.json()["access"]
    wrong = client.post(
        "/api/auth/token",
        {"username": "shop-a-server", "password": "nope"},
        content_type="application/json",
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "NOT_AUTHENTICATED"
