"""REST endpoints of the monitoring app (under /api/)."""

urlpatterns: list = []
