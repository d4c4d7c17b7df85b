"""Extension points of the turn runner for other apps (orders, images, analytics).

Context providers run after routing and before the answer flow. A provider may add context for
the answer flow, send events to the customer (e.g. an `order` card), record phase timings, or
give the final answer itself (e.g. asking for a missing order number) so no flow is called.
After a turn finishes, `conversations.services.turn_finished` is sent (a Django signal).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from chatbots.config_types import ChatbotConfig, EndpointConfig, FlowConfig
from conversations.turn_types import HistoryMessage


@dataclass
class TurnContext:
    turn_id: str
    conversation_id: str
    config: ChatbotConfig  # the chatbot's resolved configuration (chatbots.selectors)
    flow: FlowConfig  # the answer flow that will run
    question: str
    extracted: dict[str, Any] | None  # the extractor flow's JSON, if one ran
    message_metadata: dict[str, Any]  # metadata stored with the user's message
    history: list[HistoryMessage]
    language: str
    emit: Callable[[str, dict[str, Any]], Awaitable[Any]]  # send an event to the customer
    run_db: Callable[..., Awaitable[Any]]  # run a sync DB function off the event loop
    timings: dict[str, Any]
    # Run another flow of this bot and get its whole answer (recorded in AICall), e.g. the
    # `image` flow: await ctx.flow_text(flow, "Describe this", images=[{name, mime, data_b64}]).
    flow_text: Callable[..., Awaitable[str]] | None = None
    context_parts: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)  # extra prompt/Flowise variables
    final_answer: str | None = None  # set to answer without calling the flow
    metadata: dict[str, Any] = field(default_factory=dict)  # stored on the turn's route
    # Passages the answer uses, in the source_documents shape: the runner sends and stores them.
    sources: list[dict[str, Any]] | None = None

    def add_context(self, text: str) -> None:
        if text:
            self.context_parts.append(text)


ContextProvider = Callable[[TurnContext], Awaitable[None]]
_providers: list[tuple[int, str, ContextProvider]] = []


def register_context_provider(name: str, provider: ContextProvider, *, order: int = 100) -> None:
    """Register once (e.g. in AppConfig.ready); providers run in `order`, then by name."""
    global _providers
    _providers = [p for p in _providers if p[1] != name]
    _providers.append((order, name, provider))
    _providers.sort(key=lambda p: (p[0], p[1]))


def context_providers() -> list[tuple[str, ContextProvider]]:
    return [(name, provider) for _order, name, provider in _providers]


# Observers of every AI call (monitoring's pool statistics): called with phase "start" (record
# None) when a call begins and "end" with the AICall record (a dict) when it ends. They run on
# the worker's event loop, so they must be quick and must not block.
CallObserver = Callable[[str, EndpointConfig, dict[str, Any] | None], Awaitable[None]]
_call_observers: dict[str, CallObserver] = {}


def register_call_observer(name: str, observer: CallObserver) -> None:
    _call_observers[name] = observer


def call_observers() -> list[CallObserver]:
    return list(_call_observers.values())


# Attachments of a customer message (e.g. `image_ids`, `image_data`): a handler validates the
# request field's value for a conversation and returns metadata stored with the user message
# (or raises config.errors.ApiError). Fields without a handler are refused with a clear error.
AttachmentHandler = Callable[[Any, Any], dict[str, Any]]
_attachment_handlers: dict[str, AttachmentHandler] = {}


def register_message_attachment(field_name: str, handler: AttachmentHandler) -> None:
    _attachment_handlers[field_name] = handler


def attachment_handler(field_name: str) -> AttachmentHandler | None:
    return _attachment_handlers.get(field_name)


ATTACHMENT_FIELDS = ("image_data", "image_ids")


def attachments_metadata(conversation: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Metadata for the user message from the attachment fields present in `payload`."""
    from config.errors import ApiError, ErrorCode

    metadata: dict[str, Any] = {}
    for name in ATTACHMENT_FIELDS:
        value = payload.get(name)
        if value in (None, "", [], {}):
            continue
        handler = attachment_handler(name)
        if handler is None:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR, f"`{name}` is not accepted by this installation."
            )
        for key, item in handler(conversation, value).items():
            # `image_data` and `image_ids` together: both lists of images are kept.
            if isinstance(item, list) and isinstance(metadata.get(key), list):
                metadata[key] = metadata[key] + item
            else:
                metadata[key] = item
    return metadata


# Who answers a customer message: called by services.message_submit inside its transaction,
# with the conversation row locked and the message stored, before any turn exists. It returns
# the open human turn that carries the message to a person (no AI turn runs), or None for the
# bot. One router at most (the inbox app's, inbox/services.py message_route); none: the bot.
MessageRouter = Callable[..., Any]
_message_router: list[MessageRouter] = []


# With the router, its answer to "might you take a message of this chatbot's conversation in
# this handling state?", asked first (keyword chatbot_id=, handling=). False lets the message
# take the turn start's short path (conversations/turn_start.py) without calling the router.
MessageRoutePrefilter = Callable[..., bool]
_message_route_prefilter: list[MessageRoutePrefilter] = []


def register_message_router(
    router: MessageRouter, *, may_route: MessageRoutePrefilter | None = None
) -> None:
    """One router; `may_route` (optional) must say True whenever the router could take the
    message. Without it every message asks the router."""
    _message_router[:] = [router]
    _message_route_prefilter[:] = [may_route] if may_route else []


def message_router() -> MessageRouter | None:
    return _message_router[0] if _message_router else None


def message_may_route(*, chatbot_id: int, handling: str) -> bool:
    """Whether the registered router could take this message (True when it cannot say)."""
    if not _message_router:
        return False
    if not _message_route_prefilter:
        return True
    return _message_route_prefilter[0](chatbot_id=chatbot_id, handling=handling)


# The customer's vote on an answer, sent over the conversation's socket: the quality app registers
# the recorder its REST endpoint calls (quality.services.answer_feedback_record), called with
# conversation=, message_id=, value= and comment=; it returns (feedback, created) and raises
# config.errors.ApiError for a vote it refuses. None registered: votes are refused.
FeedbackRecorder = Callable[..., tuple[Any, bool]]
_feedback_recorder: list[FeedbackRecorder] = []


def register_feedback_recorder(recorder: FeedbackRecorder) -> None:
    _feedback_recorder[:] = [recorder]


def feedback_recorder() -> FeedbackRecorder | None:
    return _feedback_recorder[0] if _feedback_recorder else None
