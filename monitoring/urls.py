"""Monitoring URLs: `urlpatterns` under /api/, `root_urlpatterns` at the site root."""

from django.urls import path

from monitoring import api, metrics

urlpatterns = [
    path("conversation-health", api.conversation_health, name="conversation-health"),
    path(
        "monitoring/conversation-health",
        api.monitoring_conversation_health,
        name="monitoring-conversation-health",
    ),
    path("monitoring/connection-pools", api.connection_pools, name="monitoring-connection-pools"),
    path("monitoring/cache-stats", api.cache_stats, name="monitoring-cache-stats"),
    path("monitoring/clear-cache", api.clear_cache, name="monitoring-clear-cache"),
    path("monitoring/reset-pool-stats", api.reset_pool_stats, name="monitoring-reset-pool-stats"),
]

# Included at the site root by config/urls.py: GET /health and GET /metrics.
root_urlpatterns = [
    path("health", api.health, name="health"),
    path("metrics", metrics.metrics, name="metrics"),
]
