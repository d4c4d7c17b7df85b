"""Who may call staff-only APIs: authenticated staff (admin session; JWT staff once issued)."""

from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission

from config.authentication import ApiJWTAuthentication


class StaffOnly(BasePermission):
    message = "Staff only."

    def has_permission(self, request, view) -> bool:
        user = getattr(request, "user", None)
        return bool(user and user.is_authenticated and user.is_staff)


STAFF_AUTHENTICATION = [ApiJWTAuthentication, SessionAuthentication]
