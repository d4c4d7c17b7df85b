"""The chat widget in headless Chromium against the real stack: streaming, resume, fallbacks."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.contrib.auth.models import User
from PIL import Image
from playwright.sync_api import expect

from chatbots.models import AIEndpoint, Chatbot
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from conversations.models import Conversation, Turn
from tests.browser.conftest import polling_answers_with, screenshot
from tests.fakes.freshdesk import FakeFreshdesk

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_turns_settle"),
]

ANSWER_TIMEOUT_MS = 20_000


def flowise_bot(server, stack, **chatbot) -> Chatbot:
    """A bot on the fake Flowise that the stack's own origin may embed."""
    chatbot.setdefault("public_id", "vinhuset")
    bot = create_chatbot(
        with_main_flow=False,
        allowed_origins=[stack.base_url],
        contact_email="kundeservice@vinhuset.example",
        **chatbot,
    )
    endpoint = create_endpoint(
        kind=AIEndpoint.Kind.FLOWISE, base_url=server.url, read_timeout=5.0, total_timeout=30
    )
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    return bot


def words(count: int) -> str:
    return " ".join(f"word{i}" for i in range(count))


def open_widget(page, stack, bot: Chatbot, query: str = ""):
    page.goto(f"{stack.base_url}/chat/{bot.public_id}/{query}")
    page.get_by_role("button", name="Open chat").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Your message")).to_be_focused()
    return dialog


