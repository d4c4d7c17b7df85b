"""Audit log receivers (sign-ins that succeed and fail, admin and POST /api/auth/token), and
the end of a membership ending the user's refresh tokens."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import Membership
from accounts.services import audit_sign_in


@receiver(user_logged_in, dispatch_uid="audit-sign-in")
def signed_in(sender, request, user, **kwargs) -> None:
    audit_sign_in(user=user, request=request, succeeded=True)


@receiver(user_login_failed, dispatch_uid="audit-sign-in-failed")
def sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django has already replaced the password in `credentials` with stars; keep the name only.
    audit_sign_in(
        user=None, request=request, succeeded=False, username=str(credentials.get("username", ""))
    )


@receiver(post_delete, sender=Membership, dispatch_uid="membership-ended-tokens")
def membership_ended(sender, instance: Membership, **kwargs) -> None:
    """Leaving a shop ends the user's refresh tokens: they sign in again with what they still
    have. (Access tokens carry no role: every request reads the memberships afresh, so the shop
    is out of reach at once.)"""
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    user_id = instance.user_id

    def blacklist() -> None:
        live = OutstandingToken.objects.filter(user_id=user_id, expires_at__gt=timezone.now())
        BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in live], ignore_conflicts=True
        )

    transaction.on_commit(blacklist)
