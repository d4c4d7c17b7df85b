"""Shared OpenAPI pieces: the error envelope as a schema for every documented error status."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorEnvelope = inline_serializer(
    name="ErrorEnvelope",
    fields={
        "error": inline_serializer(
            name="Error",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.DictField(),
            },
        )
    },
)

ERROR_RESPONSES = {
    status: OpenApiResponse(response=ErrorEnvelope, description=description)
    for status, description in {
        400: "Validation error",
        401: "Not authenticated",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict with the current state",
        413: "Payload too large",
        415: "Unsupported media type",
        429: "Rate limited (see Retry-After)",
        503: "A dependency is unavailable",
    }.items()
}
