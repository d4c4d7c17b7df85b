"""JWT for server-to-server clients: obtain and refresh, rate limited per IP.

Obtaining a token is a sign-in: django-axes counts its failed passwords like the admin's and
locks the username out from that address (config/login_lockout.py); a success clears the count.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from config.errors import ApiError, ErrorCode
from config.login_lockout import lockout_message, lockout_wait
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
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        finally:
            # The serializer's authenticate() got this DRF request: axes flagged it, not the
            # Django request its middleware sees.
            if getattr(request, "axes_locked_out", False):
                raise ApiError(
                    ErrorCode.RATE_LIMITED,
                    lockout_message(),
                    status=429,
                    headers={"Retry-After": str(int(lockout_wait().total_seconds()))},
                )
        # A sign-in like the admin's: axes clears the failure count (AXES_RESET_ON_SUCCESS).
        user_logged_in.send(sender=type(serializer.user), request=request, user=serializer.user)
        return Response(serializer.validated_data, status=200)


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
