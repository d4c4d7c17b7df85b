"""REST endpoints of the helpdesk app (under /api/)."""

urlpatterns: list = []
