"""REST endpoint of the orders app: per-source call counters for a shop's owners and admins."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role
from accounts.permissions import STAFF_AUTHENTICATION, ShopMember
from chatbots.access import chatbot_ids_for
from config.schema import ERROR_RESPONSES
from orders.selectors import STATS_FIELDS, order_sources_stats

SourceStats = inline_serializer(
    name="OrderSourceStats",
    fields={
        "source_id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "chatbot": serializers.CharField(),
        "kind": serializers.CharField(),
        "active": serializers.BooleanField(),
        **{name: serializers.IntegerField() for name in STATS_FIELDS},
        "avg_ms": serializers.IntegerField(allow_null=True),
        "last_outcome": serializers.CharField(required=False),
        "last_error": serializers.CharField(required=False),
        "last_error_reason": serializers.CharField(required=False),
        "last_error_at": serializers.CharField(required=False),
        "last_ok_at": serializers.CharField(required=False),
    },
    many=True,
)


@extend_schema(
    operation_id="order_sources_stats",
    summary="Calls, errors, retries, throttling and lookup outcomes per order source (staff).",
    responses={
        200: inline_serializer(name="OrderStatsResponse", fields={"sources": SourceStats}),
        **{s: ERROR_RESPONSES[s] for s in (401, 403)},
    },
)
@api_view(["GET"])
@authentication_classes(STAFF_AUTHENTICATION)
@permission_classes([ShopMember])
def order_stats(request: Request) -> Response:
    # Order sources are configuration: their shops' owners and admins see them.
    allowed = chatbot_ids_for(request.user, min_role=Role.ADMIN, api_users=False)
    return Response({"sources": order_sources_stats(chatbot_ids=allowed)})
