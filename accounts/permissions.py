"""Who may call the staff APIs: shop members (their shops' rows only) and platform operators.

The rule itself lives in accounts.access; these names are what the API modules import. They sit
in accounts, not config, because config is below every app and must not import one.
"""

from rest_framework.authentication import SessionAuthentication

from accounts.access import OperatorOnly, ShopMember
from config.authentication import ApiJWTAuthentication

__all__ = ["STAFF_AUTHENTICATION", "OperatorOnly", "ShopMember"]

STAFF_AUTHENTICATION = [ApiJWTAuthentication, SessionAuthentication]
