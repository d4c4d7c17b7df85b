from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from config import checks  # noqa: F401 - settings that contradict each other
        from conversations.hooks import register_call_observer
        from monitoring import receivers, runtime_metrics
        from monitoring.pool_stats import call_observer

        register_call_observer("monitoring", call_observer)
        receivers.connect(self)
        runtime_metrics.connect()  # WebSocket and Celery task counts and durations for /metrics
