"""Public chatbot endpoints for the widget."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from chatbots import selectors, services
from chatbots.models import LANGUAGES
from config.errors import ApiError, ErrorCode
from config.schema import ERROR_RESPONSES

ConfigurationSerializer = inline_serializer(
    name="ConversationConfiguration",
    fields={
        "chatbot_id": serializers.CharField(),
        "name": serializers.CharField(),
        "image_enabled": serializers.BooleanField(),
        "language": serializers.CharField(help_text="Language name, e.g. danish."),
        "language_code": serializers.CharField(),
        "greeting": serializers.CharField(),
        "support": inline_serializer(
            name="SupportAvailability",
            fields={
                "open_now": serializers.BooleanField(),
                "timezone": serializers.CharField(),
                "opening_hours": serializers.DictField(),
                "contact_email": serializers.CharField(),
                "contact_phone": serializers.CharField(),
            },
        ),
    },
)


@extend_schema(
    operation_id="conversation_config",
    summary="What the chat widget needs to show a chatbot (nothing secret).",
    responses={
        200: inline_serializer(
            name="ConversationConfigResponse",
            fields={
                "success": serializers.BooleanField(),
                "configuration": ConfigurationSerializer,
            },
        ),
        404: ERROR_RESPONSES[404],
    },
)
@api_view(["GET"])
def conversation_config(request: Request, chatbot_id: str) -> Response:
    config = selectors.chatbot_config_get(public_id=chatbot_id)
    if config is None or not config["active"]:
        raise ApiError(ErrorCode.CHATBOT_NOT_FOUND, "No active chatbot with this id.")
    return Response(
        {
            "success": True,
            "configuration": {
                "chatbot_id": config["public_id"],
                "name": config["name"],
                "image_enabled": config["image_upload_enabled"],
                "language": LANGUAGES.get(config["language"], ("", "simple"))[1],
                "language_code": config["language"],
                "greeting": config["greeting"],
                "support": {
                    "open_now": services.support_open_now(
                        opening_hours=config["opening_hours"], timezone=config["timezone"]
                    ),
                    "timezone": config["timezone"],
                    "opening_hours": config["opening_hours"],
                    "contact_email": config["contact_email"],
                    "contact_phone": config["contact_phone"],
                },
            },
        }
    )
