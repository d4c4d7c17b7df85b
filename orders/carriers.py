"""Tracking links for carriers when a platform gives only a tracking number.

Only Shopify returns tracking URLs; Magento gives a carrier code, commercetools free text. An
unknown carrier gets no link, never a guessed one. Staff add or override templates per source
(`OrderSource.carrier_urls`); `{number}` is replaced by the URL-encoded tracking number.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# Public tracking pages of carriers common for Danish and Nordic shops (check yearly: carriers
# move their pages; a source's own carrier_urls win).
DEFAULT_TEMPLATES: dict[str, str] = {
    "gls": "https://gls-group.eu/DK/da/find-pakke?match={number}",
    "postnord": "https://www.postnord.dk/varktojer/track-trace?shipmentId={number}",
    "dao": "https://www.dao.as/privat/find-din-pakke?stregkode={number}",
    "bring": "https://tracking.bring.com/tracking/{number}",
    "ups": "https://www.ups.com/track?tracknum={number}",
    "dhl": "https://www.dhl.com/dk-da/home/tracking.html?tracking-id={number}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={number}",
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
}

# Names platforms use for the same carrier (Magento titles, commercetools free text).
ALIASES: dict[str, str] = {
    "gls denmark": "gls",
    "gls danmark": "gls",
    "general logistics systems": "gls",
    "post nord": "postnord",
    "post danmark": "postnord",
    "postnord dk": "postnord",
    "united parcel service": "ups",
    "dhl express": "dhl",
    "dhl parcel": "dhl",
    "federal express": "fedex",
    "united states postal service": "usps",
    "dao365": "dao",
}


def carrier_key(carrier: str | None) -> str:
    text = re.sub(r"[^a-z0-9 ]+", " ", (carrier or "").lower()).strip()
    text = re.sub(r"\s+", " ", text)
    if text in ALIASES:
        return ALIASES[text]
    return text.replace(" ", "")


def tracking_url(
    carrier: str | None, number: str | None, overrides: dict[str, str] | None = None
) -> str | None:
    """The carrier's tracking page for `number`, or None when we do not know the carrier."""
    if not number:
        return None
    key = carrier_key(carrier)
    if not key:
        return None
    templates = {**DEFAULT_TEMPLATES, **{carrier_key(k): v for k, v in (overrides or {}).items()}}
    template = templates.get(key)
    if template is None:
        return None
    return template.replace("{number}", quote(str(number), safe=""))
