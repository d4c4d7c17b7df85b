"""Preview conversations: staff chat with a bot's draft or one of its versions from the admin,
through the same WebSocket and turn runner customers use, without touching customers' traffic
(docs/versions.md#preview-chat).

A preview conversation is an ordinary Conversation with `preview` set ("draft" or a version
number): the runner reads that configuration (chatbots.selectors.chatbot_turn_config_get), and
analytics, the inbox and dashboards leave it out. Its token is an ordinary conversation token,
issued only by the staff endpoint (chatbots.version_admin) after the admin's change-permission
check. The conversation itself is made by conversations (conversations/preview.py), through the
starter it registers here.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.contrib.admin.utils import quote
from django.urls import reverse

from chatbots.models import Chatbot


class PreviewChoiceError(ValueError):
    pass


def preview_value(*, chatbot: Chatbot, choice: str) -> str:
    """ "draft" or the number of one of this bot's versions, as text; anything else refused."""
    choice = (choice or "draft").strip()
    if choice == "draft":
        return "draft"
    if choice.isdigit() and chatbot.versions.filter(number=int(choice)).exists():
        return str(int(choice))
    raise PreviewChoiceError("Choose the draft or one of this chatbot's versions.")


class PreviewStarter(Protocol):
    def __call__(
        self, *, chatbot: Chatbot, choice: str, user, purpose: str = "chat"
    ) -> tuple[Any, str]: ...


# conversations (above chatbots) makes the conversation: its AppConfig registers
# conversations.preview.preview_conversation_start when it loads.
_preview_starter: list[PreviewStarter] = []


def register_preview_starter(starter: PreviewStarter) -> None:
    _preview_starter[:] = [starter]


def preview_conversation_start(*, chatbot: Chatbot, choice: str, user, purpose: str = "chat"):
    """A new preview conversation of `chatbot` and its conversation token, made by the starter
    conversations registered."""
    if not _preview_starter:
        raise RuntimeError("No preview starter registered: the conversations app is not loaded.")
    return _preview_starter[0](chatbot=chatbot, choice=choice, user=user, purpose=purpose)


def preview_url(*, chatbot: Chatbot) -> str:
    return reverse("admin:chatbots_chatbot_preview", args=[quote(chatbot.pk)])
