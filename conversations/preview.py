"""Preview conversations are made here, where Conversation lives (docs/versions.md#preview-chat).

chatbots' admin page starts one through chatbots.preview.preview_conversation_start, which calls
the starter registered by this app's AppConfig: chatbots sits below conversations and imports
nothing of it.
"""

from __future__ import annotations

from chatbots.models import Chatbot
from chatbots.preview import preview_value
from conversations.access import conversation_token_issue
from conversations.models import Conversation


def preview_conversation_start(
    *, chatbot: Chatbot, choice: str, user, purpose: str = "chat"
) -> tuple[Conversation, str]:
    """A new preview conversation of `chatbot` and its conversation token."""
    preview = preview_value(chatbot=chatbot, choice=choice)
    conversation = Conversation.objects.create(
        chatbot=chatbot,
        preview=preview,
        user_id=f"staff-preview:{user.pk}"[:200],
        metadata={"preview": {"by": user.get_username(), "purpose": purpose}},
    )
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=chatbot.pk)
    return conversation, token
