"""JWT for server-to-server clients: obtain and refresh, rate limited per IP.

Obtaining a token is a sign-in: django-axes counts its failed passwords like the admin's and
locks the username out from that address (config/login_lockout.py); a success clears the count.

A refresh token works once: refreshing blacklists it and hands out a new one (rotation). Every
token carries a digest of the user's password hash (simplejwt's CHECK_REVOKE_TOKEN claim), so a
password change ends all tokens issued before it, access and refresh alike, and so does making
the user inactive.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import get_md5_hash_password
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
                    headers={"Retry-After": str(int(lockout_wait().total_seconds()))},
                )
        # A sign-in like the admin's: axes clears the failure count (AXES_RESET_ON_SUCCESS).
        user_logged_in.send(sender=type(serializer.user), request=request, user=serializer.user)
        return Response(serializer.validated_data, status=200)


REFRESH_REFUSED = "This refresh token is no longer valid; request a new one with your password."


class RefreshRefused(Exception):
    pass


class RotatingRefreshSerializer(TokenRefreshSerializer):
    """Refresh that uses the token up once, for a user who is still active with that password."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            refresh = self.token_class(attrs["refresh"])  # signature, expiry, blacklist
        except TokenError as exc:
            raise RefreshRefused from exc
        user = (
            get_user_model()
            .objects.filter(**{jwt_settings.USER_ID_FIELD: refresh.get(jwt_settings.USER_ID_CLAIM)})
            .first()
        )
        if (
            user is None
            or not user.is_active
            or refresh.get(jwt_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password)
        ):
            raise RefreshRefused
        with transaction.atomic():
            # Two refreshes with the same token at once both pass the blacklist check above; the
            # blacklist row is unique per token, so only the one that creates it goes on.
            _, created = refresh.blacklist()
            if not created:
                raise RefreshRefused
            data = {"access": str(refresh.access_token)}
            refresh.set_jti()
            refresh.set_exp()
            refresh.set_iat()
            refresh.outstand()
        data["refresh"] = str(refresh)
        return data


class TokenRefresh(TokenRefreshView):
    authentication_classes: list = []
    serializer_class = RotatingRefreshSerializer

    @extend_schema(
        operation_id="auth_token_refresh",
        summary="A new access token and a new refresh token; the refresh token sent is used up.",
        responses={
            200: RotatingRefreshSerializer,
            **{s: ERROR_RESPONSES[s] for s in (400, 401, 429)},
        },
    )
    def post(self, request, *args, **kwargs):
        rate_limit_hit(scope="auth-token", key=ip_of(request), limit=settings.AUTH_TOKEN_RATE_LIMIT)
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except RefreshRefused:
            raise ApiError(ErrorCode.NOT_AUTHENTICATED, REFRESH_REFUSED) from None
        return Response(serializer.validated_data, status=200)
