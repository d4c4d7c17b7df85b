"""JWT for server-to-server clients: obtain and refresh, rate limited per IP."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from config.ratelimit import ip_of, rate_limit_hit
from config.schema import ERROR_RESPONSES


class TokenObtain(TokenObtainPairView):
    authentication_classes: list = []

    @extend_schema(
        operation_id="auth_token_obtain",
        summary="Exchange an API user's username and password for access and refresh tokens.",
        responses={
            200: TokenObtainPairView.serializer_class,
            **{s: ERROR_RESPONSES[s] for s in (400, 401, 429)},
        },
    )
    def post(self, request, *args, **kwargs):
        rate_limit_hit(scope="auth-token", key=ip_of(request), limit=settings.AUTH_TOKEN_RATE_LIMIT)
        return super().post(request, *args, **kwargs)


class TokenRefresh(TokenRefreshView):
    authentication_classes: list = []

    @extend_schema(
        operation_id="auth_token_refresh",
        summary="A new access token from a refresh token.",
        responses={
            200: TokenRefreshView.serializer_class,
            **{s: ERROR_RESPONSES[s] for s in (400, 401, 429)},
        },
    )
    def post(self, request, *args, **kwargs):
        rate_limit_hit(scope="auth-token", key=ip_of(request), limit=settings.AUTH_TOKEN_RATE_LIMIT)
        return super().post(request, *args, **kwargs)
