"""REST endpoints of the live inbox (under /api/): the widget's, and the helpdesks' webhook."""

from django.urls import path

from inbox import api, webhooks

urlpatterns = [
    path("sessions/<uuid:session_id>/person", api.person, name="session-person"),
    path("sessions/<uuid:session_id>/typing", api.typing, name="session-typing"),
    path(
        "helpdesk/webhooks/<int:connection_id>",
        webhooks.helpdesk_webhook,
        name="helpdesk-webhook",
    ),
]
