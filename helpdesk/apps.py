from django.apps import AppConfig


class HelpdeskConfig(AppConfig):
    name = "helpdesk"
    verbose_name = "Helpdesk handoff"

    def ready(self) -> None:
        from helpdesk.tools import CREATE_TICKET, HANDOFF
        from tools.registry import tool_register

        tool_register(HANDOFF)
        tool_register(CREATE_TICKET)
