from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        from chatbots.preview import register_preview_starter
        from conversations.hooks import register_context_provider
        from conversations.knowledge_context import knowledge_context_provider
        from conversations.preview import preview_conversation_start

        # After orders (50): when the order provider answers by itself, nothing is retrieved.
        register_context_provider("knowledge", knowledge_context_provider, order=60)
        # The chatbot page's preview chat (chatbots.preview) starts its conversations here.
        register_preview_starter(preview_conversation_start)
