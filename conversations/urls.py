from django.urls import path

from conversations import api, polling, session_api

urlpatterns = [
    path("process-message", api.process_message, name="process-message"),
    path("stream-events/<uuid:turn_id>", polling.stream_events, name="stream-events"),
    path(
        "stream-events/<uuid:turn_id>/sse", api.StreamEventsSSE.as_view(), name="stream-events-sse"
    ),
    path("asyncapi.yaml", api.asyncapi_document, name="asyncapi"),
    path("turns/<uuid:turn_id>/cancel", api.turn_cancel, name="turn-cancel"),
    path("sessions", session_api.session_create, name="session-create"),
    path("sessions/<uuid:session_id>/history", session_api.session_history, name="session-history"),
    path("sessions/<uuid:session_id>/resume", session_api.session_resume, name="session-resume"),
    path("sessions/<uuid:session_id>/resolve", session_api.session_resolve, name="session-resolve"),
    path("sessions/<uuid:session_id>/end", session_api.session_end, name="session-end"),
    path("users/<str:user_id>/sessions", session_api.user_sessions, name="user-sessions"),
    path("chat/message", session_api.chat_message, name="chat-message"),
]
