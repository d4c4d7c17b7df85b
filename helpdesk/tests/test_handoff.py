"""Contact form, handoff and support status: tickets with the transcript, opening hours, retries."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest
from django.utils import timezone

from helpdesk.models import ConversationRating, Handoff
from helpdesk.services import handoff_retry, helpdesk_retention_sweep
from helpdesk.tasks import create_ticket
from helpdesk.tests.conftest import Widget, connect, conversation_with_messages
from tests.fakes.zendesk import FakeZendesk

pytestmark = pytest.mark.django_db


def run_ticket_task(handoff_id: str) -> str:
    """What the worker does with the enqueued task (eager: retries run at once)."""
    return create_ticket.apply(args=[handoff_id]).get()


def test_the_contact_form_becomes_a_freshdesk_ticket_with_the_transcript(
    widget, freshdesk, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as enqueued:
        response = widget.post(
            "contact",
            {"name": "Anna", "email": "Anna@Example.com", "message": "My parcel\nnever came"},
        )

    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["state"] == "pending" and "reply by email at anna@example.com" in body["message"]
    assert len(enqueued) == 1  # the ticket is created by the worker, after commit
    assert freshdesk.requests == []
    assert run_ticket_task(body["handoff_id"]) == "created"

    [ticket] = freshdesk.tickets
    request = freshdesk.requests[-1]
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(f"{freshdesk.scenario.api_key}:X".encode()).decode()
    )
    assert ticket["email"] == "anna@example.com" and ticket["name"] == "Anna"
    assert ticket["status"] == 2 and ticket["source"] == 9 and ticket["priority"] == 1
    assert ticket["subject"].endswith("Contact form: My parcel")
    assert "chatbot" in ticket["tags"] and "contact" in ticket["tags"]
    description = ticket["description"]
    assert "My parcel<br>never came" in description
    assert "Where is my order 1001?" in description
    assert "Order #1001: it has been shipped." in description
    # The customer's text is escaped: nobody's HTML runs in the agents' helpdesk.
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; I&#x27;m upset" in description
    assert "<script>" not in description
    handoff = Handoff.objects.get(pk=body["handoff_id"])
    assert handoff.ticket_id == str(ticket["id"]) and handoff.completed_at is not None

    support = widget.get("support").json()
    assert support["handoff"]["ticket_id"] == str(ticket["id"])
    assert support["handoff"]["state"] == "created"


def test_running_the_ticket_task_twice_creates_one_ticket(widget, freshdesk):
    handoff_id = widget.post("handoff", {"reason": "Wrong size"}).json()["handoff_id"]

    run_ticket_task(handoff_id)
    run_ticket_task(handoff_id)

    assert len(freshdesk.tickets) == 1
    assert Handoff.objects.get(pk=handoff_id).attempts == 1


def test_a_second_request_while_the_first_is_pending_returns_the_same_handoff(widget):
    first = widget.post("handoff", {"reason": "help"}).json()
    second = widget.post("handoff", {"reason": "help!!"}).json()

    assert first["handoff_id"] == second["handoff_id"]
    assert Handoff.objects.count() == 1


def test_handoff_while_support_is_open_is_live(widget, freshdesk):
    response = widget.post("handoff", {"reason": "I want a person"})

    assert response.status_code == 202
    body = response.json()
    assert body["mode"] == "live" and "customer service is open" in body["message"]
    # Nobody can write back without an email: the customer is told so, and how to get an answer.
    assert "they cannot write back to you: ask again with your email" in body["message"]
    run_ticket_task(body["handoff_id"])
    [ticket] = freshdesk.tickets
    # No email while live: the visitor is identified by the conversation.
    assert ticket["unique_external_id"] == f"chat-{widget.conversation.pk}"
    assert ticket["source"] == 7 and "live" in ticket["tags"] and "handoff" in ticket["tags"]
    assert "Reason:</strong> I want a person" in ticket["description"]


def test_handoff_outside_opening_hours_is_a_ticket_and_needs_an_email(
    client, closed_bot, freshdesk
):
    connect(closed_bot, freshdesk)
    conversation, token = conversation_with_messages(closed_bot)
    widget = Widget(client, conversation, token)

    assert widget.get("support").json()["offer"] == "ticket"
    refused = widget.post("handoff", {"reason": "hjælp"})
    accepted = widget.post("handoff", {"reason": "hjælp", "email": "anna@example.com"})

    assert refused.status_code == 400 and "email" in refused.json()["error"]["details"]
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["mode"] == "ticket"
    assert body["message"].startswith("Vores kundeservice har lukket lige nu (vi har åbent man")
    assert "på anna@example.com" in body["message"]


def test_support_status_follows_the_opening_hours_and_the_connection(
    client, make_chatbot, open_bot, closed_bot, freshdesk
):
    connect(open_bot, freshdesk)
    connect(closed_bot, freshdesk)
    no_helpdesk = make_chatbot(opening_hours={}, contact_email="help@shop.example")

    def status(bot):
        conversation, token = conversation_with_messages(bot)
        return Widget(client, conversation, token).get("support").json()

    assert (status(open_bot)["open_now"], status(open_bot)["offer"]) == (True, "live")
    assert (status(closed_bot)["open_now"], status(closed_bot)["offer"]) == (False, "ticket")
    plain = status(no_helpdesk)
    assert plain["offer"] == "contact" and plain["helpdesk"] is None
    assert plain["contact_email"] == "help@shop.example"


def test_without_a_helpdesk_requests_are_refused_in_words(client, make_chatbot):
    bot = make_chatbot()
    conversation, token = conversation_with_messages(bot)
    widget = Widget(client, conversation, token)

    response = widget.post("contact", {"email": "a@b.dk", "message": "hi"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "HELPDESK_NOT_CONFIGURED"


def test_a_rate_limited_helpdesk_is_retried_after_its_retry_after(widget, freshdesk):
    freshdesk.configure(status=429, retry_after=0, fail_times=1)

    handoff_id = widget.post("handoff", {}).json()["handoff_id"]
    run_ticket_task(handoff_id)

    handoff = Handoff.objects.get(pk=handoff_id)
    assert handoff.state == "created" and handoff.attempts == 2
    assert [r.method for r in freshdesk.requests] == ["POST", "POST"]


def test_the_freshdesk_rate_limit_counts_every_call_and_says_when_to_come_back(
    widget, freshdesk, settings
):
    settings.HELPDESK_TICKET_MAX_ATTEMPTS = 1
    freshdesk.configure(rate_limit=1, rate_window=60)
    first = widget.post("handoff", {}).json()["handoff_id"]
    run_ticket_task(first)
    second = widget.post("contact", {"email": "a@b.dk", "message": "hello"}).json()["handoff_id"]

    run_ticket_task(second)

    failed = Handoff.objects.get(pk=second)
    assert failed.state == "failed" and "rate limiting" in failed.error
    assert freshdesk.requests[-1].path == "/api/v2/tickets"


def test_a_rejected_key_fails_the_handoff_visibly_without_the_key(widget, freshdesk):
    connection = widget.conversation.chatbot.helpdesk
    connection.api_key = "fd_wrong_key_9999"
    connection.save()

    handoff_id = widget.post("handoff", {}).json()["handoff_id"]
    run_ticket_task(handoff_id)

    handoff = Handoff.objects.get(pk=handoff_id)
    assert handoff.state == "failed" and handoff.attempts == 1  # 401 is not retried
    assert "rejected the API key" in handoff.error and "invalid_credentials" in handoff.error
    assert "fd_wrong_key_9999" not in handoff.error
    support = widget.get("support").json()
    assert support["handoff"]["state"] == "failed"


def test_a_helpdesk_that_stays_down_fails_after_the_last_attempt(widget, freshdesk, settings):
    settings.HELPDESK_TICKET_MAX_ATTEMPTS = 3
    freshdesk.configure(status=503, retry_after=0)

    handoff_id = widget.post("handoff", {}).json()["handoff_id"]
    run_ticket_task(handoff_id)

    handoff = Handoff.objects.get(pk=handoff_id)
    assert handoff.state == "failed" and handoff.attempts == 3
    assert "HTTP 503" in handoff.error


def test_staff_can_retry_a_failed_handoff(widget, freshdesk, django_capture_on_commit_callbacks):
    freshdesk.configure(status=400)
    handoff_id = widget.post("handoff", {}).json()["handoff_id"]
    run_ticket_task(handoff_id)
    handoff = Handoff.objects.get(pk=handoff_id)
    assert handoff.state == "failed"
    freshdesk.configure(status=None)

    with django_capture_on_commit_callbacks() as enqueued:
        assert handoff_retry(handoff=handoff) is True
        assert handoff_retry(handoff=handoff) is False  # not failed any more
    run_ticket_task(handoff_id)

    assert len(enqueued) == 1
    assert Handoff.objects.get(pk=handoff_id).state == "created"


def test_a_conversation_cannot_flood_the_helpdesk(widget, settings):
    settings.HELPDESK_MAX_REQUESTS_PER_CONVERSATION = 2
    for _ in range(2):
        handoff_id = widget.post("contact", {"email": "a@b.dk", "message": "x"}).json()
        run_ticket_task(handoff_id["handoff_id"])

    response = widget.post("contact", {"email": "a@b.dk", "message": "x"})

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "HANDOFF_LIMIT_REACHED"
    assert response["Retry-After"] == "3600"


@pytest.mark.parametrize(
    "data",
    [
        {"message": "no email"},
        {"email": "not-an-email", "message": "x"},
        {"email": "a@b.dk", "message": ""},
        {"email": "a@b.dk", "message": "x" * 5001},
    ],
)
def test_an_invalid_contact_form_is_refused_field_by_field(widget, data):
    response = widget.post("contact", data)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert not Handoff.objects.exists()


def test_zendesk_tickets_carry_the_transcript_and_the_agent_token(client, open_bot):
    with FakeZendesk() as zendesk:
        connect(open_bot, zendesk, kind="zendesk", agent_email=zendesk.scenario.agent_email)
        conversation, token = conversation_with_messages(open_bot)
        widget = Widget(client, conversation, token)
        handoff_id = widget.post(
            "contact", {"email": "anna@example.com", "message": "Hello"}
        ).json()["handoff_id"]
        zendesk.configure(status=429, retry_after=0, fail_times=1)  # text/plain 429 first
        run_ticket_task(handoff_id)
        [ticket] = zendesk.tickets
        auth = zendesk.requests[-1].headers["authorization"]

    assert base64.b64decode(auth[6:]).decode() == (
        f"{zendesk.scenario.agent_email}/token:{zendesk.scenario.api_key}"
    )
    assert ticket["requester"] == {"name": "anna@example.com", "email": "anna@example.com"}
    assert "Where is my order 1001?" in ticket["comment"]["html_body"]
    assert ticket["priority"] == "low"
    assert Handoff.objects.get(pk=handoff_id).ticket_id == str(ticket["id"])


def test_old_handoffs_and_ratings_are_deleted_by_retention(widget, settings):
    settings.HELPDESK_RETENTION_DAYS = 30
    widget.post("handoff", {})
    ConversationRating.objects.create(conversation=widget.conversation, score=4)
    old = timezone.now() - dt.timedelta(days=31)
    Handoff.objects.update(created_at=old)
    ConversationRating.objects.update(created_at=old)
    fresh_conversation, _ = conversation_with_messages(widget.conversation.chatbot)
    ConversationRating.objects.create(conversation=fresh_conversation, score=5)

    assert helpdesk_retention_sweep() == {"handoffs": 1, "ratings": 1}
    assert ConversationRating.objects.get().score == 5


def test_a_ticket_task_for_a_handoff_that_no_longer_exists_does_nothing(freshdesk):
    assert run_ticket_task(str(uuid.uuid4())) == "missing"
    assert freshdesk.requests == []


# --- nothing accepted is dropped (#18 item 1) ------------------------------------------------


def test_a_second_contact_message_while_the_first_is_pending_goes_into_the_same_ticket(
    widget, freshdesk
):
    first = widget.post("contact", {"email": "a@b.dk", "message": "My parcel never came"})
    second = widget.post(
        "contact", {"email": "other@b.dk", "message": "Also, the invoice is wrong"}
    )

    assert first.status_code == second.status_code == 202
    assert first.json()["handoff_id"] == second.json()["handoff_id"]
    # The second answer says it joined the first request rather than starting one.
    assert (first.json()["appended"], second.json()["appended"]) == (False, True)
    run_ticket_task(first.json()["handoff_id"])
    [ticket] = freshdesk.tickets
    assert "My parcel never came" in ticket["description"]
    assert "Also, the invoice is wrong" in ticket["description"]
    assert "Also reachable at: other@b.dk" in ticket["description"]
    assert Handoff.objects.get().requests == 2


def test_a_double_clicked_request_is_stored_once(widget):
    for _ in range(2):
        widget.post("contact", {"email": "a@b.dk", "message": "Hello"})

    handoff = Handoff.objects.get()
    assert handoff.message == "Hello" and handoff.requests == 1


def test_a_second_handoff_reason_is_kept_for_the_agents(widget, freshdesk):
    first = widget.post("handoff", {"reason": "Wrong size"}).json()
    widget.post("handoff", {"reason": "And it is broken"})

    run_ticket_task(first["handoff_id"])
    [ticket] = freshdesk.tickets
    assert "Wrong size" in ticket["description"] and "And it is broken" in ticket["description"]


def test_appended_requests_count_against_the_daily_limit(widget, settings):
    settings.HELPDESK_MAX_REQUESTS_PER_CONVERSATION = 2
    widget.post("contact", {"email": "a@b.dk", "message": "one"})
    widget.post("contact", {"email": "a@b.dk", "message": "two"})

    response = widget.post("contact", {"email": "a@b.dk", "message": "three"})

    assert response.status_code == 429
    assert "three" not in Handoff.objects.get().message


def test_with_the_helpdesk_down_every_accepted_message_is_sent_when_it_comes_back(
    widget, freshdesk, settings, django_capture_on_commit_callbacks
):
    from helpdesk.services import handoffs_resend

    settings.HELPDESK_TICKET_MAX_ATTEMPTS = 2
    freshdesk.configure(status=503, retry_after=0)
    first = widget.post("contact", {"email": "a@b.dk", "message": "first"}).json()
    run_ticket_task(first["handoff_id"])  # fails: the helpdesk is down
    # The failed request is taken up again with the next one, which joins it.
    with django_capture_on_commit_callbacks() as enqueued:
        second = widget.post("contact", {"email": "a@b.dk", "message": "second"}).json()
    assert second["handoff_id"] == first["handoff_id"] and len(enqueued) == 1
    widget.post("contact", {"email": "a@b.dk", "message": "third"})
    run_ticket_task(first["handoff_id"])
    assert list(Handoff.objects.values_list("state", "resend")) == [("failed", True)]
    assert freshdesk.tickets == []

    freshdesk.configure(status=None)
    with django_capture_on_commit_callbacks() as enqueued:
        assert handoffs_resend() == 1
    assert len(enqueued) == 1
    assert run_ticket_task(first["handoff_id"]) == "created"

    [ticket] = freshdesk.tickets
    assert all(word in ticket["description"] for word in ("first", "second", "third"))
    assert handoffs_resend() == 0  # nothing left to send


def test_a_refused_ticket_is_not_sent_again_by_itself(widget, freshdesk):
    from helpdesk.services import handoffs_resend

    freshdesk.configure(status=400)
    handoff_id = widget.post("handoff", {}).json()["handoff_id"]
    run_ticket_task(handoff_id)

    assert Handoff.objects.get(pk=handoff_id).resend is False
    assert handoffs_resend() == 0
