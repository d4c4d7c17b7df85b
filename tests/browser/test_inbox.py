"""The live inbox in Chromium (docs/inbox.md): a customer in /chat/<bot>/ asks for a person, an
agent of the shop sees it arrive without reloading, takes it, types and replies; the customer
sees the join, the typing and the reply in order; the customer's next message reaches the
agent with no AI call; the agent hands back and the bot answers again. An agent of another shop
never sees the conversation."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from accounts.models import Membership, Role
from chatbots.tests.factories import create_shop, shop_for_tests
from conversations.models import Conversation
from tests.browser.test_widget import finished_answer, flowise_bot, open_widget, send, words

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_turns_settle"),
]

ALWAYS_OPEN = {d: [["00:00", "23:59"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
PASSWORD = "inbox-pass-123"


def member(username: str, shop, role: str) -> User:
    user = User.objects.create_user(
        username, password=PASSWORD, is_staff=True, first_name=username.title()
    )
    Membership.objects.create(user=user, shop=shop, role=role)
    return user


def inbox_page(browser, stack, username: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{stack.base_url}/admin/login/?next=/admin/inbox/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#inbox-status")).to_have_text("Live")
    return context, page


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_an_agent_takes_over_live_and_hands_back_while_another_shop_sees_nothing(
    stack, flowise, page, browser, settings, transport
):
    # Daphne checks the password with the default hashers, not the suite's fast MD5.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    bot = flowise_bot(flowise, stack, opening_hours=ALWAYS_OPEN, language="en")
    flowise.scenario.answer = words(4)
    flowise.scenario.tokens_per_second = 50
    member("anna", shop_for_tests(), Role.AGENT)
    member("otto", create_shop(slug="other-inbox-shop"), Role.AGENT)
    agent_context, agent = inbox_page(browser, stack, "anna")
    other_context, other = inbox_page(browser, stack, "otto")
    try:
        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        open_widget(page, stack, bot, "" if transport == "websocket" else "?transport=polling")
        send(page, "Hello")
        finished_answer(page)
        calls = len(flowise.requests)

        page.get_by_role("button", name="Contact us").click()
        page.get_by_role("button", name="Talk to a person").click()
        expect(page.locator(".cbw-note", has_text="Waiting for a person")).to_be_visible()
        session_id = str(Conversation.objects.get(chatbot=bot).pk)

        # The agent's inbox shows it without a reload.
        expect(agent.locator("#count-waiting")).to_have_text("1")
        item = agent.locator("#inbox-list li", has_text="Hello")
        expect(item).to_be_visible()
        item.click()
        agent.get_by_role("button", name="Take").click()
        expect(agent.locator("#conv-state")).to_contain_text("with agent (Anna)")
        agent.locator("#reply-text").fill("Hi, I'm Anna")
        expect(page.locator(".cbw-note-typing", has_text="Anna is typing")).to_be_visible()
        agent.get_by_role("button", name="Send").click()

        reply = page.locator(".cbw-agent", has_text="Hi, I'm Anna")
        expect(reply).to_be_visible()
        expect(page.locator(".cbw-note-typing")).to_have_count(0)
        log = page.locator(".cbw-log, [role=log]").first
        shown = log.inner_text()
        assert (
            shown.index("Waiting for a person")
            < shown.index("Anna joined the chat.")
            < shown.index("Hi, I'm Anna")
        ), shown

        send(page, "Where is my order?")
        expect(
            agent.locator("#conv-messages li.user", has_text="Where is my order?")
        ).to_be_visible()
        assert len(flowise.requests) == calls  # no AI call while a person answers

        # Another shop's agent: nothing in the lists, and the conversation is not theirs.
        expect(other.locator("#count-waiting")).to_have_text("0")
        expect(other.locator("#count-open")).to_have_text("0")
        response = other.request.get(f"{stack.base_url}/admin/inbox/api/conversations/{session_id}")
        assert response.status == 404

        agent.get_by_role("button", name="Hand back to the bot").click()
        expect(page.locator(".cbw-note", has_text="The assistant answers again")).to_be_visible()
        send(page, "Thanks!")
        expect(page.locator(".cbw-msg[data-turn-id]")).to_have_count(2)
        _turn, text = finished_answer(page)
        assert text == words(4)
        assert len(flowise.requests) == calls + 1  # the bot answers again
        assert bool(sockets) == (transport == "websocket")
    finally:
        agent_context.close()
        other_context.close()


def test_a_customer_who_reloads_mid_conversation_sees_each_agent_message_once(stack, flowise, page):
    from inbox import services

    bot = flowise_bot(flowise, stack, opening_hours=ALWAYS_OPEN, language="en")
    agent = member("bo", shop_for_tests(), Role.AGENT)
    services.agent_presence_set(user_id=agent.pk, shop_ids=[shop_for_tests().pk], online=True)
    open_widget(page, stack, bot)
    page.get_by_role("button", name="Contact us").click()
    page.get_by_role("button", name="Talk to a person").click()
    expect(page.locator(".cbw-note", has_text="Waiting for a person")).to_be_visible()
    session_id = Conversation.objects.get(chatbot=bot).pk
    services.conversation_take(conversation_id=session_id, agent=agent)
    services.agent_reply(conversation_id=session_id, agent=agent, text="First reply")
    expect(page.locator(".cbw-agent", has_text="First reply")).to_be_visible()

    page.reload()
    page.get_by_role("button", name="Open chat").click()
    expect(page.locator(".cbw-agent", has_text="First reply")).to_have_count(1)
    services.agent_reply(conversation_id=session_id, agent=agent, text="Second reply")
    expect(page.locator(".cbw-agent", has_text="Second reply")).to_be_visible()
    expect(page.locator(".cbw-agent")).to_have_count(2)
    # The widget went on from the last event it had shown: nothing before the reload again.
    expect(page.locator(".cbw-note", has_text="Bo joined the chat.")).to_have_count(0)
