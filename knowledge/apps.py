from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "knowledge"
    verbose_name = "Knowledge"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from chatbots.models import Chatbot
        from knowledge import signals
        from knowledge.models import KnowledgeDocument

        post_delete.connect(signals.document_deleted, sender=KnowledgeDocument)
        # chatbots.signals remembers the language before the save (_previous_language).
        post_save.connect(signals.chatbot_saved, sender=Chatbot)
