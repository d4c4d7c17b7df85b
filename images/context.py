"""The `images` context provider: describe the customer's photos before the answer flow runs.

Each image of the user message goes to the chatbot's `image` flow (OpenAI-compatible vision
parts or Flowise `uploads`); the description is stored with the message and the image, given
to the answer flow as context, and announced in a `metadata` event. A bot without an image
flow says plainly that it cannot look at pictures and points to a person.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from aiclients.errors import UpstreamError
from chatbots.config_types import ChatbotConfig, FlowConfig
from chatbots.services import flow_prompt_render
from conversations.hooks import TurnContext
from images import selectors, services
from images.validation import FORMATS

logger = logging.getLogger(__name__)

EXTENSIONS = {mime: ext for mime, ext in FORMATS.values()}

TEXTS: dict[str, dict[str, str]] = {
    "cannot_look": {
        "en": "I'm sorry, I can't look at pictures here. Please tell me in words what the "
        "picture shows, or use our contact form{contact} so one of our staff can look at it.",
        "da": "Beklager, jeg kan ikke se billeder her. Fortæl mig gerne med ord, hvad billedet "
        "viser, eller brug vores kontaktformular{contact}, så en af vores medarbejdere kan se "
        "på det.",
    },
    "contact": {"en": " or write to {email}", "da": " eller skriv til {email}"},
    "prompt": {
        "en": "A customer of {shop} sent this image to customer service{question}. Describe in a "
        "few sentences what it shows: the product, any visible text (labels, sizes, order "
        "numbers) and any damage or defect. Answer in English.",
        "da": "En kunde hos {shop} har sendt dette billede til kundeservice{question}. Beskriv "
        "kort, hvad det viser: produktet, synlig tekst (etiketter, størrelser, ordrenumre) og "
        "eventuelle skader eller fejl. Svar på dansk.",
    },
    "prompt_question": {"en": ' with the message "{text}"', "da": ' med beskeden "{text}"'},
}

# Context for the answer flow: instructions to a model, so in one language whatever the bot's.
CONTEXT_DESCRIBED = "The customer sent an image. Description: {description}"
CONTEXT_FAILED = (
    "The customer sent an image, but it could not be looked at right now. If it matters for "
    "the answer, ask the customer to describe it in words."
)


def image_flow(config: ChatbotConfig) -> FlowConfig | None:
    """The bot's enabled `image` flow on an endpoint that can see (the builtin one cannot)."""
    for flow in config.get("flows") or []:
        if flow.get("role") == "image" and flow["endpoint"]["kind"] != "builtin":
            return flow
    return None


def cannot_look_text(config: ChatbotConfig, language: str) -> str:
    lang = language if language in ("da", "en") else "en"
    email = config.get("contact_email") or ""
    contact = TEXTS["contact"][lang].format(email=email) if email else ""
    return TEXTS["cannot_look"][lang].format(contact=contact)


def default_prompt(config: ChatbotConfig, language: str, question: str) -> str:
    lang = language if language in ("da", "en") else "en"
    text = " ".join((question or "").split())[:500]
    asked = TEXTS["prompt_question"][lang].format(text=text) if text else ""
    return TEXTS["prompt"][lang].format(shop=config.get("name") or "the shop", question=asked)


def description_prompt(
    config: ChatbotConfig, flow: FlowConfig, language: str, question: str
) -> str:
    """The image flow's prompt template rendered, else the default prompt in the bot's language."""
    rendered = flow_prompt_render(config=config, flow=flow, turn={"question": question})
    return (rendered or "").strip() or default_prompt(config, language, question)


async def describe_image(
    ctx: TurnContext,
    flow_text: Callable[..., Awaitable[str]],
    flow: FlowConfig,
    prompt: str,
    image: dict[str, Any],
) -> tuple[str | None, str | None]:
    """(description, None) or (None, error code) after IMAGE_DESCRIPTION_ATTEMPTS attempts;
    `flow_text` is the turn's (ctx.flow_text, which the provider checked is there)."""
    try:
        data = await ctx.run_db(selectors.image_file_read, storage_name=image["storage_name"])
    except Exception:
        logger.warning("turn %s: image %s cannot be read", ctx.turn_id, image["id"], exc_info=True)
        return None, "IMAGE_UNAVAILABLE"
    parts = [
        {
            # A neutral name: the customer's file name may say more than the picture.
            "name": "image" + EXTENSIONS.get(image["mime"], ""),
            "mime": image["mime"],
            "data_b64": base64.b64encode(data).decode("ascii"),
        }
    ]
    # The template is already rendered into the prompt; the runner must not add it again as a
    # system prompt / Flowise `vars.prompt`.
    call_flow: FlowConfig = {**flow, "template": None}
    attempts = max(1, settings.IMAGE_DESCRIPTION_ATTEMPTS)
    error = "UPSTREAM_EMPTY"
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(settings.IMAGE_DESCRIPTION_BACKOFF_SECONDS * 2 ** (attempt - 1))
        try:
            text = await flow_text(call_flow, prompt, images=parts, purpose="image")
        except UpstreamError as err:
            error = err.code
            logger.warning(
                "turn %s: describing image %s failed (attempt %d/%d): %s",
                ctx.turn_id,
                image["id"],
                attempt + 1,
                attempts,
                err.code,
            )
            if not err.retryable:
                break
            continue
        text = (text or "").strip()
        if text:
            return text[: services.DESCRIPTION_MAX_CHARS], None
        error = "UPSTREAM_EMPTY"
    return None, error


async def image_context_provider(ctx: TurnContext) -> None:
    entries = ctx.message_metadata.get("images") or []
    image_ids = [
        str(entry["image_id"])
        for entry in entries
        if isinstance(entry, dict) and entry.get("image_id")
    ]
    if not image_ids:
        return
    flow = image_flow(ctx.config)
    flow_text = ctx.flow_text
    if flow is None or flow_text is None:
        ctx.final_answer = cannot_look_text(ctx.config, ctx.language)
        ctx.metadata["images"] = {"described": False, "reason": "no_image_flow"}
        return
    images = await ctx.run_db(
        selectors.images_for_description,
        conversation_id=ctx.conversation_id,
        image_ids=image_ids,
    )
    if not images:
        return
    prompt = await ctx.run_db(description_prompt, ctx.config, flow, ctx.language, ctx.question)

    async def one(image: dict[str, Any]) -> dict[str, Any]:
        # Described before (the same photo in an earlier message, or a second provider run in
        # this turn): no second AI call.
        if image["description_status"] == "described" and image["description"]:
            return {"image_id": image["id"], "description": image["description"], "error": None}
        description, error = await describe_image(ctx, flow_text, flow, prompt, image)
        return {"image_id": image["id"], "description": description, "error": error}

    results = list(await asyncio.gather(*(one(image) for image in images)))
    first_time = await ctx.run_db(
        services.image_descriptions_record, turn_id=ctx.turn_id, results=results
    )
    for result in results:
        if result["description"]:
            ctx.add_context(CONTEXT_DESCRIBED.format(description=result["description"]))
        else:
            ctx.add_context(CONTEXT_FAILED)
    ctx.metadata["images"] = {
        "described": sum(1 for r in results if r["description"]),
        "failed": sum(1 for r in results if not r["description"]),
    }
    if first_time:
        await ctx.emit(
            "metadata",
            {
                "image_descriptions": [
                    {
                        "image_id": r["image_id"],
                        "description": r["description"],
                        **({"error": r["error"]} if r["error"] else {}),
                    }
                    for r in results
                ]
            },
        )
