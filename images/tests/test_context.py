"""The `images` context provider: prompt, description, retries, fallback and the no-flow answer.

The AI call itself is the runner's (`ctx.flow_text`); here it is a recorder so each rule of the
provider can be checked alone. tests/e2e/test_images.py runs the same path against the fake
OpenAI and Flowise servers with the real worker.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from aiclients.errors import UpstreamError
from chatbots.models import AIEndpoint, PromptTemplate, TemplateAssignment
from chatbots.selectors import chatbot_config_get
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow, shop_for_tests
from conversations import services as conversation_services
from conversations.hooks import TurnContext
from images import services
from images.context import cannot_look_text, description_prompt, image_context_provider
from images.models import ImageUpload
from images.tests.samples import image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_waiting(settings):
    settings.IMAGE_DESCRIPTION_BACKOFF_SECONDS = 0


def run(provider, ctx) -> None:
    # async_to_sync + sync_to_async (in `context`) bring the provider's database work back to
    # this thread, so it sees the test's transaction.
    async_to_sync(provider)(ctx)


def vision_bot(**kwargs):
    bot = create_chatbot(image_upload_enabled=True, contact_email="help@shop.example", **kwargs)
    endpoint = create_endpoint(kind=AIEndpoint.Kind.OPENAI, base_url="http://127.0.0.1:9/v1")
    flow = create_flow(chatbot=bot, name="vision", role="image", endpoint=endpoint)
    return bot, flow


class Recorder:
    """Stands in for the runner's flow_text: answers from a script, remembers every call."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls: list[dict] = []

    async def __call__(self, flow, question, *, purpose, images=None):
        self.calls.append(
            {"flow": flow, "question": question, "purpose": purpose, "images": images}
        )
        outcome = self.outcomes.pop(0) if self.outcomes else "A described image."
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def context(bot, flow_text, *, image_count=1, text="Is the bottle broken?"):
    conversation = conversation_services.conversation_start(chatbot=bot)
    images = [
        services.image_store(conversation=conversation, data=image_bytes("PNG", size=(40 + i, 30)))
        for i in range(image_count)
    ]
    turn, _ = conversation_services.message_submit(
        conversation=conversation,
        text=text,
        metadata={"images": [services.image_message_entry(i) for i in images]},
    )
    events: list[tuple[str, dict]] = []

    async def emit(event, data):
        events.append((event, data))

    async def run_db(fn, *args, **kwargs):
        return await sync_to_async(fn)(*args, **kwargs)

    config = chatbot_config_get(public_id=bot.public_id)
    ctx = TurnContext(
        turn_id=str(turn.pk),
        conversation_id=str(conversation.pk),
        config=config,
        flow={"name": "main"},
        question=text,
        extracted=None,
        message_metadata=turn.user_message.metadata,
        history=[],
        language=config["language"],
        emit=emit,
        run_db=run_db,
        timings={},
        flow_text=flow_text,
    )
    return ctx, turn, images, events


def test_each_image_is_sent_to_the_image_flow_and_its_description_reaches_the_answer():
    bot, _flow = vision_bot()
    recorder = Recorder("A green bottle with a cracked neck.")
    ctx, turn, images, events = context(bot, recorder)
    run(image_context_provider, ctx)
    [call] = recorder.calls
    assert call["purpose"] == "image" and call["flow"]["role"] == "image"
    assert call["images"][0]["mime"] == "image/png" and call["images"][0]["name"] == "image.png"
    assert "Is the bottle broken?" in call["question"]
    assert ctx.context_parts == [
        "The customer sent an image. Description: A green bottle with a cracked neck."
    ]
    assert events == [
        (
            "metadata",
            {
                "image_descriptions": [
                    {
                        "image_id": str(images[0].id),
                        "description": "A green bottle with a cracked neck.",
                    }
                ]
            },
        )
    ]
    turn.user_message.refresh_from_db()
    assert turn.user_message.metadata["images"][0]["description"].startswith("A green bottle")
    images[0].refresh_from_db()
    assert images[0].description_status == "described"


def test_a_second_run_in_the_same_turn_reuses_the_description_and_announces_nothing():
    bot, _flow = vision_bot()
    recorder = Recorder("First look.")
    ctx, *_rest, events = context(bot, recorder)
    run(image_context_provider, ctx)
    ctx.context_parts.clear()
    run(image_context_provider, ctx)
    assert len(recorder.calls) == 1 and len(events) == 1
    assert ctx.context_parts == ["The customer sent an image. Description: First look."]


def test_a_failed_description_is_tried_again():
    bot, _flow = vision_bot()
    recorder = Recorder(UpstreamError("UPSTREAM_UNAVAILABLE", "503"), "Second time lucky.")
    ctx, *_rest = context(bot, recorder)
    run(image_context_provider, ctx)
    assert len(recorder.calls) == 2
    assert ctx.context_parts == ["The customer sent an image. Description: Second time lucky."]


