"""Sessions API (seed 003): create, history, resume, resolve, end, inactivity, rate limits."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from conversations.access import conversation_token_issue
from conversations.models import Conversation, Message
from conversations.services import conversation_start, message_submit

pytestmark = pytest.mark.django_db


def create(client, bot, **body):
    return client.post(
        "/api/sessions",
        {"chatbot_id": bot.public_id, **body},
        content_type="application/json",
        headers={"X-Widget-Key": bot.widget_key, "Origin": bot.allowed_origins[0]},
    )


def auth(conversation) -> dict:
    token = conversation_token_issue(
        conversation_id=conversation.pk, chatbot_id=conversation.chatbot_id
    )
    return {"Authorization": f"Bearer {token}"}


def test_a_new_session_comes_with_its_token(client, make_chatbot):
    bot = make_chatbot()
    response = create(client, bot, userId="user_12345", metadata={"userAgent": "Mozilla"})
    assert response.status_code == 201
    body = response.json()
    conversation = Conversation.objects.get(pk=body["sessionId"])
    assert conversation.user_id == "user_12345"
    assert body["session"]["isActive"] is True and body["session"]["isResolved"] is False
    history = client.get(
        f"/api/sessions/{conversation.pk}/history",
        headers={"Authorization": f"Bearer {body['conversation_token']}"},
    )
    assert history.json()["messages"] == []


def test_history_pages_through_the_messages_in_order(
    client, make_chatbot, django_assert_num_queries
):
    bot = make_chatbot()
    conversation = conversation_start(chatbot=bot, user_id="u")
    for i in range(5):
        Message.objects.create(
            conversation=conversation, role="user", content=f"m{i}", sequence=i + 1
        )
    with django_assert_num_queries(3):
        page = client.get(
            f"/api/sessions/{conversation.pk}/history?limit=2&offset=1", headers=auth(conversation)
        ).json()
    assert [m["content"] for m in page["messages"]] == ["m1", "m2"]
    assert page["total"] == 5
    bad = client.get(f"/api/sessions/{conversation.pk}/history?limit=0", headers=auth(conversation))
    assert bad.status_code == 400


def test_resuming_an_unresolved_session_returns_its_full_history_and_context(client, make_chatbot):
    bot = make_chatbot()
    conversation = conversation_start(chatbot=bot, user_id="u")
    Conversation.objects.filter(pk=conversation.pk).update(context={"currentIntent": "order"})
    message_submit(conversation=conversation, text="where is my order?")
    body = client.post(f"/api/sessions/{conversation.pk}/resume", headers=auth(conversation)).json()
    assert body["success"] is True
    assert body["session"]["conversationContext"] == {"currentIntent": "order"}
    assert [m["content"] for m in body["history"]] == ["where is my order?"]
    assert body["history"][0]["direction"] == "incoming"


def test_resolve_and_end_change_state_and_ended_sessions_refuse_more(client, make_chatbot):
    bot = make_chatbot()
    conversation = conversation_start(chatbot=bot)
    resolved = client.post(
        f"/api/sessions/{conversation.pk}/resolve",
        {"notes": "User query fully answered"},
        content_type="application/json",
        headers=auth(conversation),
    ).json()
    assert resolved["session"]["isResolved"] is True
    assert resolved["session"]["resolutionNotes"] == "User query fully answered"
    assert (
        client.post(
            f"/api/sessions/{conversation.pk}/resume", headers=auth(conversation)
        ).status_code
        == 409
    )
    ended = client.post(
        f"/api/sessions/{conversation.pk}/end",
        {"reason": "user_request"},
        content_type="application/json",
        headers=auth(conversation),
    ).json()
    assert ended["session"]["status"] == "ended"
    again = client.post(
        f"/api/sessions/{conversation.pk}/resolve",
        {},
        content_type="application/json",
        headers=auth(conversation),
    )
    assert again.status_code == 409


def test_a_message_reopens_a_resolved_session(make_chatbot, settings):
    bot = make_chatbot()
    conversation = conversation_start(chatbot=bot)
    Conversation.objects.filter(pk=conversation.pk).update(status="resolved", is_resolved=True)
    message_submit(conversation=conversation, text="one more thing")
    conversation.refresh_from_db()
    assert conversation.status == "active" and conversation.is_resolved is False


def test_idle_sessions_end_after_the_inactivity_limit(client, make_chatbot, settings):
    from conversations.services import conversations_expire_idle

    settings.SESSION_INACTIVITY_MINUTES = 30
    bot = make_chatbot()
    idle = conversation_start(chatbot=bot)
    fresh = conversation_start(chatbot=bot)
    Conversation.objects.filter(pk=idle.pk).update(
        last_activity_at=timezone.now() - dt.timedelta(minutes=31)
    )
    assert client.post(f"/api/sessions/{idle.pk}/resume", headers=auth(idle)).status_code == 409
    assert conversations_expire_idle() == 0  # already ended lazily by the resume above
    Conversation.objects.filter(pk=fresh.pk).update(
        last_activity_at=timezone.now() - dt.timedelta(minutes=29)
    )
    assert conversations_expire_idle() == 0
    assert Conversation.objects.get(pk=idle.pk).ended_reason == "inactivity"


def test_messages_over_the_limit_get_429_with_retry_after(client, make_chatbot):
    bot = make_chatbot(message_rate_limit=3)
    conversation = conversation_start(chatbot=bot)
    body = {"chatbot_id": bot.public_id, "message_text": "hi", "session_id": str(conversation.pk)}
    statuses = [
        client.post(
            "/api/process-message",
            body,
            content_type="application/json",
            headers=auth(conversation),
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    limited = client.post(
        "/api/process-message", body, content_type="application/json", headers=auth(conversation)
    )
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert Message.objects.filter(conversation=conversation).count() == 3


def test_session_creation_is_limited_per_ip(client, make_chatbot, settings):
    settings.SESSION_CREATE_RATE_LIMIT = "2/minute"
    bot = make_chatbot()
    assert [create(client, bot).status_code for _ in range(3)] == [201, 201, 429]


def test_rate_limits_are_exact_across_processes(settings):
    """Two processes hammer one limit at once: exactly `limit` hits get through in total."""
    script = textwrap.dedent(
        """
        import django, os, sys
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
        from config.errors import ApiError
        from config.ratelimit import rate_limit_hit
        ok = 0
        for _ in range(60):
            try:
                rate_limit_hit(scope="exactness", key="k", limit="50/minute")
                ok += 1
            except ApiError:
                pass
        print(ok)
        """
    )
    env = {**__import__("os").environ, "REDIS_URL": django_settings.REDIS_URL}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
        for _ in range(2)
    ]
    counts = [int(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in procs]
    assert sum(counts) == 50, counts


NESTED: list = [1]
for _ in range(40):
    NESTED = [NESTED]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("[" * 5000 + "]" * 5000, "application/json", 400, "MALFORMED_JSON"),
        (json.dumps({"a": NESTED}), "application/json", 400, "MALFORMED_JSON"),
        (b'{"chatbot_id": "\xff\xfe"}', "application/json", 400, "MALFORMED_JSON"),
        ("x" * 20_000_000, "application/json", 413, "PAYLOAD_TOO_LARGE"),
        ("chatbot_id=x", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("[]", "application/json", 400, "VALIDATION_ERROR"),
    ],
)
def test_hostile_bodies_get_clear_errors_not_500s(client, body, content_type, status, code):
    response = client.post("/api/process-message", body, content_type=content_type)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
