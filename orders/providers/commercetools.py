"""commercetools: one order by its order number, tracking from the parcels of its deliveries.

A client-credentials token (scope `view_orders:<project>`) is minted at the auth host, cached
for the `expires_in` it comes with, and re-minted once when the API says `invalid_token`.
Not found is a 404 `ResourceNotFound`. Parcels carry a tracking id and a free-text carrier but
no URL: links come from the carrier templates.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from orders.carriers import tracking_url
from orders.providers.base import (
    OrderRecord,
    OrderSourceError,
    empty_order,
    iso_datetime,
    minor_units,
    money,
    normalize_email,
    normalize_postcode,
    quantity,
)
from orders.providers.common import Provider, dig
from orders.providers.tokens import cached_token, forget_token

if TYPE_CHECKING:
    from orders.models import OrderSource

SHIPMENT = {
    "Shipped": ("shipped", "fulfilled"),
    "Delivered": ("delivered", "delivered"),
    "Partial": ("partially_shipped", "partially_fulfilled"),
    "Delayed": ("processing", "in_progress"),
    "Backorder": ("processing", "in_progress"),
    "Ready": ("processing", "in_progress"),
    "Pending": ("processing", "unfulfilled"),
    "Canceled": ("cancelled", "cancelled"),
}
PAYMENT = {
    "Paid": "paid",
    "Pending": "pending",
    "BalanceDue": "partially_paid",
    "Failed": "failed",
    "CreditOwed": "partially_refunded",
}


def localized(value: Any, language: str) -> str:
    """A LocalizedString in the bot's language, else English, else the first one there is."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or not value:
        return ""
    for wanted in (language, "en"):
        for key, text in value.items():
            if key.split("-")[0].lower() == wanted:
                return str(text)
    return str(next(iter(value.values())))


