"""Roles as Django permissions: a shop member has the model permissions their roles grant.

It authenticates nobody (ModelBackend does); it only answers has_perm / has_module_perms, so
the admin's own checks, templates and DRF see what a role grants. Which shop a permission
applies in is decided per object by accounts.access (ShopScopedAdmin, scope()).
"""

from __future__ import annotations

from django.contrib.auth.backends import BaseBackend

from accounts.access import ROLE_PERMISSIONS, roles


class ShopRoleBackend(BaseBackend):
    def authenticate(self, request, **credentials):
        return None

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if obj is not None or not user_obj.is_active or user_obj.is_anonymous:
            return set()
        cached = getattr(user_obj, "_shop_role_perms", None)
        if cached is None:
            cached = set()
            for role in set(roles(user_obj).values()):
                for label, actions in ROLE_PERMISSIONS.get(role, {}).items():
                    app_label, model = label.split(".")
                    cached |= {f"{app_label}.{action}_{model}" for action in actions}
            user_obj._shop_role_perms = cached
        return cached

    def has_module_perms(self, user_obj, app_label: str) -> bool:
        prefix = f"{app_label}."
        return any(perm.startswith(prefix) for perm in self.get_all_permissions(user_obj))
