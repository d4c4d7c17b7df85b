"""The one access rule: which shops a user belongs to, with which role, and what that allows.

Every admin page, staff API, JWT API call and WebSocket route asks this module; nothing else
looks at `is_staff` to decide what someone may see. Platform operators (superusers) see every
shop. A shop member sees only their shops' rows, and only what their role grants there
(ROLE_PERMISSIONS, docs/access.md). An object of another shop is answered exactly like one that
does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Model, Q, QuerySet
from rest_framework.permissions import BasePermission

from accounts.models import ROLE_RANK, Membership, Role, Shop

# How each shop-owned model reaches its shop (a lookup path). Models not listed belong to the
# platform: only operators see them.
SHOP_PATHS: dict[str, str] = {
    "accounts.shop": "pk",
    "accounts.membership": "shop",
    "accounts.invitation": "shop",
    "accounts.auditevent": "shop",
    "chatbots.chatbot": "shop",
    "chatbots.aiendpoint": "shop",
    "chatbots.prompttemplate": "shop",
    "chatbots.knowledgebase": "chatbot__shop",
    "chatbots.knowledgeentry": "knowledge_base__chatbot__shop",
    "knowledge.knowledgedocument": "knowledge_base__chatbot__shop",
    "knowledge.knowledgechunk": "knowledge_base__chatbot__shop",
    "chatbots.flow": "chatbot__shop",
    "chatbots.templateassignment": "chatbot__shop",
    "chatbots.textrule": "chatbot__shop",
    "chatbots.chatbotversion": "chatbot__shop",
    "chatbots.checkrun": "chatbot__shop",
    "chatbots.checkresult": "run__chatbot__shop",
    "orders.ordersource": "chatbot__shop",
    "helpdesk.helpdeskconnection": "chatbot__shop",
    "helpdesk.handoff": "conversation__chatbot__shop",
    "helpdesk.conversationrating": "conversation__chatbot__shop",
    "conversations.conversation": "chatbot__shop",
    "conversations.message": "conversation__chatbot__shop",
    "conversations.turn": "conversation__chatbot__shop",
    "conversations.streamevent": "turn__conversation__chatbot__shop",
    "conversations.aicall": "chatbot__shop",
    "analytics.conversationanalysis": "chatbot__shop",
    "analytics.contextchunk": "conversation__chatbot__shop",
    "analytics.turnmetrics": "chatbot__shop",
    "analytics.conversationsummary": "chatbot__shop",
    "images.imageupload": "chatbot__shop",
    "inbox.handoffrule": "chatbot__shop",
    "inbox.cannedresponse": "shop",
    "inbox.privatenote": "conversation__chatbot__shop",
    "tools.chatbottools": "chatbot__shop",
    "tools.mcpserver": "shop",
    "tools.httptool": "shop",
    "quality.answercheck": "chatbot__shop",
    "quality.answerfeedback": "chatbot__shop",
    # Error-log rows carry their shop; rows with none are the platform's (operators only).
    "monitoring.errorlog": "shop",
}

CONFIGURATION = [
    "chatbots.chatbot",
    "chatbots.aiendpoint",
    "chatbots.prompttemplate",
    "chatbots.knowledgebase",
    "chatbots.knowledgeentry",
    "knowledge.knowledgedocument",
    "knowledge.knowledgechunk",
    "chatbots.flow",
    "chatbots.templateassignment",
    "chatbots.textrule",
    "orders.ordersource",
    "helpdesk.helpdeskconnection",
    "tools.chatbottools",
    "tools.mcpserver",
    "tools.httptool",
    "inbox.handoffrule",
    "inbox.cannedresponse",
    "quality.answercheck",
]
TRANSCRIPTS = [
    "conversations.conversation",
    "analytics.conversationanalysis",
    "analytics.turnmetrics",
    "analytics.conversationsummary",
    "images.imageupload",
    "helpdesk.handoff",
    "helpdesk.conversationrating",
    "quality.answerfeedback",
]
ALL = {"view", "add", "change", "delete"}
VIEW = {"view"}


def _grant(models: Iterable[str], actions: set[str]) -> dict[str, set[str]]:
    return {model: set(actions) for model in models}


# What each role may do, per model, in its own shop. Transcripts are read-only everywhere (the
# admin offers no add/change for them); "change" on handoffs and ratings is their actions
# (retry a ticket, re-analyse).
ROLE_PERMISSIONS: dict[str, dict[str, set[str]]] = {
    Role.OWNER: {
        **_grant(CONFIGURATION, ALL),
        **_grant(TRANSCRIPTS, {"view", "change"}),
        "monitoring.errorlog": VIEW,
        "accounts.shop": {"view", "change"},
        "accounts.membership": ALL,
        # Sent as they are: revoke by deleting, invite again for another role.
        "accounts.invitation": {"view", "add", "delete"},
        "accounts.auditevent": VIEW,
    },
    Role.ADMIN: {
        **_grant(CONFIGURATION, ALL),
        **_grant(TRANSCRIPTS, {"view", "change"}),
        "monitoring.errorlog": VIEW,
        "accounts.shop": VIEW,
    },
    Role.AGENT: {
        **_grant(TRANSCRIPTS, {"view", "change"}),
        "accounts.shop": VIEW,
    },
    Role.VIEWER: {
        **_grant(TRANSCRIPTS, VIEW),
        "accounts.shop": VIEW,
    },
}

# Secrets (API keys, tokens) may be set or replaced by owners only; admins see whether one is
# stored. Nobody reads one back (docs/secrets.md).
SECRET_ROLES = {Role.OWNER}


def model_label(model: type[Model] | Model) -> str:
    return model._meta.label_lower


def is_operator(user) -> bool:
    return bool(user is not None and user.is_active and user.is_superuser)


def roles(user) -> dict[int, str]:
    """{shop id: role} of an active user, read once per request (cached on the user object)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return {}
    cached = getattr(user, "_shop_roles", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("shop_id", "role"))
        user._shop_roles = cached
    return cached


