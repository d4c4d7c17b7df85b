from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Order tracking"

    def ready(self) -> None:
        from conversations.hooks import register_context_provider
        from orders.services import order_context_provide
        from orders.tool import ORDER_LOOKUP
        from tools.registry import tool_register

        # Before other providers: a missing order number ends the turn with a question.
        register_context_provider("orders", order_context_provide, order=50)
        tool_register(ORDER_LOOKUP)
