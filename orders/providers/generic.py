"""The generic HTTP connector: a URL template, method, auth and a JSON-path mapping to our order.

Staff describe any order API in `OrderSource.connector` (docs/orders.md). Customer input is only
ever substituted into the URL path (percent-encoded), query values, header values and JSON body
strings, never into the host, so a message cannot send our credentials elsewhere. Paths are a
small dot/bracket language (`orders[0].lines[*].title`), no code is evaluated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from orders.carriers import tracking_url
from orders.providers.base import (
    FINANCIAL_STATUSES,
    FULFILLMENT_STATUSES,
    ORDER_STATUSES,
    OrderRecord,
    OrderSourceError,
    empty_order,
    iso_datetime,
    money,
    normalize_email,
    normalize_postcode,
    quantity,
)
from orders.providers.common import Provider

if TYPE_CHECKING:
    from orders.models import OrderSource

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
PLACEHOLDERS = {"base_url", "order_number", "email", "postcode"}
AUTH_TYPES = {"none", "header", "bearer", "basic", "query"}
SCALAR_FIELDS = (
    "order_number",
    "external_id",
    "created_at",
    "status",
    "financial_status",
    "fulfillment_status",
    "total_amount",
    "currency",
    "status_page_url",
    "email",
    "postcode",
)
LIST_FIELDS = {
    "line_items": ("name", "sku", "quantity", "quantity_shipped"),
    "shipments": ("carrier", "tracking_number", "tracking_url", "status", "shipped_at"),
}
_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+|\*)\]")

# BevCo publishes no API (docs/orders.md): this preset is the contract we assume until the
# customer hands over theirs. Staff adjust it in the connector field without a code change.
BEVCO_PRESET: dict[str, Any] = {
    "method": "GET",
    "url": "{base_url}/orders/{order_number}",
    "headers": {"Accept": "application/json"},
    "auth": {"type": "bearer"},
    "not_found": {"statuses": [404]},
    "root": "",
    "fields": {
        "order_number": "order_number",
        "created_at": "created_at",
        "status": "status",
        "email": "email",
        "line_items": {"path": "items[*]", "name": "name", "quantity": "quantity"},
        "shipments": {
            "path": "shipments[*]",
            "carrier": "carrier",
            "tracking_number": "tracking_number",
            "tracking_url": "tracking_url",
            "shipped_at": "shipped_at",
        },
    },
    "verify": "compare",
}


def connector_config(kind: str, connector: Any) -> Any:
    """The connector a source runs: its own settings, or the BevCo preset when a BevCo source
    leaves them empty."""
    return connector or (BEVCO_PRESET if kind == "bevco" else {})


def connector_credentials(config: Any) -> list[tuple[str, str]]:
    """(field, message) for the OrderSource credentials the connector's auth type sends."""
    auth = config.get("auth") if isinstance(config, dict) else None
    auth_type = auth.get("type", "none") if isinstance(auth, dict) else "none"
    if auth_type in ("header", "bearer", "query"):
        return [("access_token", "Enter the API key the connector sends.")]
    if auth_type == "basic":
        return [
            ("client_id", "Enter the user name for basic auth."),
            ("client_secret", "Enter the password for basic auth."),
        ]
    return []


# --- paths ------------------------------------------------------------------------------------


def parse_path(path: str) -> list[str | int]:
    """`orders[0].lines[*].title` → ["orders", 0, "lines", "*", "title"]; "" or "$" = the root."""
    text = (path or "").strip()
    if text.startswith("$"):
        text = text[1:]
    tokens: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"“{path}” is not a path like orders[0].customer.email")
        if match.group(1) is not None:
            tokens.append(match.group(1))
        else:
            tokens.append("*" if match.group(2) == "*" else int(match.group(2)))
        pos = match.end()
    return tokens


def path_values(data: Any, path: str) -> list[Any]:
    """Every value the path reaches (`[*]` fans out)."""
    current = [data]
    for token in parse_path(path):
        following: list[Any] = []
        for value in current:
            if token == "*":
                if isinstance(value, list):
                    following.extend(value)
            elif isinstance(token, int):
                if isinstance(value, list) and -len(value) <= token < len(value):
                    following.append(value[token])
            elif isinstance(value, dict) and token in value:
                following.append(value[token])
        current = following
    return current


