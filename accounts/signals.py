"""Audit log receivers: sign-ins that succeed and fail (admin and POST /api/auth/token)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

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
