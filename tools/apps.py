from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "tools"
    verbose_name = "Tools"

    def ready(self) -> None:
        from chatbots.versions import register_tools_binding_reader
        from tools import builtin
        from tools.selectors import tools_binding_get

        builtin.register_builtin_tools()
        register_tools_binding_reader(tools_binding_get)
