"""URL map: admin, REST API under /api/, OpenAPI schema and docs."""

from django.contrib import admin
from django.http import HttpRequest
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from chatbots import api as chatbots_api
from config.auth_api import TokenObtain, TokenRefresh
from config.errors import ErrorCode, error_json
from config.legacy_login import LegacyLogin
from monitoring.urls import root_urlpatterns

api_patterns = [
    path(
        "conversation-config/<str:chatbot_id>",
        chatbots_api.conversation_config,
        name="conversation-config",
    ),
    path("", include("conversations.urls")),
    path("", include("orders.urls")),
    path("", include("analytics.urls")),
    path("", include("monitoring.urls")),
    path("", include("helpdesk.urls")),
    path("", include("images.urls")),
    path("", include("privacy.urls")),
    path("", include("inbox.urls")),
    path("", include("quality.urls")),
    path("auth/token", TokenObtain.as_view(), name="auth-token"),
    path("auth/token/refresh", TokenRefresh.as_view(), name="auth-token-refresh"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api_docs/redoc.html"),
        name="redoc",
    ),
]

urlpatterns = [
    *root_urlpatterns,  # /health and /metrics
    path("admin/inbox/", include("inbox.admin_urls")),  # before the admin's catch-all
    path("admin/", admin.site.urls),
    path("auth/login", LegacyLogin.as_view(), name="auth-login-legacy"),  # seed 003's path
    path("", include("chatbots.widget_urls")),  # /chat/<chatbot_id>/ demo page
    path("api/", include(api_patterns)),
]

admin.site.site_header = "Chatbot administration"
admin.site.site_title = "Chatbot admin"
admin.site.index_title = "Configure chatbots, follow conversations"
# No public site to "view": each chatbot's own page has "Try this chatbot" (/chat/<id>/).
admin.site.site_url = None


def handler404(request: HttpRequest, exception=None):
    if request.path.startswith("/api/"):
        return error_json(ErrorCode.NOT_FOUND, "No such endpoint.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: HttpRequest):
    import sys

    from config.middleware import is_dependency_down, service_unavailable

    exc = sys.exc_info()[1]
    if request.path.startswith("/api/") and exc is not None and is_dependency_down(exc):
        return service_unavailable()
    if request.path.startswith("/api/"):
        return error_json(
            ErrorCode.INTERNAL_ERROR, "Something went wrong on our side; it is logged."
        )
    from django.views.defaults import server_error

    return server_error(request)
