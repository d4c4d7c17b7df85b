from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "knowledge"
    verbose_name = "Knowledge"

    def ready(self) -> None:
        from conversations.hooks import register_context_provider
        from knowledge.context import knowledge_context_provider

        # After orders (50): when the order provider answers by itself, nothing is retrieved.
        register_context_provider("knowledge", knowledge_context_provider, order=60)
