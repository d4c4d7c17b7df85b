"""REST endpoints of the analytics app (under /api/); all staff only."""

from django.urls import path

from analytics import api

urlpatterns = [
    path("monitoring/processing-metrics", api.processing_metrics, name="processing-metrics"),
    path("sync/init", api.sync_init, name="sync-init"),
    path("sync/sync", api.sync_sync, name="sync-sync"),
    path("sync/stats", api.sync_stats, name="sync-stats"),
    path("sync/index", api.sync_index, name="sync-index"),
    path("sync/reset", api.sync_reset, name="sync-reset"),
    path("messages/conversations", api.conversations, name="indexed-conversations"),
    path(
        "messages/conversations/<uuid:conversation_id>",
        api.conversation_messages,
        name="indexed-conversation-messages",
    ),
    path("analytics/export", api.export, name="analytics-export"),
]
