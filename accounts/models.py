"""Shops as tenants: the shop account, who belongs to it with which role, and its audit log."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def validate_timezone_name(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"“{value}” is not a time zone name such as Europe/Copenhagen."
        ) from None


class Shop(models.Model):
    """The tenant: everything a shop configures or produces hangs off one of these."""

    name = models.CharField(max_length=200, help_text="The shop's name as its staff know it.")
    slug = models.SlugField(
        max_length=64,
        unique=True,
        help_text="Short name used on the command line (--shop), e.g. “vinhuset”.",
    )
    timezone = models.CharField(
        max_length=64,
        default="Europe/Copenhagen",
        validators=[validate_timezone_name],
        help_text="The shop's own time: its nightly jobs (retention) run at night here, e.g. "
        "“Europe/Copenhagen”.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    # Ordered from most to least: ROLE_RANK below gives the order used by "at least this role".
    OWNER = "owner", "Owner (members, secrets, everything an admin does)"
    ADMIN = "admin", "Admin (all configuration)"
    AGENT = "agent", "Agent (conversations and ratings)"
    VIEWER = "viewer", "Viewer (read-only analytics and transcripts)"


ROLE_RANK = {Role.VIEWER: 1, Role.AGENT: 2, Role.ADMIN: 3, Role.OWNER: 4}


class Membership(models.Model):
    """A staff user's role in one shop; a user may belong to several shops."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["shop__name", "user__username"]
        constraints = [
            # Invariant: one role per user and shop (also serves the per-user look-ups).
            models.UniqueConstraint(fields=["user", "shop"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.shop} · {self.role}"


class AuditEvent(models.Model):
    """Who did what: configuration changes, conversation reads and exports, logins."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        CHANGE = "change", "Changed"
        DELETE = "delete", "Deleted"
        READ = "read", "Read conversations"
        EXPORT = "export", "Exported conversations"
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Login failed"
        ERASE = "erase", "Erased a customer's data"

    # Null for platform events (logins, operators' pages) that belong to no one shop.
    shop = models.ForeignKey(
        Shop, on_delete=models.CASCADE, null=True, blank=True, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    # Kept as text too: the user row may go, and a failed login names no user at all.
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Serves a shop's audit list (newest first) and retention by age.
            models.Index(fields=["shop", "-created_at"], name="audit_shop_recent"),
            # Serves retention of platform events and the operators' unfiltered list.
            models.Index(fields=["created_at"], name="audit_created"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label or '—'} {self.action} {self.object_label}".strip()


class Invitation(models.Model):
    """An owner's invitation to join their shop with a role: a link that works once, for
    INVITATION_MAX_AGE_DAYS. Owners never pick from the server's users (nor learn whether an
    address has an account); whoever opens the link signs in or creates an account and joins."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Where you will send the link; shown to whoever opens it.")
    role = models.CharField(max_length=10, choices=Role.choices)
    # SHA-256 of the link's token: the database never holds a usable link.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(editable=False)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} · {self.shop} · {self.role}"