def test_when_every_attempt_fails_the_answer_is_told_and_the_event_says_so(settings):
    settings.IMAGE_DESCRIPTION_ATTEMPTS = 3
    bot, _flow = vision_bot()
    recorder = Recorder(*[UpstreamError("UPSTREAM_TIMEOUT", "slow")] * 3)
    ctx, _turn, images, events = context(bot, recorder)
    run(image_context_provider, ctx)
    assert len(recorder.calls) == 3
    assert "could not be looked at" in ctx.context_parts[0]
    assert ctx.final_answer is None  # the answer flow still answers
    assert events[0][1]["image_descriptions"] == [
        {"image_id": str(images[0].id), "description": None, "error": "UPSTREAM_TIMEOUT"}
    ]
    images[0].refresh_from_db()
    assert (images[0].description_status, images[0].description_error) == (
        "failed",
        "UPSTREAM_TIMEOUT",
    )


def test_errors_that_cannot_get_better_are_not_retried():
    bot, _flow = vision_bot()
    recorder = Recorder(UpstreamError("UPSTREAM_AUTH", "401"), "never reached")
    ctx, *_rest = context(bot, recorder)
    run(image_context_provider, ctx)
    assert len(recorder.calls) == 1


def test_every_image_of_the_message_is_described():
    bot, _flow = vision_bot()
    recorder = Recorder("One.", "Two.")
    ctx, *_rest, events = context(bot, recorder, image_count=2)
    run(image_context_provider, ctx)
    assert len(recorder.calls) == 2
    assert len(events[0][1]["image_descriptions"]) == 2 and len(ctx.context_parts) == 2


def test_the_prompt_comes_from_the_image_flows_template():
    bot, flow = vision_bot()
    template = PromptTemplate.objects.create(
        shop=shop_for_tests(),
        name="vision-da",
        text="Beskriv billedet for {{shop_name}} ({{tone}}). Kunden skrev: {{question}}",
    )
    TemplateAssignment.objects.create(
        chatbot=bot, flow=flow, template=template, overrides={"tone": "kort"}
    )
    config = chatbot_config_get(public_id=bot.public_id)
    image_flow = next(f for f in config["flows"] if f["role"] == "image")
    prompt = description_prompt(config, image_flow, "da", "Er den i stykker?")
    assert prompt == f"Beskriv billedet for {bot.name} (kort). Kunden skrev: Er den i stykker?"


def test_the_template_is_not_sent_twice_as_a_system_prompt():
    bot, flow = vision_bot()
    template = PromptTemplate.objects.create(
        shop=shop_for_tests(), name="vision-en", text="Describe: {{question}}"
    )
    TemplateAssignment.objects.create(chatbot=bot, flow=flow, template=template)
    recorder = Recorder("ok")
    ctx, *_rest = context(bot, recorder)
    run(image_context_provider, ctx)
    assert recorder.calls[0]["question"] == "Describe: Is the bottle broken?"
    assert recorder.calls[0]["flow"]["template"] is None


def test_without_a_template_the_default_prompt_speaks_the_bots_language():
    bot, _flow = vision_bot(language="da")
    config = chatbot_config_get(public_id=bot.public_id)
    image_flow = next(f for f in config["flows"] if f["role"] == "image")
    prompt = description_prompt(config, image_flow, "da", "Hvad er det?")
    assert "Svar på dansk" in prompt and "Hvad er det?" in prompt


@pytest.mark.parametrize(
    ("language", "phrase"),
    [("en", "can't look at pictures"), ("da", "kan ikke se billeder")],
)
def test_a_bot_without_an_image_flow_says_it_cannot_look_and_offers_contact(language, phrase):
    bot = create_chatbot(
        image_upload_enabled=True, language=language, contact_email="hi@shop.example"
    )
    recorder = Recorder()
    ctx, *_rest, events = context(bot, recorder)
    run(image_context_provider, ctx)
    assert recorder.calls == [] and events == []
    assert phrase in ctx.final_answer and "hi@shop.example" in ctx.final_answer
    assert ctx.final_answer == cannot_look_text(ctx.config, language)


def test_an_image_flow_on_the_builtin_endpoint_cannot_see():
    bot = create_chatbot(image_upload_enabled=True)
    create_flow(chatbot=bot, name="vision", role="image")  # builtin endpoint
    recorder = Recorder()
    ctx, *_rest = context(bot, recorder)
    run(image_context_provider, ctx)
    assert recorder.calls == [] and "can't look at pictures" in ctx.final_answer


def test_a_message_without_images_is_left_alone():
    bot, _flow = vision_bot()
    recorder = Recorder()
    ctx, *_rest, events = context(bot, recorder, image_count=0)
    run(image_context_provider, ctx)
    assert recorder.calls == [] and events == [] and ctx.context_parts == []
    assert not ImageUpload.objects.exists()