def send(page, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_label("Your message").press("Enter")


def last_answer(page):
    return page.locator(".cbw-msg[data-turn-id]").last


def finished_answer(page, status: str = "completed") -> tuple[str, str]:
    """(turn id, text shown) of the last answer once its `end` event arrived."""
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", status, timeout=ANSWER_TIMEOUT_MS)
    return answer.get_attribute("data-turn-id"), answer.locator(".cbw-text").inner_text()


def stored_answer(turn_id: str) -> str:
    turn = Turn.objects.select_related("assistant_message").get(pk=turn_id)
    assert turn.assistant_message is not None, turn.status
    return turn.assistant_message.content


def widget_info(page) -> dict:
    return page.evaluate("window.__chatWidget.info()")


RECORD_ANSWER_LENGTHS = """() => {
  const log = document.querySelector('.chat-widget-host').shadowRoot.querySelector('.cbw-log');
  window.__answerLengths = [];
  new MutationObserver(() => {
    const answers = log.querySelectorAll('[data-turn-id]');
    const last = answers[answers.length - 1];
    if (!last || last.querySelector('.cbw-typing')) return;
    window.__answerLengths.push(last.querySelector('.cbw-text').textContent.length);
  }).observe(log, {subtree: true, childList: true, characterData: true});
}"""


def test_the_answer_appears_token_by_token(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(24)
    flowise.scenario.tokens_per_second = 20
    open_widget(page, stack, bot)
    page.evaluate(RECORD_ANSWER_LENGTHS)
    send(page, "Which wine goes with fish?")
    expect(page.locator(".cbw-user").last).to_have_text(re.compile("Which wine goes with fish"))
    turn_id, shown = finished_answer(page)
    screenshot(page, "answer-streamed")
    assert shown == stored_answer(turn_id) == words(24)
    partial = {n for n in page.evaluate("window.__answerLengths") if 0 < n < len(shown)}
    assert len(partial) >= 2, partial
    assert widget_info(page)["transport"] == "websocket"


def test_a_dropped_socket_mid_answer_ends_with_the_whole_answer_once(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(40)
    flowise.scenario.tokens_per_second = 20
    open_widget(page, stack, bot)
    send(page, "Tell me a long story")
    text = last_answer(page).locator(".cbw-text")
    for seen in ("word3 ", "word20 "):
        expect(text).to_contain_text(seen, timeout=ANSWER_TIMEOUT_MS)
        assert page.evaluate("window.__chatWidget.dropSocket()") is True
    turn_id, shown = finished_answer(page)
    stored = stored_answer(turn_id)
    assert shown == stored == words(40)
    assert page.locator(".cbw-log").inner_text().count(stored) == 1
    assert page.locator(".cbw-msg[data-turn-id]").count() == 1
    # Two drops, two reconnects that resumed from the last event shown.
    assert widget_info(page)["websocket_connects"] == 3


def test_polling_carries_the_answer_when_websockets_are_off(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(12)
    flowise.scenario.tokens_per_second = 40
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    open_widget(page, stack, bot, "?transport=polling")
    send(page, "Do you ship to Norway?")
    turn_id, shown = finished_answer(page)
    assert shown == stored_answer(turn_id) == words(12)
    assert sockets == []
    assert widget_info(page)["transport"] == "polling"


def test_the_widget_falls_back_to_polling_when_websockets_keep_failing(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(8)
    # Every WebSocket is answered by a proxy that hangs up at once, and event streams (the
    # next transport) never get through.
    page.route_web_socket(re.compile(r"/ws/conversations/"), lambda ws: ws.close(code=1011))
    page.route(re.compile(r"/sse\?"), lambda route: route.abort())
    open_widget(page, stack, bot)
    send(page, "Are you there?")
    turn_id, shown = finished_answer(page)
    assert shown == stored_answer(turn_id) == words(8)
    info = widget_info(page)
    assert info["transport"] == "polling" and info["websocket_connects"] == 3
    assert info["sse_failures"] == 3  # it tried the event stream before polling
    expect(page.get_by_role("status")).to_contain_text("live connection is unavailable")


def test_a_staff_members_greeting_and_language_change_shows_on_reload(
    stack, flowise, page, settings
):
    bot = flowise_bot(flowise, stack, greeting="Hello from the shop!", language="en")
    # Daphne checks the password with the default hashers, not the suite's fast MD5.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    User.objects.create_superuser("staff", "staff@example.com", "correct horse battery")
    open_widget(page, stack, bot)
    expect(page.locator(".cbw-greeting")).to_have_text(re.compile("Hello from the shop!"))

    admin = page.context.new_page()
    admin.goto(f"{stack.base_url}/admin/chatbots/chatbot/{bot.pk}/change/")
    admin.get_by_label("Username").fill("staff")
    admin.get_by_label("Password").fill("correct horse battery")
    admin.get_by_role("button", name="Log in").click()
    admin.locator("#id_greeting").fill("Hej! Hvad kan vi hjælpe med?")
    admin.locator("#id_language").select_option("da")
    admin.locator("input[name=_save]").click()
    expect(admin.locator(".messagelist .success")).to_be_visible()
    admin.close()

    page.reload()
    page.get_by_role("button", name="Åbn chat").click()
    expect(page.locator(".cbw-greeting")).to_have_text(re.compile("Hej! Hvad kan vi hjælpe med?"))
    expect(page.get_by_label("Din besked")).to_be_focused()
    screenshot(page, "danish-after-admin-change")


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


SHOP_PAGE = """<!DOCTYPE html><html lang="en"><head><title>Shop</title></head><body>
<h1>A shop that lets the server judge images</h1>
<script src="{base}/static/widget/chat-widget.js" data-chatbot="{bot}" data-widget-key="{key}"
        data-max-image-mb="0" async></script></body></html>"""


def test_an_oversized_image_is_refused_with_a_readable_message(
    stack, flowise, page, tmp_path, shop_site
):
    bot = flowise_bot(flowise, stack, image_upload_enabled=True)
    bot.allowed_origins = [stack.base_url, shop_site.origin]
    bot.save(update_fields=["allowed_origins"])
    # A file on disk: Chromium reads it itself (a buffer would travel through the driver).
    oversized = tmp_path / "photo.jpg"
    oversized.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * (11 << 20))
    uploads = []
    page.on("request", lambda r: "/api/upload-image" in r.url and uploads.append(r))
    open_widget(page, stack, bot)
    page.locator(".cbw-file").set_input_files(oversized)
    expect(page.get_by_role("alert")).to_have_text(
        "The image is larger than 10 MB. Please choose a smaller one."
    )
    assert uploads == []  # refused before uploading 11 MB

    # A shop on another site that turned the widget's own check off: the server refuses the
    # upload (cross-origin, with CORS), and the widget explains.
    shop_site.html = SHOP_PAGE.format(base=stack.base_url, bot=bot.public_id, key=bot.widget_key)
    page.goto(shop_site.url)
    page.get_by_role("button", name="Open chat").click()
    with page.expect_response(re.compile(r"/api/upload-image$")) as refused:
        page.locator(".cbw-file").set_input_files(oversized)
    assert refused.value.status == 413
    expect(page.get_by_role("alert")).to_have_text(
        "The image is larger than 10 MB. Please choose a smaller one."
    )

    # A good photo is uploaded and shown from the token-protected thumbnail.
    label = tmp_path / "label.png"
    label.write_bytes(png_bytes())
    page.locator(".cbw-file").set_input_files(label)
    thumbnail = page.locator(".cbw-preview img")
    expect(thumbnail).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
    )
    send(page, "Is this label right?")
    expect(page.locator(".cbw-user img")).to_have_attribute("src", re.compile(r"^blob:"))
    turn_id, _shown = finished_answer(page)
    images = Turn.objects.get(pk=turn_id).user_message.metadata["images"]
    assert len(images) == 1
    assert widget_info(page)["transport"] == "websocket"  # cross-origin, from the shop's site
    screenshot(page, "image-sent")


def test_a_rate_limited_message_shows_when_to_try_again(stack, flowise, page):
    bot = flowise_bot(flowise, stack, message_rate_limit=1)
    flowise.scenario.answer = words(3)
    open_widget(page, stack, bot)
    send(page, "First question")
    finished_answer(page)
    send(page, "Second question")
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"^Too many messages, try again in \d+ s\.$")
    )
    # Nothing is lost: the message waits in the input for the next try.
    expect(page.get_by_label("Your message")).to_have_value("Second question")
    screenshot(page, "rate-limited")


def test_a_returning_visitor_resumes_the_previous_conversation(stack, flowise, page, context):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(5)
    open_widget(page, stack, bot)
    send(page, "Where is my parcel?")
    turn_id, _shown = finished_answer(page)
    session_id = widget_info(page)["session_id"]

    later = context.new_page()  # a new tab: same localStorage, no memory of this page
    later.goto(f"{stack.base_url}/chat/{bot.public_id}/")
    later.get_by_role("button", name="Open chat").click()
    expect(later.get_by_text("Resume your previous conversation?")).to_be_visible()
    expect(later.get_by_role("button", name="Yes, continue")).to_be_focused()
    later.get_by_role("button", name="Yes, continue").click()
    expect(later.locator(".cbw-user")).to_have_text(["You: Where is my parcel?"])
    expect(later.locator(".cbw-bot:not(.cbw-greeting)")).to_have_text(
        [f"{bot.name}: {stored_answer(turn_id)}"]
    )
    send(later, "And when will it arrive?")
    finished_answer(later)
    assert widget_info(later)["session_id"] == session_id
    assert Conversation.objects.get(pk=session_id).messages.count() == 4
    screenshot(later, "resumed")

    # Escape closes the chat and gives the focus back to the launcher.
    later.get_by_label("Your message").press("Escape")
    expect(later.get_by_role("dialog")).to_be_hidden()
    expect(later.get_by_role("button", name="Open chat")).to_be_focused()


def test_a_visitor_rates_the_conversation_and_finds_the_contact_details(stack, flowise, page):
    from helpdesk.models import ConversationRating

    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(3)
    open_widget(page, stack, bot)
    send(page, "Thanks for the help")
    finished_answer(page)
    page.get_by_role("button", name="Rate the chat").click()
    page.get_by_text("4", exact=True).click()
    page.get_by_label("Comment (optional)").fill("Quick & helpful")
    page.get_by_role("button", name="Send rating").click()
    expect(page.locator(".cbw-note-success")).to_have_text("Thank you for your rating!")
    rating = ConversationRating.objects.get(conversation_id=widget_info(page)["session_id"])
    assert (rating.score, rating.comment) == (4, "Quick & helpful")

    page.get_by_role("button", name="Contact us").click()
    expect(page.get_by_role("link", name="kundeservice@vinhuset.example")).to_have_attribute(
        "href", "mailto:kundeservice@vinhuset.example"
    )


def test_an_order_card_renders_shop_data_as_text_and_only_safe_links(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    events = [
        {"id": 1, "event": "start", "data": {}},
        {
            "id": 2,
            "event": "order",
            "data": {
                "order_number": "1001",
                "status": "shipped",
                "line_items": [{"name": "<img src=x onerror=alert(1)>Mug", "quantity": 2}],
                "shipments": [
                    {
                        "carrier": "GLS",
                        "tracking_number": "111",
                        "tracking_url": "javascript:alert(1)",
                    },
                    {
                        "carrier": "PostNord",
                        "tracking_number": "222",
                        "tracking_url": "https://tracking.example/222",
                    },
                ],
            },
        },
        {"id": 3, "event": "token", "data": {"text": "Your order is on its way."}},
        {"id": 4, "event": "end", "data": {"status": "completed"}},
    ]
    # The order event as the orders app sends it, given to the widget's polling request.
    polling_answers_with(page, events)
    open_widget(page, stack, bot, "?transport=polling")
    send(page, "Where is order 1001?")
    finished_answer(page)
    card = page.get_by_role("group", name="Order 1001")
    expect(card).to_contain_text("Shipped")
    expect(card).to_contain_text("2 × <img src=x onerror=alert(1)>Mug")
    assert card.locator("img").count() == 0
    expect(card.get_by_role("link")).to_have_count(1)
    expect(card.get_by_role("link", name="Track the parcel")).to_have_attribute(
        "href", "https://tracking.example/222"
    )
    expect(card).to_contain_text("Tracking number: 111")


def noon_timezone() -> str:
    """A time zone where it is midday now, so "open all day" cannot end during the test."""
    hour = dt.datetime.now(dt.UTC).hour
    offset = max(-12, min(14, 12 - hour))
    # Etc/GMT names have the sign reversed: Etc/GMT-2 is UTC+2.
    return "Etc/GMT" + ("" if offset == 0 else f"{-offset:+d}")


def helpdesk_bot(server, stack, desk, **chatbot) -> Chatbot:
    from helpdesk.models import HelpdeskConnection

    bot = flowise_bot(server, stack, **chatbot)
    HelpdeskConnection.objects.create(
        chatbot=bot, kind="freshdesk", domain=desk.url, api_key=desk.scenario.api_key
    )
    return bot


def test_a_visitor_talks_to_a_person_while_customer_service_is_open(stack, flowise, page):
    from helpdesk.models import Handoff

    all_day = {
        day: [["00:00", "23:59"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    with FakeFreshdesk() as desk:
        bot = helpdesk_bot(flowise, stack, desk, opening_hours=all_day, timezone=noon_timezone())
        flowise.scenario.answer = words(3)
        open_widget(page, stack, bot)
        send(page, "My bottle arrived broken")
        finished_answer(page)
        page.get_by_role("button", name="Contact us").click()
        expect(page.get_by_text("Customer service is open now.")).to_be_visible()
        page.get_by_role("button", name="Talk to a person").click()
        page.get_by_label("What do you need help with? (optional)").fill("Broken bottle")
        page.get_by_label("Your email (optional)").fill("kunde@example.com")
        screenshot(page, "talk-to-a-person")
        page.get_by_role("button", name="Ask for a person").click()
        expect(page.locator(".cbw-note-success")).to_contain_text("passed our conversation")
        expect(page.get_by_label("Your message")).to_be_visible()
        handoff = Handoff.objects.get(conversation_id=widget_info(page)["session_id"])
        assert (handoff.kind, handoff.mode, handoff.reason) == ("handoff", "live", "Broken bottle")


def test_a_visitor_leaves_a_message_while_customer_service_is_closed(stack, flowise, page):
    from helpdesk.models import Handoff

    with FakeFreshdesk() as desk:
        bot = helpdesk_bot(flowise, stack, desk, opening_hours={})
        open_widget(page, stack, bot)
        page.get_by_role("button", name="Contact us").click()
        expect(page.get_by_text("Customer service is closed right now.")).to_be_visible()
        expect(page.get_by_role("button", name="Talk to a person")).to_have_count(0)
        screenshot(page, "contact-form")
        page.get_by_label("Your email", exact=True).fill("kunde@example.com")
        page.get_by_label("Message", exact=True).fill("Can I change my delivery address?")
        page.get_by_role("button", name="Send message").click()
        expect(page.locator(".cbw-note-success")).to_contain_text("sent to our customer service")
        handoff = Handoff.objects.get(conversation_id=widget_info(page)["session_id"])
        assert (handoff.kind, handoff.requester_email) == ("contact", "kunde@example.com")
        screenshot(page, "contact-form-sent")


def test_a_failed_answer_shows_the_error_message_under_what_was_said(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(10)
    flowise.scenario.error_after_tokens = 4
    open_widget(page, stack, bot)
    send(page, "Tell me everything")
    turn_id, shown = finished_answer(page, status="failed")
    turn = Turn.objects.get(pk=turn_id)
    assert turn.status == "failed" and turn.error_message
    expect(last_answer(page).locator(".cbw-error")).to_have_text(turn.error_message)
    assert shown == stored_answer(turn_id) == words(4)
    # The customer can go on: the send button is back.
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_enabled()


TRANSCRIPT = """() => Array.from(
  document.querySelector('.chat-widget-host').shadowRoot.querySelector('.cbw-log').children,
  (el) => [el.className, el.getAttribute('data-status'), el.innerText]
)"""


def ask(page, text: str, status: str = "completed") -> str:
    """Send a question and wait for the end of *its* answer; returns the answer's turn id."""
    answers = page.locator(".cbw-msg[data-turn-id]")
    before = answers.count()
    send(page, text)
    expect(answers).to_have_count(before + 1)
    turn_id, _shown = finished_answer(page, status=status)
    return turn_id


def test_after_a_reload_a_failed_question_still_shows_the_error_under_it(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    open_widget(page, stack, bot)
    flowise.scenario.status = 401  # the AI service refuses our key: nothing is said
    refused_id = ask(page, "Do you have Barolo?", status="failed")
    flowise.scenario.status = None
    flowise.scenario.answer = words(10)
    flowise.scenario.error_after_tokens = 4  # cut off mid-answer
    cut_id = ask(page, "Tell me everything", status="failed")
    flowise.scenario.error_after_tokens = None
    flowise.scenario.answer = words(3)
    ask(page, "Thanks")
    live = page.evaluate(TRANSCRIPT)

    page.reload()  # the same tab: the conversation is resumed without asking
    page.get_by_role("button", name="Open chat").click()
    expect(page.locator(".cbw-bot:not(.cbw-greeting)")).to_have_count(3)
    for turn_id, question in ((refused_id, "Do you have Barolo?"), (cut_id, "Tell me everything")):
        turn = Turn.objects.get(pk=turn_id)
        assert turn.status == "failed" and turn.error_message
        asked = page.locator(".cbw-user").filter(has_text=question)
        # Right under its question: the answer bubble with the error the customer got live.
        answer = asked.locator("xpath=following-sibling::*[1]")
        expect(answer).to_have_class(re.compile(r"\bcbw-bot\b"))
        expect(answer.locator(".cbw-error")).to_have_text(turn.error_message)
    assert page.evaluate(TRANSCRIPT) == live  # the transcript reads as it did live
    screenshot(page, "failed-questions-after-reload")
