"""Which chatbots a user may use, read from Chatbot rows with accounts.access's one rule.

The rule itself (`accounts.access.chatbot_filter`: operators, members with a role, the bot's API
users) stays in accounts; these two answers query Chatbot, so they live with it and accounts
imports nothing of chatbots.
"""

from __future__ import annotations

from accounts.access import chatbot_filter
from accounts.models import Role
from chatbots.models import Chatbot


def chatbot_ids_for(
    user, *, min_role: str = Role.VIEWER, api_users: bool = True
) -> list[int] | None:
    """Ids of the chatbots the user may use (as a member with `min_role`, or as one of the
    bot's API users unless api_users=False); None means every chatbot."""
    condition = chatbot_filter(user, min_role=min_role, api_users=api_users)
    if condition is None:
        return None
    return list(Chatbot.objects.filter(condition).values_list("pk", flat=True).distinct())


def user_may_use_chatbot(user, chatbot_id: int, *, min_role: str = Role.AGENT) -> bool:
    """Start, write into or end the bot's conversations (min_role AGENT) or read them
    (min_role VIEWER): operators, members with that role, the bot's API users."""
    condition = chatbot_filter(user, min_role=min_role)
    if condition is None:
        return True
    return Chatbot.objects.filter(condition, pk=chatbot_id).exists()
