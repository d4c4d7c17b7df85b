"""The inbox page and its JSON actions, under /admin/inbox/ (the admin's session and login)."""

from django.contrib import admin
from django.urls import path

from inbox import views

wrap = admin.site.admin_view

urlpatterns = [
    path("", wrap(views.inbox_page), name="inbox"),
    path("api/conversations", wrap(views.conversations), name="inbox-conversations"),
    path("api/canned", wrap(views.canned), name="inbox-canned"),
    path("api/figures", wrap(views.figures), name="inbox-figures"),
    path(
        "api/conversations/<uuid:conversation_id>",
        wrap(views.conversation),
        name="inbox-conversation",
    ),
    path(
        "api/conversations/<uuid:conversation_id>/<str:action>",
        wrap(views.act),
        name="inbox-act",
    ),
]
