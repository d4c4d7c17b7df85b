"""`POST /auth/login` (seed 003, legacy): the token endpoint under the seed's path and shape.

Seed 003's clients read `.token` from the answer; it is the access token of /api/auth/token,
given with the same `access` and `refresh` beside it, and the same rate limit and lockout.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework_simplejwt.views import TokenObtainPairView

from config.auth_api import TokenObtain
from config.schema import ERROR_RESPONSES


class LegacyLogin(TokenObtain):
    @extend_schema(
        operation_id="auth_login_legacy",
        summary="Legacy (seed 003): /api/auth/token under the seed's path; `token` is the access.",
        request=TokenObtainPairView.serializer_class,
        responses={
            200: inline_serializer(
                name="LegacyLogin",
                fields={
                    "token": serializers.CharField(help_text="The access token (a JWT)."),
                    "access": serializers.CharField(),
                    "refresh": serializers.CharField(),
                },
            ),
            **{s: ERROR_RESPONSES[s] for s in (400, 401, 429)},
        },
        deprecated=True,
    )
    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        response.data = {"token": response.data["access"], **response.data}
        return response