def path_get(data: Any, path: str | None) -> Any:
    if not path:
        return None
    values = path_values(data, path)
    return values[0] if values else None


# --- validation ---------------------------------------------------------------------------------


def _placeholders_ok(text: str, where: str, problems: list[str]) -> None:
    unknown = set(PLACEHOLDER.findall(text)) - PLACEHOLDERS
    if unknown:
        problems.append(
            f"{where} uses {', '.join('{' + u + '}' for u in sorted(unknown))}; only "
            "{base_url}, {order_number}, {email} and {postcode} exist."
        )


def _path_ok(path: Any, where: str, problems: list[str]) -> None:
    if not isinstance(path, str):
        problems.append(f"{where} must be a path string.")
        return
    try:
        parse_path(path)
    except ValueError as exc:
        problems.append(f"{where}: {exc}.")


def _url_errors(url: Any, problems: list[str]) -> None:
    if not isinstance(url, str) or not url:
        problems.append('"url" is required, e.g. "{base_url}/orders/{order_number}".')
        return
    _placeholders_ok(url, '"url"', problems)
    probe = url.replace("{base_url}", "https://shop.example")
    parts = urlsplit(probe)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append('"url" must start with {base_url} or http(s)://.')
    elif "{" in parts.netloc:
        problems.append('"url" may not put customer input into the host name.')


def _request_errors(config: dict[str, Any], problems: list[str]) -> None:
    """Method, query and headers (name: text, placeholders known) and the auth type."""
    if str(config.get("method", "GET")).upper() not in ("GET", "POST"):
        problems.append('"method" must be GET or POST.')
    for key in ("query", "headers"):
        value = config.get(key, {})
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            problems.append(f'"{key}" must be an object of name: text.')
        else:
            for k, v in value.items():
                _placeholders_ok(v, f'"{key}.{k}"', problems)
    auth = config.get("auth", {"type": "none"})
    if not isinstance(auth, dict) or auth.get("type", "none") not in AUTH_TYPES:
        problems.append(f'"auth.type" must be one of {", ".join(sorted(AUTH_TYPES))}.')
    elif auth.get("type") in ("header", "query") and not auth.get("name"):
        problems.append('"auth.name" is needed: the header or query parameter carrying the key.')


def _not_found_errors(config: dict[str, Any], problems: list[str]) -> None:
    not_found = config.get("not_found", {})
    if not isinstance(not_found, dict):
        problems.append('"not_found" must be an object like {"statuses": [404]}.')
        return
    statuses = not_found.get("statuses", [404])
    if not isinstance(statuses, list) or not all(isinstance(s, int) for s in statuses):
        problems.append('"not_found.statuses" must be a list of HTTP statuses.')
    if "empty_path" in not_found:
        _path_ok(not_found["empty_path"], '"not_found.empty_path"', problems)


def _list_field_errors(name: str, value: Any, problems: list[str]) -> None:
    if not isinstance(value, dict) or "path" not in value:
        problems.append(f'"fields.{name}" needs {{"path": "…[*]", …}}.')
        return
    for sub, sub_path in value.items():
        if sub != "path" and sub not in LIST_FIELDS[name]:
            problems.append(
                f'"fields.{name}.{sub}" is unknown; use {", ".join(LIST_FIELDS[name])}.'
            )
        else:
            _path_ok(sub_path, f'"fields.{name}.{sub}"', problems)


