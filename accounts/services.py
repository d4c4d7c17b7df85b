"""The audit log's writers: configuration changes in the admin, conversation reads and exports,
sign-ins. Events belong to the shop of what they touched (a sign-in to each of the user's
shops); events of no shop are the platform's, seen by operators only."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from django.db import models

from accounts import access
from accounts.models import AuditEvent
from config.client_address import client_address_of_request

logger = logging.getLogger(__name__)

Action = AuditEvent.Action


def _ip(request) -> str | None:
    if request is None:
        return None
    address = client_address_of_request(request) or ""
    # A unix socket or a proxy may give something that is not an address: store none.
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _actor(user) -> tuple[Any, str]:
    if user is None or not getattr(user, "is_authenticated", False):
        return None, ""
    return user, user.get_username()[:150]


def audit_record(
    *,
    action: str,
    shop_id: int | None,
    user=None,
    actor_label: str = "",
    request=None,
    object_type: str = "",
    object_id: Any = "",
    object_label: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    actor, label = _actor(user)
    return AuditEvent.objects.create(
        shop_id=shop_id,
        actor=actor,
        actor_label=(actor_label or label)[:150],
        action=action,
        object_type=object_type[:100],
        object_id=str(object_id)[:64],
        object_label=str(object_label)[:200],
        detail=detail or {},
        ip=_ip(request),
    )


def audit_object(
    *, action: str, obj: models.Model, request, detail: dict[str, Any] | None = None
) -> AuditEvent:
    """An event about one object (a saved chatbot, a read conversation), in the object's shop."""
    return audit_record(
        action=action,
        shop_id=access.shop_id_of(obj),
        user=getattr(request, "user", None),
        request=request,
        object_type=obj._meta.verbose_name,
        object_id=obj.pk,
        object_label=str(obj),
        detail=detail,
    )


def audit_conversations(
    *, action: str, conversations: models.QuerySet, request, detail: dict[str, Any] | None = None
) -> None:
    """A read or an export of conversations: one event per shop they belong to, with how many
    conversations of that shop it covered (an export of thousands is one row per shop)."""
    counts = (
        conversations.order_by()
        .values("chatbot__shop_id")
        .annotate(n=models.Count("pk"))
        .values_list("chatbot__shop_id", "n")
    )
    for shop_id, count in counts:
        audit_record(
            action=action,
            shop_id=shop_id,
            user=getattr(request, "user", None),
            request=request,
            object_type="conversations",
            object_label=f"{count} conversation{'s' if count != 1 else ''}",
            detail={**(detail or {}), "conversations": count},
        )


def audit_sign_in(*, user, request, succeeded: bool, username: str = "") -> None:
    """A sign-in, in each shop the user belongs to (their owners see it); a failed one names no
    shop (the username may not exist, and saying which shop it belongs to would tell)."""
    if not succeeded:
        audit_record(
            action=Action.LOGIN_FAILED,
            shop_id=None,
            actor_label=username[:150],
            request=request,
            detail={"path": request.path[:200]} if request is not None else {},
        )
        return
    detail = {"path": request.path[:200]} if request is not None else {}
    shop_ids = list(access.roles(user)) or [None]
    for shop_id in shop_ids:
        audit_record(
            action=Action.LOGIN, shop_id=shop_id, user=user, request=request, detail=detail
        )
