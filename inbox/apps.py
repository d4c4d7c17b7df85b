from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


def _handoff_rule_changed(sender, instance, **kwargs) -> None:
    from inbox.services import handoff_rule_forget

    handoff_rule_forget(instance.chatbot_id)


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Live inbox"

    def ready(self) -> None:
        from conversations import hooks
        from conversations import services as conversation_services
        from inbox import services
        from inbox.models import HandoffRule

        hooks.register_message_router(services.message_route, may_route=services.message_may_route)
        for signal, name in ((post_save, "saved"), (post_delete, "deleted")):
            signal.connect(
                _handoff_rule_changed, sender=HandoffRule, dispatch_uid=f"inbox.rule.{name}"
            )
        conversation_services.conversation_closed.connect(
            services.human_turn_close, dispatch_uid="inbox.human_turn_close"
        )
