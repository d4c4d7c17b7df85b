from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy"

    def ready(self) -> None:
        from conversations.services import turn_finished
        from privacy.services import on_turn_finished

        turn_finished.connect(on_turn_finished, dispatch_uid="privacy.redact_ai_calls")