def _fields_errors(config: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Checks "fields"; returns it (empty when it is not an object) for the verify check."""
    fields = config.get("fields")
    if not isinstance(fields, dict):
        problems.append('"fields" must map our order fields to paths in the answer.')
        return {}
    for name, value in fields.items():
        if name in SCALAR_FIELDS:
            _path_ok(value, f'"fields.{name}"', problems)
        elif name in LIST_FIELDS:
            _list_field_errors(name, value, problems)
        else:
            problems.append(f'"fields.{name}" is not one of our order fields.')
    return fields


def _map_errors(config: dict[str, Any], problems: list[str]) -> None:
    for key, allowed in (
        ("status_map", ORDER_STATUSES),
        ("financial_map", FINANCIAL_STATUSES),
        ("fulfillment_map", FULFILLMENT_STATUSES),
    ):
        mapping = config.get(key, {})
        if not isinstance(mapping, dict) or not all(v in allowed for v in mapping.values()):
            problems.append(f'"{key}" values must be among: {", ".join(allowed)}.')


def _verify_errors(
    config: dict[str, Any], fields: dict[str, Any], second_factor: str, problems: list[str]
) -> None:
    """The second factor is checked somewhere: compared by us, or demanded by the API."""
    verify = config.get("verify", "compare")
    if verify not in ("compare", "api"):
        problems.append('"verify" must be "compare" or "api".')
    factor_field = "email" if second_factor == "email" else "postcode"
    if verify == "compare" and factor_field not in fields:
        problems.append(
            f'Map "fields.{factor_field}" so the customer\'s {factor_field} can be checked, or set '
            f'"verify": "api" when the API itself only answers for a matching {{{factor_field}}}.'
        )
    url = config.get("url")
    if verify == "api" and isinstance(url, str):
        sent = url + str(config.get("query", "")) + str(config.get("body", ""))
        if "{" + factor_field + "}" not in sent:
            problems.append(f'"verify": "api" needs {{{factor_field}}} in the url, query or body.')


def connector_errors(config: Any, *, second_factor: str = "email") -> list[str]:
    """Everything wrong with a connector configuration, in words (empty = valid).

    One small check per part of the connector, in the order staff read docs/orders.md, so the
    messages come out in that order too.
    """
    if not isinstance(config, dict) or not config:
        return ["Describe the request and the mapping (see docs/orders.md for an example)."]
    problems: list[str] = []
    _url_errors(config.get("url"), problems)
    _request_errors(config, problems)
    _not_found_errors(config, problems)
    if "root" in config:
        _path_ok(config["root"], '"root"', problems)
    fields = _fields_errors(config, problems)
    _map_errors(config, problems)
    _verify_errors(config, fields, second_factor, problems)
    return problems


# --- the provider -------------------------------------------------------------------------------


def _render(template: str, values: dict[str, str], *, in_path: bool = False) -> str:
    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        if in_path and name != "base_url":
            return quote(value, safe="")
        return value

    return PLACEHOLDER.sub(substitute, template)


def _render_json(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _render(value, values)
    if isinstance(value, list):
        return [_render_json(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _render_json(v, values) for k, v in value.items()}
    return value


def _mapped(value: Any, mapping: dict[str, str], allowed: tuple[str, ...]) -> str:
    if value is None:
        return mapping.get("*", "unknown")
    text = str(value)
    lowered = {k.lower(): v for k, v in mapping.items()}
    if text.lower() in lowered:
        return lowered[text.lower()]
    plain = re.sub(r"[\s-]+", "_", text.strip().lower())
    if plain in allowed:
        return plain
    return mapping.get("*", "unknown")


class GenericProvider(Provider):
    label = "The order API"
    auth_methods = ("connector",)

    @classmethod
    def source_errors(cls, source: OrderSource) -> dict[str, str]:
        """The connector settings, checked as a lookup would run them."""
        config = connector_config(source.kind, source.connector)
        problems = connector_errors(config, second_factor=source.second_factor)
        return {"connector": " ".join(problems)} if problems else {}

    def __init__(self, source, http) -> None:
        super().__init__(source, http)
        self.config = copy.deepcopy(connector_config(source.kind, source.connector))
        if source.kind == "bevco":
            self.label = "BevCo"

    def _order_input(self, order_number: str) -> str:
        spec = self.config.get("input") or {}
        value = order_number.strip()
        for char in spec.get("strip", "#"):
            value = value.replace(char, "")
        if spec.get("pad_width") and value.isdigit():
            value = value.zfill(int(spec["pad_width"]))
        return f"{spec.get('prefix', '')}{value}"

    async def find(
        self, order_number: str, *, email: str = "", postcode: str = ""
    ) -> OrderRecord | None:
        problems = connector_errors(self.config, second_factor=self.source.second_factor)
        if problems:
            raise OrderSourceError(
                "config", "The connector settings are invalid: " + " ".join(problems)
            )
        values = {
            "base_url": self.source.base_url,
            "order_number": self._order_input(order_number),
            "email": email,
            "postcode": postcode,
        }
        pattern = (self.config.get("input") or {}).get("pattern")
        if pattern and not re.fullmatch(pattern, values["order_number"]):
            return None
        url = _render(self.config["url"], values, in_path=True)
        params = {k: _render(v, values) for k, v in (self.config.get("query") or {}).items()}
        headers = {k: _render(v, values) for k, v in (self.config.get("headers") or {}).items()}
        auth = self.config.get("auth") or {"type": "none"}
        kwargs: dict[str, Any] = {}
        kind = auth.get("type", "none")
        if kind == "header":
            headers[auth["name"]] = self.source.access_token
        elif kind == "bearer":
            headers["Authorization"] = f"Bearer {self.source.access_token}"
        elif kind == "query":
            params[auth["name"]] = self.source.access_token
        elif kind == "basic":
            kwargs["auth"] = (self.source.client_id, self.source.client_secret)
        method = str(self.config.get("method", "GET")).upper()
        if method == "POST" and self.config.get("body") is not None:
            kwargs["json"] = _render_json(self.config["body"], values)
        response = await self.http.send(
            method, url, op="order lookup", params=params, headers=headers, **kwargs
        )
        not_found = self.config.get("not_found") or {}
        if response.status_code in (not_found.get("statuses") or [404]):
            return None
        if not 200 <= response.status_code < 300:
            raise self.fail_status(response, "the order lookup")
        body = self.json_body(response, "the order lookup")
        empty_path = not_found.get("empty_path")
        if empty_path and not path_get(body, empty_path):
            return None
        data = path_get(body, self.config["root"]) if self.config.get("root") else body
        if not isinstance(data, dict):
            return None
        return self._record(data, order_number)

    def _line_items(self, data: dict[str, Any], spec: dict[str, Any] | None) -> list[dict]:
        if not spec:
            return []
        return [
            {
                "name": str(path_get(item, spec.get("name")) or ""),
                "sku": path_get(item, spec.get("sku")),
                "quantity": quantity(path_get(item, spec.get("quantity"))),
            }
            for item in path_values(data, spec["path"])
        ]

    def _shipments(self, data: dict[str, Any], spec: dict[str, Any] | None) -> list[dict]:
        """Shipments as mapped; a tracking link from the carrier list when the API gives none."""
        if not spec:
            return []
        shipments = []
        for ship in path_values(data, spec["path"]):
            carrier = path_get(ship, spec.get("carrier"))
            number = path_get(ship, spec.get("tracking_number"))
            shipments.append(
                {
                    "carrier": carrier,
                    "tracking_number": None if number is None else str(number),
                    "tracking_url": path_get(ship, spec.get("tracking_url"))
                    or tracking_url(carrier, number, self.source.carrier_urls),
                    "status": path_get(ship, spec.get("status")),
                    "shipped_at": iso_datetime(path_get(ship, spec.get("shipped_at"))),
                    "delivered_at": None,
                }
            )
        return shipments

    def _status(self, get: Callable[[str], Any], fields: dict[str, Any], which: str) -> str:
        """A mapped financial/fulfillment status; "unknown" when the connector maps none."""
        if f"{which}_status" not in fields:
            return "unknown"
        allowed = FINANCIAL_STATUSES if which == "financial" else FULFILLMENT_STATUSES
        return _mapped(get(f"{which}_status"), self.config.get(f"{which}_map") or {}, allowed)

    def _record(self, data: dict[str, Any], order_number: str) -> OrderRecord:
        fields = self.config.get("fields") or {}
        order = empty_order(self.source.kind)

        def get(name: str) -> Any:
            return path_get(data, fields.get(name))

        raw_status = get("status")
        order.update(
            order_number=str(get("order_number") or order_number),
            external_id=str(get("external_id") or ""),
            created_at=iso_datetime(get("created_at")),
            status=_mapped(raw_status, self.config.get("status_map") or {}, ORDER_STATUSES),
            financial_status=self._status(get, fields, "financial"),
            fulfillment_status=self._status(get, fields, "fulfillment"),
            total=money(get("total_amount"), get("currency")),
            line_items=self._line_items(data, fields.get("line_items")),
            shipments=self._shipments(data, fields.get("shipments")),
            status_page_url=get("status_page_url"),
            raw_status={self.source.kind: {"status": raw_status}},
        )
        record = OrderRecord(
            order=order,
            email=normalize_email(get("email")),
            postcodes=[normalize_postcode(get("postcode"))] if get("postcode") else [],
        )
        factor = "email" if self.source.second_factor == "email" else "postcode"
        if self.config.get("verify") == "api" and factor not in fields:
            record.verified_by_platform = True
        return record