def ct_error_codes(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    return [str(e.get("code")) for e in body.get("errors") or [] if isinstance(e, dict)] + (
        [str(body["error"])] if isinstance(body, dict) and body.get("error") else []
    )


class CommercetoolsProvider(Provider):
    label = "commercetools"
    auth_methods = ("client_credentials",)

    @classmethod
    def source_errors(cls, source: OrderSource) -> dict[str, str]:
        errors = super().source_errors(source)
        if not source.project_key:
            errors["project_key"] = "Enter the commercetools project key."
        if not source.auth_url:
            errors["auth_url"] = (
                "Enter the auth URL, e.g. https://auth.europe-west1.gcp.commercetools.com."
            )
        return errors

    def describe(self) -> str:
        return f"{self.source.base_url}/{self.source.project_key}"

    async def _mint(self) -> tuple[str, float | None]:
        scope = self.source.scope or f"view_orders:{self.source.project_key}"
        response = await self.http.send(
            "POST",
            f"{self.source.auth_url}/oauth/token",
            op="token",
            auth=(self.source.client_id, self.source.client_secret),
            data={"grant_type": "client_credentials", "scope": scope},
        )
        if response.status_code != 200:
            reason = "auth" if response.status_code in (400, 401, 403) else "unavailable"
            raise OrderSourceError(
                reason,
                f"commercetools refused the client credentials (HTTP {response.status_code}: "
                f"{self.detail(response)}).",
                status=response.status_code,
            )
        body = self.json_body(response, "the token request")
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise OrderSourceError("bad_response", "commercetools' token answer has no token.")
        self.http.secrets.append(token)
        return token, body.get("expires_in")

    async def find(
        self, order_number: str, *, email: str = "", postcode: str = ""
    ) -> OrderRecord | None:
        number = order_number.strip()
        project = quote(self.source.project_key, safe="")
        path = f"/orders/order-number={quote(number, safe='')}"
        if self.source.store_code:
            path = f"/in-store/key={quote(self.source.store_code, safe='')}{path}"
        url = f"{self.source.base_url}/{project}{path}"
        for attempt in (1, 2):
            token = await cached_token(self.source, self._mint, default_ttl=172800)
            self.http.secrets.append(token)
            response = await self.http.send(
                "GET",
                url,
                op="order lookup",
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
            codes = ct_error_codes(response) if response.status_code >= 400 else []
            if response.status_code == 401 and attempt == 1:
                # Expired or revoked token: mint a new one once, then give up.
                await forget_token(self.source)
                continue
            break
        if response.status_code == 404 and ("ResourceNotFound" in codes or not codes):
            return None
        if response.status_code == 403 and "insufficient_scope" in codes:
            raise OrderSourceError(
                "forbidden",
                "The commercetools API client lacks the view_orders scope for this project "
                f"({self.detail(response)}).",
                status=403,
            )
        if response.status_code != 200:
            raise self.fail_status(response, "the order lookup")
        data = self.json_body(response, "the order lookup")
        if not isinstance(data, dict) or str(data.get("orderNumber") or "") != number:
            return None
        postcodes = [
            dig(data, "shippingAddress", "postalCode"),
            dig(data, "billingAddress", "postalCode"),
        ]
        return OrderRecord(
            order=self._normalize(data),
            email=normalize_email(data.get("customerEmail")),
            postcodes=[normalize_postcode(p) for p in postcodes if p],
        )

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        order = empty_order("commercetools")
        order_state = data.get("orderState")
        shipment_state = data.get("shipmentState")
        payment_state = data.get("paymentState")
        if order_state == "Cancelled":
            status, fulfillment = "cancelled", "cancelled"
        elif shipment_state in SHIPMENT:
            status, fulfillment = SHIPMENT[shipment_state]
        elif order_state == "Complete":
            status, fulfillment = "completed", "unknown"
        else:
            status, fulfillment = "processing", "unknown"
        deliveries = list(dig(data, "shippingInfo", "deliveries") or [])
        for shipping in data.get("shipping") or []:  # shippingMode "Multiple"
            deliveries += dig(shipping, "shippingInfo", "deliveries") or []
        shipments = []
        for delivery in deliveries:
            for parcel in delivery.get("parcels") or [] if isinstance(delivery, dict) else []:
                tracking = parcel.get("trackingData") or {}
                if tracking.get("isReturn"):
                    continue
                carrier = tracking.get("carrier")
                number = tracking.get("trackingId")
                shipments.append(
                    {
                        "carrier": carrier,
                        "tracking_number": number,
                        "tracking_url": tracking_url(carrier, number, self.source.carrier_urls),
                        "status": None,
                        "shipped_at": iso_datetime(parcel.get("createdAt")),
                        "delivered_at": None,
                    }
                )
        amount = ct_money(data.get("totalPrice"))
        order.update(
            order_number=str(data.get("orderNumber") or ""),
            external_id=str(data.get("id") or ""),
            created_at=iso_datetime(data.get("createdAt")),
            status=status,
            financial_status=PAYMENT.get(payment_state or "", "unknown"),
            fulfillment_status=fulfillment,
            total=amount,
            line_items=[
                {
                    "name": localized(item.get("name"), self.source.language),
                    "sku": dig(item, "variant", "sku"),
                    "quantity": quantity(item.get("quantity")),
                }
                for item in data.get("lineItems") or []
                if isinstance(item, dict)
            ],
            shipments=shipments,
            raw_status={
                "commercetools": {
                    "orderState": order_state,
                    "shipmentState": shipment_state,
                    "paymentState": payment_state,
                }
            },
        )
        return order


def ct_money(total: Any) -> dict[str, str] | None:
    """A commercetools Money: `centAmount / 10^fractionDigits` for "centPrecision", but for
    "highPrecision" `fractionDigits` describes `preciseAmount` (centAmount is then the amount
    rounded to the currency's smallest unit): centAmount 29900, fractionDigits 4,
    preciseAmount 2990000 is 299.00 DKK, not 2.99."""
    if not isinstance(total, dict):
        return None
    currency = total.get("currencyCode")
    digits = total.get("fractionDigits")
    digits = digits if isinstance(digits, int) and 0 <= digits <= 20 else 2
    precise = total.get("preciseAmount")
    cents = total.get("centAmount")
    if total.get("type") == "highPrecision":
        if isinstance(precise, int):
            return money(Decimal(precise).scaleb(-digits), currency)
        digits = minor_units(currency)
    if isinstance(cents, int):
        return money(Decimal(cents).scaleb(-digits), currency)
    return None
