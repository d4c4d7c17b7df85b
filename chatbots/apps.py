from django.apps import AppConfig


class ChatbotsConfig(AppConfig):
    name = "chatbots"
    verbose_name = "Chatbots"

    def ready(self) -> None:
        from accounts.scoped_admin import register_secret_field_reader
        from chatbots import signals  # noqa: F401 - connects cache invalidation and history
        from chatbots.forms import admin_forms_keep_untouched_fields
        from chatbots.secrets import secret_field_names

        admin_forms_keep_untouched_fields()
        # The scoped admin (accounts) asks which fields are secrets.
        register_secret_field_reader(secret_field_names)
