from django.apps import AppConfig


class ChatbotsConfig(AppConfig):
    name = "chatbots"
    verbose_name = "Chatbots"

    def ready(self) -> None:
        from chatbots import signals  # noqa: F401 - connects cache invalidation and history
