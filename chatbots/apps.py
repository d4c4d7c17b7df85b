from django.apps import AppConfig


class ChatbotsConfig(AppConfig):
    name = "chatbots"
    verbose_name = "Chatbots"

    def ready(self) -> None:
        from chatbots import signals  # noqa: F401 - connects cache invalidation and history
        from chatbots.forms import admin_forms_keep_untouched_fields

        admin_forms_keep_untouched_fields()
