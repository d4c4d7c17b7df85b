"""The provider interface and helpers every platform module uses."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from orders.client import OrderHttp
from orders.providers.base import OrderRecord, OrderSourceError, SourceConfig

if TYPE_CHECKING:
    from orders.models import OrderSource

MAX_DETAIL = 300


class Provider:
    """One platform. `find` looks up by customer-facing number; `complete` fetches what is only
    worth fetching once the customer proved it is theirs (e.g. Magento shipments)."""

    label = "platform"
    # The OrderSource auth methods this platform accepts (OrderSource.clean checks the choice).
    auth_methods: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def source_errors(cls, source: OrderSource) -> dict[str, str]:
        """Field → message for what this platform needs of an OrderSource beyond the checks every
        source gets (URLs, auth method, credentials, carrier links) in `OrderSource.clean`."""
        if source.connector:
            return {"connector": "Connector settings are only used by generic and BevCo sources."}
        return {}

    def __init__(self, source: SourceConfig, http: OrderHttp) -> None:
        self.source = source
        self.http = http

    async def find(
        self, order_number: str, *, email: str = "", postcode: str = ""
    ) -> OrderRecord | None:
        raise NotImplementedError

    async def complete(self, record: OrderRecord) -> dict[str, Any]:
        return record.order

    def describe(self) -> str:
        """What the connection test talked to, for staff."""
        return self.source.base_url

    # --- helpers ----------------------------------------------------------------------------

    def detail(self, response: httpx.Response) -> str:
        """A short, secret-free excerpt of an error body for staff."""
        text = response.text.strip().replace("\n", " ")
        if len(text) > MAX_DETAIL:
            text = text[:MAX_DETAIL] + "…"
        return self.http.scrub(text)

    def json_body(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise OrderSourceError(
                "bad_response",
                f"{self.label} answered {what} with something that is not JSON "
                f"(HTTP {response.status_code}, {response.headers.get('content-type', 'no type')}).",
                status=response.status_code,
            ) from None

    def fail_status(self, response: httpx.Response, what: str) -> OrderSourceError:
        """The error for an unexpected HTTP status, in words staff can act on."""
        status = response.status_code
        detail = self.detail(response)
        if status == 401:
            return OrderSourceError(
                "auth",
                f"{self.label} rejected our credentials for {what} (HTTP 401: {detail}).",
                status=status,
            )
        if status == 403:
            return OrderSourceError(
                "forbidden",
                f"{self.label} refused access for {what} (HTTP 403: {detail}). Check the "
                "credentials' permissions (e.g. read orders).",
                status=status,
            )
        if status == 404:
            return OrderSourceError(
                "config",
                f"{self.label} answered 404 for {what}: check the base URL, version and store "
                f"settings ({detail}).",
                status=status,
            )
        if status >= 500 or status in (402, 423):
            return OrderSourceError(
                "unavailable",
                f"{self.label} answered HTTP {status} for {what} ({detail}).",
                status=status,
            )
        return OrderSourceError(
            "bad_response",
            f"{self.label} answered HTTP {status} for {what} ({detail}).",
            status=status,
        )


def dig(data: Any, *keys: Any) -> Any:
    """data[k1][k2]… with None for anything missing."""
    for key in keys:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data
