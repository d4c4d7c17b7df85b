from django.urls import path

from quality import api

urlpatterns = [
    path(
        "sessions/<uuid:session_id>/messages/<uuid:message_id>/feedback",
        api.answer_feedback,
        name="answer-feedback",
    ),
]
