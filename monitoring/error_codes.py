"""Stable error codes of the monitoring endpoints; clients may switch on them."""

from __future__ import annotations

import enum

from config.errors import ErrorSpec, register_errors


class MonitoringErrorCode(enum.StrEnum):
    REDIS_UNAVAILABLE = "REDIS_UNAVAILABLE"  # 503: Redis is down, figures cannot be read
    METRICS_TOKEN_INVALID = "METRICS_TOKEN_INVALID"  # 401: wrong bearer token on /metrics


register_errors(
    {
        MonitoringErrorCode.REDIS_UNAVAILABLE: ErrorSpec(503, retryable=True),
        MonitoringErrorCode.METRICS_TOKEN_INVALID: ErrorSpec(401),
    }
)
