"""Preview conversations: staff chat with a bot's draft or one of its versions from the admin,
through the same WebSocket and turn runner customers use, without touching customers' traffic
(docs/versions.md#preview-chat).

A preview conversation is an ordinary Conversation with `preview` set ("draft" or a version
number): the runner reads that configuration (chatbots.selectors.chatbot_turn_config_get), and
analytics, the inbox and dashboards leave it out. Its token is an ordinary conversation token,
issued only by the staff endpoint below after the admin's change-permission check.
"""

from __future__ import annotations

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


def preview_conversation_start(*, chatbot: Chatbot, choice: str, user, purpose: str = "chat"):
    """A new preview conversation of `chatbot` and its conversation token."""
    from conversations.access import conversation_token_issue
    from conversations.models import Conversation

    preview = preview_value(chatbot=chatbot, choice=choice)
    conversation = Conversation.objects.create(
        chatbot=chatbot,
        preview=preview,
        user_id=f"staff-preview:{user.pk}"[:200],
        metadata={"preview": {"by": user.get_username(), "purpose": purpose}},
    )
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=chatbot.pk)
    return conversation, token


def preview_url(*, chatbot: Chatbot) -> str:
    return reverse("admin:chatbots_chatbot_preview", args=[quote(chatbot.pk)])
