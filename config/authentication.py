"""DRF authentication for server-to-server clients (JWT), leaving conversation tokens alone.

Both travel as `Authorization: Bearer …`; a conversation token contains ':' separators, a JWT
is three dot-separated base64 parts.
"""

from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and ":" not in token


class ApiJWTAuthentication(JWTAuthentication):
    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        raw = self.get_raw_token(header)
        if raw is None or not looks_like_jwt(raw.decode("latin-1")):
            return None
        try:
            return super().authenticate(request)
        except AuthenticationFailed as exc:
            # simplejwt's InvalidToken (expired, revoked by a password change, inactive user) is
            # a subclass the error envelope would not map to NOT_AUTHENTICATED.
            raise AuthenticationFailed() from exc


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class ApiJWTScheme(OpenApiAuthenticationExtension):
        """Documents the JWT bearer scheme in the OpenAPI schema."""

        target_class = "config.authentication.ApiJWTAuthentication"
        name = "jwtAuth"

        def get_security_definition(self, auto_schema):
            return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}

except ImportError:  # pragma: no cover - drf-spectacular is a runtime dependency
    pass
