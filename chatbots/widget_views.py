"""The demo shop page at /chat/<chatbot_id>/: embeds the chat widget exactly like a shop would."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static

from chatbots.models import Chatbot

TRANSPORTS = ("auto", "websocket", "sse", "polling")


def demo_page(request: HttpRequest, chatbot_id: str) -> HttpResponse:
    chatbot = Chatbot.objects.filter(public_id=chatbot_id, active=True).first()
    if chatbot is None:
        raise Http404("No active chatbot with this id.")
    origin = f"{request.scheme}://{request.get_host()}"
    # `?transport=polling` lets a visitor try the fallback; anything else means the default.
    transport = request.GET.get("transport", "auto")
    return render(
        request,
        "widget/demo.html",
        {
            "chatbot": chatbot,
            "script_url": request.build_absolute_uri(static("widget/chat-widget.js")),
            "transport": transport if transport in TRANSPORTS else "auto",
            "origin": origin,
            # The widget is refused outside the bot's allowed origins: say so on the page.
            "origin_allowed": "*" in chatbot.allowed_origins
            or origin in [o.rstrip("/") for o in chatbot.allowed_origins],
        },
    )
