"""Joining a shop by invitation: an owner invites an email address with a role and sends the
link; whoever opens it signs in (or creates an account) and joins.

Owners never name an existing account: picking a user by username told an owner which
usernames exist, let them make any user staff, and — since leaving a shop ends the user's
refresh tokens — sign any user out of every shop by adding and removing them. A link is a
bearer secret (256 random bits; only its SHA-256 is stored), works once, and expires after
INVITATION_MAX_AGE_DAYS.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEvent, Invitation, Membership
from accounts.services import audit_record


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_issue(*, invitation: Invitation, invited_by) -> str:
    """Give a new invitation (shop, email and role set, not yet saved) its link: the token
    (returned, shown once), its hash (kept), the inviter and the expiry."""
    token = secrets.token_urlsafe(32)
    invitation.token_hash = _hash(token)
    invitation.invited_by = invited_by
    invitation.expires_at = timezone.now() + datetime.timedelta(
        days=settings.INVITATION_MAX_AGE_DAYS
    )
    return token


def invitation_find(*, token: str) -> Invitation | None:
    """The pending invitation of a link, or None (unknown, used or expired: all alike)."""
    if not token or len(token) > 100:
        return None
    return (
        Invitation.objects.select_related("shop")
        .filter(token_hash=_hash(token), accepted_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )


class InvitationUsed(Exception):
    """The invitation was accepted (or expired) between opening the page and accepting."""


def invitation_accept(*, invitation: Invitation, user, request=None) -> Membership:
    """Join the invitation's shop. A user who is already a member keeps their role (an owner
    changes it on the membership page); the invitation is used either way."""
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.accepted_at is not None or locked.expires_at <= timezone.now():
            raise InvitationUsed
        membership, created = Membership.objects.get_or_create(
            user=user, shop_id=locked.shop_id, defaults={"role": locked.role}
        )
        if not user.is_staff:
            user.is_staff = True  # the admin admits staff users only
            user.save(update_fields=["is_staff"])
        locked.accepted_at = timezone.now()
        locked.accepted_by = user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        audit_record(
            action=AuditEvent.Action.CREATE if created else AuditEvent.Action.CHANGE,
            shop_id=locked.shop_id,
            user=user,
            request=request,
            object_type="membership",
            object_id=membership.pk,
            object_label=str(membership),
            detail={
                "via": "invitation",
                "invitation": locked.pk,
                "joined": created,
                "invited_by": locked.invited_by.get_username() if locked.invited_by else "",
            },
        )
    return membership


class InvitedAccountForm(UserCreationForm):
    """A new account for the invited person: username and password; the email is the one the
    invitation was sent to."""

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.invited_email = email

    def save(self, commit: bool = True):
        user = super().save(commit=False)
        user.email = self.invited_email
        user.is_staff = True
        if commit:
            user.save()
        return user
