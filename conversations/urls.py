from django.urls import path

from conversations import api

urlpatterns = [
    path("process-message", api.process_message, name="process-message"),
    path("stream-events/<uuid:turn_id>", api.stream_events, name="stream-events"),
    path("turns/<uuid:turn_id>/cancel", api.turn_cancel, name="turn-cancel"),
]
