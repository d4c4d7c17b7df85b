from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "quality"
    verbose_name = "Answer quality"

    def ready(self) -> None:
        from chatbots.checkruns import CheckSet, register_check_set
        from conversations.hooks import register_feedback_recorder
        from quality.checkruns import enabled_check_count
        from quality.services import answer_feedback_record
        from quality.tasks import check_run_execute_later

        # The socket's votes (conversations.consumers) follow the REST endpoint's rules.
        register_feedback_recorder(answer_feedback_record)
        # The chatbot page's check runs (chatbots.checkruns) count and ask this app's check set.
        register_check_set(
            CheckSet(enabled_count=enabled_check_count, execute_later=check_run_execute_later)
        )
