"""Extra pages of one object in a model admin (versions, checks, history, test connection, try
a tool).

Each is put under the object's admin URL, behind the admin site's login, and named like Django's
own admin URLs, `<app>_<model>_<suffix>`, so `reverse("admin:chatbots_chatbot_versions", ...)`
finds it. Every admin that adds such pages wrote that wrapping and naming out by hand; it is
written here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.urls import URLPattern, path


def object_admin_paths(model_admin, pages: Iterable[tuple[str, Callable, str]]) -> list[URLPattern]:
    """One URL pattern a `(route, view, suffix)`: `<path:object_id>/<route>`, the view behind
    `admin_view`, named `<app_label>_<model_name>_<suffix>` after the admin's model."""
    opts = model_admin.model._meta
    wrap = model_admin.admin_site.admin_view
    return [
        path(
            f"<path:object_id>/{route}",
            wrap(view),
            name=f"{opts.app_label}_{opts.model_name}_{suffix}",
        )
        for route, view, suffix in pages
    ]
