"""The project's URLs plus monitoring's root URLs (/health, /metrics), as config.urls includes
them, and one view that logs (for the structured-logging tests)."""

import logging

from django.http import JsonResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns
from monitoring.urls import root_urlpatterns

logger = logging.getLogger("monitoring.tests.view")


def log_something(request, session_id=None):
    logger.warning("handling %s", request.GET.get("text", "a request"), extra={"detail": "x"})
    return JsonResponse({"ok": True})


urlpatterns = [
    *root_urlpatterns,
    path("api/test-log", log_something),
    path("api/test-log/<uuid:session_id>", log_something),
    *project_urlpatterns,
]
