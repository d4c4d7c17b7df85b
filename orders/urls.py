"""REST endpoints of the orders app (under /api/)."""

from django.urls import path

from orders import api

urlpatterns = [
    path("orders/stats", api.order_stats, name="order-stats"),
]
