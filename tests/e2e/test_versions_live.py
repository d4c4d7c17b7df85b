"""A reviewed bot over the real stack (Daphne + Celery worker): a customer chatting on one
WebSocket keeps getting the live version's answers while staff change the draft, gets the new
answers from the moment the draft is published, and the old ones again after a rollback
(issue #26, docs/versions.md)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from chatbots.models import Chatbot, TextRule
from chatbots.tests.factories import create_chatbot, create_entry, create_flow, create_kb
from chatbots.versions import chatbot_publishing_set, version_publish, version_rollback
from tests.e2e.client import answer_text, widget_headers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def reviewed_bot() -> Chatbot:
    bot = create_chatbot(public_id="reviewed-live", name="Vinhuset", with_main_flow=False)
    kb = create_kb(chatbot=bot, name="faq")
    create_entry(knowledge_base=kb, title="Shipping", text="We ship within two days.")
    create_flow(chatbot=bot, name="main", is_main=True, knowledge_base=kb)
    chatbot_publishing_set(chatbot=bot, publishing=Chatbot.Publishing.REVIEWED)
    bot.refresh_from_db()
    return bot


async def ask(ws, text: str) -> str:
    await ws.send(json.dumps({"type": "message", "message_text": text}))
    events: list[dict] = []
    deadline = time.monotonic() + 30
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if frame["type"] == "error":
            raise AssertionError(f"error frame: {frame}")
        if frame["type"] == "event":
            events.append(frame)
            if frame["event"] == "end":
                assert frame["data"]["status"] == "completed", frame
                return answer_text(events)


def test_a_customer_keeps_the_live_answers_while_the_draft_changes_until_it_is_published(stack):
    bot = reviewed_bot()
    session = httpx.post(
        f"{stack.base_url}/api/sessions",
        json={"chatbot_id": bot.public_id},
        headers=widget_headers(bot.public_id),
        timeout=10,
    )
    assert session.status_code == 201, session.text
    body = session.json()
    url = f"{stack.ws_url}/ws/conversations/{body['sessionId']}/?token={body['conversation_token']}"

    async def scenario() -> list[str]:
        answers = []
        async with websockets.connect(url, open_timeout=10) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
            answers.append(await ask(ws, "How fast do you ship?"))
            # Staff edit the draft while the customer is still connected.
            await asyncio.to_thread(
                TextRule.objects.create,
                chatbot=bot,
                kind=TextRule.Kind.REPLACE,
                find="two days",
                replace="48 hours",
            )
            answers.append(await ask(ws, "How fast do you ship?"))
            await asyncio.to_thread(version_publish, chatbot=bot, note="48 hours")
            answers.append(await ask(ws, "How fast do you ship?"))
            first = await asyncio.to_thread(bot.versions.get, number=1)
            await asyncio.to_thread(version_rollback, chatbot=bot, version=first)
            answers.append(await ask(ws, "How fast do you ship?"))
        return answers

    before, during_draft, published, rolled_back = asyncio.run(scenario())

    assert "two days" in before
    assert during_draft == before
    assert "48 hours" in published and "two days" not in published
    assert rolled_back == before


def test_a_staff_preview_answers_from_the_draft_while_customers_get_the_live_version(stack):
    from django.contrib.auth import get_user_model

    from analytics.models import TurnMetrics
    from chatbots.preview import preview_conversation_start
    from conversations.models import Turn

    bot = reviewed_bot()
    TextRule.objects.create(
        chatbot=bot, kind=TextRule.Kind.REPLACE, find="two days", replace="48 hours"
    )
    staff = get_user_model().objects.create_user("previewer", is_staff=True)
    conversation, token = preview_conversation_start(chatbot=bot, choice="draft", user=staff)
    live_conv, live_token = preview_conversation_start(chatbot=bot, choice="1", user=staff)
    host = stack.base_url.split("://", 1)[1]

    async def chat(conversation_id, token_, origin) -> str:
        url = f"{stack.ws_url}/ws/conversations/{conversation_id}/?token={token_}"
        async with websockets.connect(url, open_timeout=10, origin=origin) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
            return await ask(ws, "How fast do you ship?")

    draft_answer = asyncio.run(chat(conversation.pk, token, f"http://{host}"))
    version_answer = asyncio.run(chat(live_conv.pk, live_token, f"http://{host}"))

    assert "48 hours" in draft_answer
    assert "two days" in version_answer
    # A preview is opened from our own admin pages only, not from a shop's site.
    with pytest.raises(Exception):  # noqa: B017 - the socket is closed with 4403
        asyncio.run(chat(conversation.pk, token, "https://shop.example"))
    # And it is nobody's analytics.
    time.sleep(1.5)
    turns = Turn.objects.filter(conversation__in=[conversation, live_conv])
    assert turns.count() == 2
    assert not TurnMetrics.objects.filter(turn__in=turns).exists()


def test_a_check_run_shows_the_rule_the_draft_breaks_and_the_live_version_keeps(stack):
    from chatbots.checkruns import check_run_rows, check_run_start, draft_failing_checks
    from chatbots.models import CheckRun
    from quality.models import AnswerCheck

    bot = reviewed_bot()
    AnswerCheck.objects.create(
        chatbot=bot, question="How fast do you ship?", must_contain=["two days"]
    )
    TextRule.objects.create(
        chatbot=bot, kind=TextRule.Kind.REPLACE, find="two days", replace="48 hours"
    )

    run = check_run_start(chatbot=bot)  # committed at once (transactional test): queued
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in (CheckRun.Status.FINISHED, CheckRun.Status.FAILED):
            break
        time.sleep(0.3)

    assert run.status == CheckRun.Status.FINISHED, run.error
    assert (run.done, run.total) == (2, 2)
    (row,) = check_run_rows(run=run)
    assert "48 hours" in row["draft"].answer and not row["draft"].passed
    assert row["draft"].rules[0]["why"] == "The answer does not contain “two days”."
    assert "two days" in row["live"].answer and row["live"].passed
    assert row["draft"].ttft_ms is not None and row["live"].ttft_ms is not None
    assert "How fast do you ship?" in draft_failing_checks(chatbot=bot)
