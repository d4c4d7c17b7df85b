"""What the inbox page reads: its lists and counts, one conversation, the shop's canned responses.

Scoped by the one access rule: a member sees the conversations of their shops' chatbots
(viewers too, read-only), an operator every shop's; anything else is answered like nothing.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from accounts import access
from accounts.models import Membership, Role
from analytics.models import ConversationAnalysis
from analytics.selectors import human_figures
from config.errors import ApiError, ErrorCode
from conversations.models import Conversation, Message
from inbox.models import CannedResponse, PrivateNote

VIEWS = ("waiting", "mine", "open")
LIST_LIMIT = 100


def _scoped(user) -> QuerySet[Conversation]:
    # Staff previews (chatbots/preview.py) never wait for a person.
    conversations = Conversation.objects.filter(preview__isnull=True)
    return access.scope(conversations, user, via="chatbot__shop")


def inbox_counts(*, user) -> dict[str, int]:
    # One aggregate over the conversation_inbox index (handling != bot).
    row = (
        _scoped(user)
        .exclude(handling=Conversation.Handling.BOT)
        .aggregate(
            waiting=Count("pk", filter=Q(handling=Conversation.Handling.WAITING)),
            mine=Count(
                "pk", filter=Q(handling=Conversation.Handling.AGENT, assigned_agent=user.pk)
            ),
            open=Count("pk"),
        )
    )
    return {name: row[name] or 0 for name in VIEWS}


def inbox_conversations(*, user, view: str, label: str = "") -> list[dict[str, Any]]:
    rows = _scoped(user).exclude(handling=Conversation.Handling.BOT)
    if label:
        rows = rows.filter(labels__name=label.strip().lower())
    if view == "waiting":
        rows = rows.filter(handling=Conversation.Handling.WAITING)
    elif view == "mine":
        rows = rows.filter(handling=Conversation.Handling.AGENT, assigned_agent=user.pk)
    elif view != "open":
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            "`view` is one of waiting, mine, open.",
            details={"parameter": "view"},
        )
    rows = (
        rows.select_related("chatbot", "assigned_agent")
        .prefetch_related("labels")
        .order_by("handoff_at")[:LIST_LIMIT]
    )
    return [conversation_summary(c) for c in rows]


def conversation_summary(conversation: Conversation) -> dict[str, Any]:
    last = (
        Message.objects.filter(conversation=conversation, role=Message.Role.USER)
        .order_by("-sequence")
        .values_list("content", flat=True)
        .first()
    )
    agent = conversation.assigned_agent
    return {
        "conversation_id": str(conversation.pk),
        "chatbot": conversation.chatbot.name,
        "handling": conversation.handling,
        "status": conversation.status,
        "assigned_agent": (
            {"id": agent.pk, "name": agent.first_name or agent.get_username()} if agent else None
        ),
        "handoff_at": conversation.handoff_at,
        "last_activity_at": conversation.last_activity_at,
        "last_customer_text": (last or "")[:200],
        "labels": [label.name for label in conversation.labels.all()],
    }


def conversation_for_staff(*, user, conversation_id) -> Conversation:
    conversation = (
        _scoped(user).select_related("chatbot", "assigned_agent").filter(pk=conversation_id).first()
    )
    if conversation is None:
        raise ApiError(ErrorCode.CONVERSATION_NOT_FOUND, "No such conversation.")
    return conversation


def may_act(*, user, conversation: Conversation) -> bool:
    """Agents, admins and owners of the shop act; viewers only read."""
    if access.is_operator(user):
        return True
    role = access.role_in(user, conversation.chatbot.shop_id)
    return access._rank_ok(role, Role.AGENT)


def conversation_detail(*, user, conversation_id) -> dict[str, Any]:
    """The transcript as the agent sees it (with the bot's sources and analysis metadata) and
    the private notes."""
    from django.urls import reverse

    conversation = conversation_for_staff(user=user, conversation_id=conversation_id)
    # The analysis of each question (topic, sentiment, outcome), by the question's message.
    analyses = {
        row.pop("turn__user_message_id"): row
        for row in ConversationAnalysis.objects.filter(conversation=conversation).values(
            "turn__user_message_id", "topic", "sentiment", "outcome"
        )
    }

    def images(metadata: dict) -> list[str]:
        entries = metadata.get("images")
        if not isinstance(entries, list):
            return []
        return [
            reverse("admin:images_imageupload_thumbnail", args=[e["image_id"]])
            for e in entries
            if isinstance(e, dict) and e.get("image_id")
        ]

    messages = [
        {
            "message_id": str(m.pk),
            "role": m.role,
            "type": m.type,
            "content": m.content,
            "sequence": m.sequence,
            "flow": m.flow,
            "sources": (m.metadata or {}).get("sources") or [],
            "agent": (m.metadata or {}).get("agent"),
            "images": images(m.metadata or {}),
            "analysis": analyses.get(m.pk),
            "created_at": m.created_at,
        }
        for m in Message.objects.filter(conversation=conversation).order_by("sequence")[:500]
    ]
    notes = [
        {
            "author": (n.author.first_name or n.author.get_username()) if n.author else None,
            "text": n.text,
            "created_at": n.created_at,
        }
        for n in PrivateNote.objects.filter(conversation=conversation).select_related("author")
    ]
    acting = may_act(user=user, conversation=conversation)
    return {
        **conversation_summary(conversation),
        "human_turn_id": str(conversation.human_turn_id) if conversation.human_turn_id else None,
        "may_act": acting,
        "assignable": assignable_agents(shop_id=conversation.chatbot.shop_id) if acting else [],
        "messages": messages,
        "notes": notes,
    }


def assignable_agents(*, shop_id: int) -> list[dict[str, Any]]:
    """Who a conversation of the shop may be assigned to: its agents, admins and owners."""
    rows = (
        Membership.objects.filter(
            shop_id=shop_id, role__in=[Role.AGENT, Role.ADMIN, Role.OWNER], user__is_active=True
        )
        .select_related("user")
        .order_by("user__first_name", "user__username")
    )
    return [{"id": m.user_id, "name": m.user.first_name or m.user.get_username()} for m in rows]


def canned_for(*, user) -> list[dict[str, str]]:
    ids = access.shop_ids_for(user, min_role=Role.AGENT)
    rows = CannedResponse.objects.all()
    if ids is not None:
        rows = rows.filter(shop_id__in=ids)
    return list(rows.values("shortcut", "text")[:500])


FIGURE_DAYS_MAX = 90


def inbox_figures(*, user, days: int = 7) -> dict[str, Any]:
    """Handoff rate, time to first human reply and CSAT per agent over the last `days` days,
    for the member's shops (a handful of aggregate queries, not a row per conversation)."""
    import datetime as dt

    from django.utils import timezone

    if not isinstance(days, int) or not 1 <= days <= FIGURE_DAYS_MAX:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"`days` is a whole number from 1 to {FIGURE_DAYS_MAX}.",
            details={"parameter": "days"},
        )
    since = timezone.now() - dt.timedelta(days=days)
    return {
        "days": days,
        **human_figures(conversations=_scoped(user).filter(created_at__gte=since)),
    }
