from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        from conversations.hooks import register_context_provider
        from conversations.knowledge_context import knowledge_context_provider

        # After orders (50): when the order provider answers by itself, nothing is retrieved.
        register_context_provider("knowledge", knowledge_context_provider, order=60)
