"""DRF authentication for server-to-server clients (JWT), leaving conversation tokens alone.

Both travel as `Authorization: Bearer …`; a conversation token contains ':' separators, a JWT
is three dot-separated base64 parts.
"""

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
        return super().authenticate(request)
