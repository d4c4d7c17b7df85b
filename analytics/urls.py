"""REST endpoints of the analytics app (under /api/)."""

urlpatterns: list = []
