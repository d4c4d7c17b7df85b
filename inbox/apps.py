from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Live inbox"

    def ready(self) -> None:
        from conversations import hooks
        from inbox import services

        hooks.register_message_router(services.message_route)
