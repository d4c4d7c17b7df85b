"""REST endpoints of the helpdesk app (under /api/)."""

from django.urls import path

from helpdesk import api

urlpatterns = [
    path("sessions/<uuid:session_id>/support", api.support, name="session-support"),
    path("sessions/<uuid:session_id>/contact", api.contact, name="session-contact"),
    path("sessions/<uuid:session_id>/handoff", api.handoff, name="session-handoff"),
    path("sessions/<uuid:session_id>/rating", api.rating, name="session-rating"),
]
