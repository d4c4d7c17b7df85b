"""REST endpoints of the images app (under /api/)."""

urlpatterns: list = []