def _rank_ok(role: str | None, min_role: str) -> bool:
    return role is not None and ROLE_RANK.get(role, 0) >= ROLE_RANK[min_role]


def role_in(user, shop: Shop | int | None) -> str | None:
    """The user's role in a shop; None when not a member (operators included: see is_operator)."""
    if shop is None:
        return None
    shop_id = shop if isinstance(shop, int) else shop.pk
    return roles(user).get(shop_id)


def shop_ids_for(user, *, min_role: str = Role.VIEWER) -> list[int] | None:
    """Ids of the shops where the user has at least `min_role`; None means every shop."""
    if is_operator(user):
        return None
    return [shop_id for shop_id, role in roles(user).items() if _rank_ok(role, min_role)]


def shops_for(user, *, min_role: str = Role.VIEWER) -> QuerySet[Shop]:
    ids = shop_ids_for(user, min_role=min_role)
    return Shop.objects.all() if ids is None else Shop.objects.filter(pk__in=ids)


def shop_path(model: type[Model] | Model) -> str | None:
    return SHOP_PATHS.get(model_label(model))


def shop_ids_allowing(user, *actions: str, model: type[Model] | Model) -> list[int] | None:
    """Ids of the user's shops where their role allows every one of `actions` ("view", "add",
    "change", "delete") on rows of `model`; None means every shop (operators)."""
    ids = shop_ids_for(user)
    if ids is None:
        return None
    return [i for i in ids if all(may(user, action, model, i) for action in actions)]


def scope(
    queryset: QuerySet,
    user,
    *,
    via: str | None = None,
    min_role: str = Role.VIEWER,
    actions: tuple[str, ...] = (),
) -> QuerySet:
    """The rows of `queryset` the user may see: all for operators, their shops' for members,
    none for anyone else (and none of a platform-only model for members). With `actions`, only
    the rows of shops where the user's role allows each of them on this model (the admin's
    choices and bulk actions)."""
    if is_operator(user):
        return queryset
    via = via or shop_path(queryset.model)
    if actions:
        ids = shop_ids_allowing(user, *actions, model=queryset.model)
    else:
        ids = shop_ids_for(user, min_role=min_role)
    if via is None or not ids:
        return queryset.none()
    key = "pk__in" if via == "pk" else f"{via}__in"
    return queryset.filter(**{key: ids})


def shop_id_of(obj: Model) -> int | None:
    """The shop an object belongs to, following SHOP_PATHS (one query per hop at most)."""
    path = shop_path(obj)
    if path is None:
        return None
    if path == "pk":
        return obj.pk
    *hops, last = path.split("__")
    target = obj
    for hop in hops:
        target = getattr(target, hop, None)
        if target is None:
            return None
    return getattr(target, f"{last}_id", None)


def may(user, action: str, model: type[Model] | Model, shop_id: int | None) -> bool:
    """Whether the user may `action` ("view", "add", "change", "delete") rows of `model` in a
    shop; with shop_id None: in at least one of their shops."""
    if is_operator(user):
        return True
    label = model_label(model)
    member = roles(user)
    candidates = member.values() if shop_id is None else [member.get(shop_id)]
    return any(
        action in ROLE_PERMISSIONS.get(role, {}).get(label, ()) for role in candidates if role
    )


def may_set_secrets(user, shop_id: int | None) -> bool:
    if is_operator(user):
        return True
    if shop_id is None:
        return any(role in SECRET_ROLES for role in roles(user).values())
    return role_in(user, shop_id) in SECRET_ROLES


# --- chatbots and the APIs -----------------------------------------------------------------


def chatbot_filter(user, *, min_role: str = Role.VIEWER, api_users: bool = True) -> Q | None:
    """A filter on Chatbot for the bots a user may use; None means every bot (operators).

    Members reach their shops' bots (with at least `min_role`); server-to-server API users
    (Chatbot.api_users) reach the bots they were granted. chatbots.access applies it to Chatbot
    rows (chatbot_ids_for, user_may_use_chatbot).
    """
    if is_operator(user):
        return None
    if user is None or not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    condition = Q(shop_id__in=shop_ids_for(user, min_role=min_role) or [])
    if api_users:
        condition |= Q(api_users=user)
    return condition


def is_member(user) -> bool:
    """Operators, and users with a role in at least one shop."""
    return is_operator(user) or bool(roles(user))


class ShopMember(BasePermission):
    """DRF, for the staff APIs: operators and shop members (session or JWT). Each view then
    scopes its rows with `scope`/`chatbots.access.chatbot_ids_for(..., api_users=False)`, so a member of shop A
    gets A's rows only. Server-to-server API users are not staff: they get the conversation
    APIs of the bots they were granted (conversations.access), not these."""

    message = "Only members of a shop may use this."

    def has_permission(self, request, view) -> bool:
        return is_member(getattr(request, "user", None))


class OperatorOnly(BasePermission):
    """DRF: platform operators (superusers) only — cross-shop caches, workers, the index."""

    message = "Platform operators only."

    def has_permission(self, request, view) -> bool:
        return is_operator(getattr(request, "user", None))
