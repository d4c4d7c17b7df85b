"""Health and monitoring endpoints: two public health checks, staff-only figures and actions."""

from __future__ import annotations

import redis
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
)
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import STAFF_AUTHENTICATION, OperatorOnly
from chatbots import selectors as chatbot_selectors
from config.errors import ApiError
from config.schema import ERROR_RESPONSES
from monitoring import pool_stats, selectors
from monitoring.error_codes import MonitoringErrorCode

NO_STORE = {"Cache-Control": "no-store"}
STAFF_ERRORS = {s: ERROR_RESPONSES[s] for s in (403, 503)}


def _report(body: dict, healthy: bool) -> Response:
    return Response(body, status=200 if healthy else 503, headers=NO_STORE)


def _redis_unavailable(what: str) -> ApiError:
    return ApiError(
        MonitoringErrorCode.REDIS_UNAVAILABLE,
        f"Redis is not reachable, so {what} cannot be read or changed right now.",
    )


PublicHealth = inline_serializer(
    name="ConversationHealth",
    fields={
        "status": serializers.CharField(help_text="healthy | degraded"),
        "database": serializers.CharField(help_text="connected | disconnected"),
        "redis": serializers.CharField(help_text="connected | disconnected"),
        "active_streams": serializers.IntegerField(allow_null=True),
        "timestamp": serializers.DateTimeField(),
    },
)


@extend_schema(
    tags=["monitoring"],
    operation_id="conversation_health",
    summary="Is conversation processing up? (public; 503 when degraded)",
    responses={
        200: PublicHealth,
        503: OpenApiResponse(PublicHealth, description="Degraded: the same body."),
    },
)
@api_view(["GET", "HEAD"])  # load balancers and uptime probes often ask with HEAD
@authentication_classes([])
@permission_classes([])
def conversation_health(request: Request) -> Response:
    return _report(*selectors.conversation_health_public())


ServiceHealth = inline_serializer(
    name="ServiceHealth",
    fields={
        "status": serializers.CharField(help_text="healthy | degraded"),
        "timestamp": serializers.DateTimeField(),
        "dependencies": serializers.DictField(
            help_text="database, redis: {status: connected|disconnected, latency_ms}; "
            "celery: {status: up|down, workers}"
        ),
        "uptime": serializers.FloatField(help_text="Seconds this process has been running."),
        "memory": serializers.DictField(),
        "connections": serializers.DictField(
            help_text="process_tcp: open TCP sockets of this process; database: sessions on "
            "the database."
        ),
    },
)


@extend_schema(
    tags=["monitoring"],
    operation_id="health",
    summary="Service health for load balancers (public; 503 when a dependency is down)",
    responses={200: ServiceHealth, 503: OpenApiResponse(ServiceHealth, description="Degraded.")},
)
@api_view(["GET", "HEAD"])
@authentication_classes([])
@permission_classes([])
def health(request: Request) -> Response:
    return _report(*selectors.health_root())


@extend_schema(
    tags=["monitoring"],
    operation_id="monitoring_conversation_health",
    summary="Everything operators watch: dependencies, workers, queues, streams, jobs (operators)",
    responses={
        200: OpenApiResponse(description="Healthy: the full report."),
        503: OpenApiResponse(description="Degraded: the same report, `problems` says why."),
        403: ERROR_RESPONSES[403],
    },
)
@api_view(["GET"])
@authentication_classes(STAFF_AUTHENTICATION)
@permission_classes([OperatorOnly])
def monitoring_conversation_health(request: Request) -> Response:
    return _report(*selectors.conversation_health_full())


@extend_schema(
    tags=["monitoring"],
    operation_id="monitoring_connection_pools",
    summary="Connection pools of all worker processes (operators)",
    responses={200: OpenApiResponse(description="{pools: [...], counting_since}"), **STAFF_ERRORS},
)
@api_view(["GET"])
@authentication_classes(STAFF_AUTHENTICATION)
@permission_classes([OperatorOnly])
def connection_pools(request: Request) -> Response:
    try:
        return Response(pool_stats.pool_stats(), headers=NO_STORE)
    except redis.RedisError as exc:
        raise _redis_unavailable("pool statistics") from exc


@extend_schema(
    tags=["monitoring"],
    operation_id="monitoring_cache_stats",
    summary="Configuration and prompt-template cache figures (operators)",
    responses={
        200: OpenApiResponse(description="{config: {...}, template: {...}}"),
        **STAFF_ERRORS,
    },
)
@api_view(["GET"])
@authentication_classes(STAFF_AUTHENTICATION)
@permission_classes([OperatorOnly])
def cache_stats(request: Request) -> Response:
    try:
        return Response(chatbot_selectors.cache_stats(), headers=NO_STORE)
    except redis.RedisError as exc:
        raise _redis_unavailable("cache statistics") from exc


@extend_schema(
    tags=["monitoring"],
    operation_id="monitoring_clear_cache",
    summary="Drop every cached chatbot configuration and prompt template (operators)",
    request=None,
    responses={
        200: inline_serializer(
            name="ClearCacheResponse", fields={"cleared": serializers.IntegerField()}
        ),
        **STAFF_ERRORS,
    },
)
@api_view(["POST"])
@authentication_classes(STAFF_AUTHENTICATION)
@permission_classes([OperatorOnly])
def clear_cache(request: Request) -> Response:
    try:
        return Response({"cleared": chatbot_selectors.config_cache_clear()})
    except redis.RedisError as exc:
        raise _redis_unavailable("the cache") from exc


@extend_schema(
    tags=["monitoring"],
    operation_id="monitoring_reset_pool_stats",
    summary="Zero the connection pool counters of all processes (operators)",
    request=None,
    responses={
        200: inline_serializer(
            name="ResetPoolStatsResponse", fields={"pools_reset": serializers.IntegerField()}
        ),
        **STAFF_ERRORS,
    },
)
@api_view(["POST"])
@authentication_classes(STAFF_AUTHENTICATION)
@permission_classes([OperatorOnly])
def reset_pool_stats(request: Request) -> Response:
    try:
        return Response({"pools_reset": pool_stats.pool_stats_reset()})
    except redis.RedisError as exc:
        raise _redis_unavailable("pool statistics") from exc
