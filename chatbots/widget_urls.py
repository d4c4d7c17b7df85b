"""Pages outside /api/ for the chat widget: the demo shop page (included at the site root)."""

from django.urls import path

from chatbots import widget_views

urlpatterns = [
    path("chat/<slug:chatbot_id>/", widget_views.demo_page, name="widget-demo"),
]
