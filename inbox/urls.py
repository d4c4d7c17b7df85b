"""REST endpoints of the live inbox for the widget (under /api/)."""

from django.urls import path

from inbox import api

urlpatterns = [
    path("sessions/<uuid:session_id>/person", api.person, name="session-person"),
    path("sessions/<uuid:session_id>/typing", api.typing, name="session-typing"),
]
