"""A person takes over: states, triggers, agent replies on the human turn's stream, hand-back."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from config.errors import ApiError
from conversations.models import AICall, Conversation, Message, Turn
from conversations.services import turns_reap_stale
from inbox import services
from inbox.models import CannedResponse, HandoffRule

pytestmark = pytest.mark.django_db


def kinds(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


def test_asking_for_a_person_with_nobody_online_offers_the_helpdesk_and_changes_nothing(
    customer, agent
):
    customer.say("Hello")
    response = customer.post("person", {"reason": "late parcel"})

    assert response.status_code == 200
    body = response.json()
    assert (body["mode"], body["turn_id"]) == ("helpdesk", None)
    assert body["support"]["offer"] == "contact"  # no helpdesk connected to this bot
    conversation = Conversation.objects.get(pk=customer.session_id)
    assert conversation.handling == Conversation.Handling.BOT
    assert not Turn.objects.filter(kind=Turn.Kind.HUMAN).exists()


def test_asking_outside_opening_hours_offers_the_helpdesk_even_with_an_agent_online(
    customer, online, bot
):
    bot.opening_hours = {}
    bot.save(update_fields=["opening_hours"])
    customer.say("Hello")
    assert customer.post("person", {}).json()["mode"] == "helpdesk"


def test_a_whole_takeover_reaches_the_widget_in_order_and_no_ai_turn_runs_meanwhile(
    customer, online, django_capture_on_commit_callbacks
):
    customer.say("Where is my parcel?")
    with django_capture_on_commit_callbacks(execute=True):
        asked = customer.post("person", {"reason": "late"})
    assert asked.status_code == 200
    human = asked.json()["turn_id"]
    assert asked.json()["state"] == "waiting_for_agent"

    conversation = Conversation.objects.get(pk=customer.session_id)
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_take(conversation_id=conversation.pk, agent=online)
        services.agent_reply(conversation_id=conversation.pk, agent=online, text="Hi, I'm Anna.")
    with django_capture_on_commit_callbacks(execute=True):
        during = customer.say("It was due Monday")
    assert during["turn_id"] == human  # the widget keeps following the person's turn
    message = Message.objects.get(pk=during["message_id"])
    assert (message.role, message.content) == ("user", "It was due Monday")
    assert Turn.objects.filter(kind=Turn.Kind.AI).count() == 1  # only the first message's

    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_hand_back(conversation_id=conversation.pk, agent=online)

    events = customer.events(human)
    assert kinds(events) == [
        "start",
        "agent_waiting",
        "agent_joined",
        "agent_message",
        "customer_message",
        "agent_left",
        "end",
    ]
    assert [e["id"] for e in events] == list(range(1, 8))
    assert events[2]["data"]["agent"] == {"name": "Anna"}
    assert events[3]["data"]["text"] == "Hi, I'm Anna."
    assert events[4]["data"]["message_id"] == during["message_id"]
    assert events[6]["data"]["handled_by"] == "agent"
    turn = Turn.objects.get(pk=human)
    assert turn.status == Turn.Status.COMPLETED
    stored = Message.objects.get(pk=events[3]["data"]["message_id"])
    assert (stored.role, stored.agent_id) == ("agent", online.pk)

    after = customer.say("Thanks! And do you sell gift cards?")
    assert after["turn_id"] != human
    assert Turn.objects.get(pk=after["turn_id"]).kind == Turn.Kind.AI
    assert not AICall.objects.exists()  # nothing ran while a person had the conversation


def test_polling_again_from_any_point_gives_each_agent_message_exactly_once(
    customer, online, django_capture_on_commit_callbacks
):
    customer.say("Hello")
    with django_capture_on_commit_callbacks(execute=True):
        human = customer.post("person", {}).json()["turn_id"]
    conversation_id = customer.session_id
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):
            services.agent_reply(conversation_id=conversation_id, agent=online, text=f"reply {n}")
    everything = customer.events(human)
    for cut in range(len(everything) + 1):
        rest = customer.events(human, after=cut)
        seen = everything[:cut] + rest
        texts = [e["data"]["text"] for e in seen if e["event"] == "agent_message"]
        assert texts == [f"reply {n}" for n in range(5)]


def test_a_keyword_rule_sends_the_message_to_a_person_instead_of_the_bot(
    customer, online, bot, django_capture_on_commit_callbacks
):
    HandoffRule.objects.create(chatbot=bot, keywords="Complaint\nspeak to a human")
    customer.say("Hi")
    with django_capture_on_commit_callbacks(execute=True):
        data = customer.say("I want to make a COMPLAINT")
    turn = Turn.objects.get(pk=data["turn_id"])
    assert turn.kind == Turn.Kind.HUMAN and turn.user_message_id == _uuid(data["message_id"])
    events = customer.events(data["turn_id"])
    assert kinds(events) == ["start", "agent_waiting", "customer_message"]
    assert events[1]["data"] == {"reason": "keyword", "usual_wait_minutes": 5}


def test_a_keyword_with_nobody_online_is_answered_by_the_bot(customer, agent, bot):
    HandoffRule.objects.create(chatbot=bot, keywords="complaint")
    data = customer.say("complaint!")
    assert Turn.objects.get(pk=data["turn_id"]).kind == Turn.Kind.AI


def test_after_n_failed_bot_answers_the_next_message_goes_to_a_person(customer, online, bot):
    HandoffRule.objects.create(chatbot=bot, failed_turns=2)
    for text in ("one", "two"):
        Turn.objects.filter(pk=customer.say(text)["turn_id"]).update(status=Turn.Status.FAILED)
    data = customer.say("three")
    assert Turn.objects.get(pk=data["turn_id"]).kind == Turn.Kind.HUMAN
    assert Conversation.objects.get(pk=customer.session_id).handling == "waiting_for_agent"


def test_one_failed_answer_of_two_does_not_hand_over(customer, online, bot):
    HandoffRule.objects.create(chatbot=bot, failed_turns=2)
    Turn.objects.filter(pk=customer.say("one")["turn_id"]).update(status=Turn.Status.FAILED)
    Turn.objects.filter(pk=customer.say("two")["turn_id"]).update(status=Turn.Status.COMPLETED)
    assert Turn.objects.get(pk=customer.say("three")["turn_id"]).kind == Turn.Kind.AI


def test_asking_twice_returns_the_same_human_turn(customer, online):
    customer.say("Hello")
    first = customer.post("person", {}).json()["turn_id"]
    second = customer.post("person", {}).json()["turn_id"]
    assert first == second
    assert Turn.objects.filter(kind=Turn.Kind.HUMAN).count() == 1


def test_the_reaper_leaves_a_long_human_conversation_alone(customer, online, settings):
    customer.say("Hello")
    human = customer.post("person", {}).json()["turn_id"]
    Turn.objects.filter(pk=human).update(heartbeat_at=timezone.now() - dt.timedelta(hours=3))
    turns_reap_stale()
    assert Turn.objects.get(pk=human).status == Turn.Status.RUNNING


def test_an_agent_of_another_shop_and_a_viewer_cannot_act_on_the_conversation(
    customer, online, outsider, viewer
):
    customer.say("Hello")
    customer.post("person", {})
    for person, status, code in (
        (outsider, 404, "CONVERSATION_NOT_FOUND"),
        (viewer, 403, "PERMISSION_DENIED"),
    ):
        for act in (
            lambda p: services.conversation_take(conversation_id=customer.session_id, agent=p),
            lambda p: services.agent_reply(conversation_id=customer.session_id, agent=p, text="hi"),
            lambda p: services.conversation_hand_back(conversation_id=customer.session_id, agent=p),
        ):
            with pytest.raises(ApiError) as err:
                act(person)
            assert (err.value.status, err.value.code) == (status, code)


def test_a_reply_to_another_agents_conversation_is_refused_until_taken_over(
    customer, online, second_agent
):
    customer.say("Hello")
    customer.post("person", {})
    services.conversation_take(conversation_id=customer.session_id, agent=online)
    with pytest.raises(ApiError) as err:
        services.agent_reply(conversation_id=customer.session_id, agent=second_agent, text="x")
    assert (err.value.status, err.value.code) == (409, "CONFLICT")
    services.conversation_take(conversation_id=customer.session_id, agent=second_agent)
    services.agent_reply(conversation_id=customer.session_id, agent=second_agent, text="x")
    conversation = Conversation.objects.get(pk=customer.session_id)
    assert conversation.assigned_agent_id == second_agent.pk


def test_a_shortcut_inserts_the_shops_canned_response(customer, online):
    from chatbots.tests.factories import shop_for_tests

    CannedResponse.objects.create(
        shop=shop_for_tests(), shortcut="returns", text="Returns are free for 30 days."
    )
    customer.say("Hello")
    customer.post("person", {})
    message = services.agent_reply(
        conversation_id=customer.session_id, agent=online, text="/returns See /unknown, a/returns"
    )
    assert message.content == "Returns are free for 30 days. See /unknown, a/returns"


def test_the_bot_sees_the_agents_answers_as_the_shops_in_its_history(customer, online):
    from conversations.services import turn_claim

    customer.say("Hello")
    customer.post("person", {})
    services.agent_reply(conversation_id=customer.session_id, agent=online, text="Hi from Anna")
    services.conversation_hand_back(conversation_id=customer.session_id, agent=online)
    nxt = customer.say("Bot again?")
    work = turn_claim(turn_id=nxt["turn_id"], worker="test")
    assert work is not None
    history = work.history
    assert {"role": "assistant", "content": "Hi from Anna"} in history


@pytest.mark.parametrize(
    "body", [{"reason": "x" * 501}, {"reason": "a\x00b"}, {"reason": ["x"]}, [1, 2]]
)
def test_a_bad_person_request_is_a_400_and_changes_nothing(customer, online, body):
    customer.say("Hello")
    response = customer.post("person", body)
    assert response.status_code == 400
    assert not Turn.objects.filter(kind=Turn.Kind.HUMAN).exists()


def test_asking_for_a_person_without_the_token_is_a_404(customer, online):
    customer.say("Hello")
    assert customer.post("person", {}, token=None).status_code == 404
    assert customer.post("person", {}, token="forged").status_code == 404
    assert customer.post("typing", {"typing": True}, token=None).status_code == 404


def _uuid(value: str):
    import uuid

    return uuid.UUID(value)


@pytest.mark.parametrize(("action", "next_"), [("end", "ended"), ("resolve", "resolved")])
def test_a_customer_who_ends_or_resolves_closes_the_persons_turn(
    customer, online, django_capture_on_commit_callbacks, action, next_
):
    customer.say("Hello")
    with django_capture_on_commit_callbacks(execute=True):
        human = customer.post("person", {}).json()["turn_id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = customer.post(action, {})
    assert response.status_code == 200, response.content
    events = customer.events(human)
    assert kinds(events)[-1] == "end" and events[-1]["data"]["next"] == next_
    assert Turn.objects.get(pk=human).status == Turn.Status.COMPLETED
    conversation = Conversation.objects.get(pk=customer.session_id)
    assert (conversation.handling, conversation.human_turn_id) == ("bot", None)


def test_a_retried_message_to_a_person_is_stored_once(customer, online, client):
    customer.say("Hello")
    human = customer.post("person", {}).json()["turn_id"]

    def say_with_key(text: str):
        return client.post(
            "/api/process-message",
            {"chatbot_id": "shop", "message_text": text, "session_id": customer.session_id},
            content_type="application/json",
            headers={"Authorization": f"Bearer {customer.token}", "Idempotency-Key": "k-1"},
        )

    first, again = say_with_key("Are you there?"), say_with_key("Are you there?")
    assert first.status_code == again.status_code == 200
    assert first.json()["turn_id"] == again.json()["turn_id"] == human
    assert first.json()["message_id"] == again.json()["message_id"]
    assert Message.objects.filter(content="Are you there?").count() == 1
    assert say_with_key("Something else").status_code == 422


def test_a_request_nobody_took_for_a_day_ends_with_the_conversation(
    customer, online, settings, django_capture_on_commit_callbacks
):
    from conversations.services import conversations_expire_idle

    settings.SESSION_INACTIVITY_MINUTES = 60
    customer.say("Hello")
    human = customer.post("person", {}).json()["turn_id"]
    Conversation.objects.filter(pk=customer.session_id).update(
        last_activity_at=timezone.now() - dt.timedelta(hours=2)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert conversations_expire_idle() == 1
    assert Turn.objects.get(pk=human).status == Turn.Status.COMPLETED
    assert Conversation.objects.get(pk=customer.session_id).handling == "bot"
