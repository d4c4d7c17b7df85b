"""REST endpoints of the orders app (under /api/)."""

urlpatterns: list = []
