from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "quality"
    verbose_name = "Answer quality"

    def ready(self) -> None:
        from conversations.hooks import register_feedback_recorder
        from quality.services import answer_feedback_record

        # The socket's votes (conversations.consumers) follow the REST endpoint's rules.
        register_feedback_recorder(answer_feedback_record)
