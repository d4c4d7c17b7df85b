from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Live inbox"

    def ready(self) -> None:
        from conversations import hooks
        from conversations import services as conversation_services
        from inbox import services

        hooks.register_message_router(services.message_route)
        conversation_services.conversation_closed.connect(
            services.human_turn_close, dispatch_uid="inbox.human_turn_close"
        )
