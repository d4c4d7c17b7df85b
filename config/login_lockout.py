"""Sign-in lockout (django-axes): the words a locked-out person reads, for the admin and the API.

Axes counts failed sign-ins per username and client address and refuses the next ones, even with
the right password, for LOGIN_COOLOFF_MINUTES. Every refused attempt during the lockout starts
the wait again (axes' AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so "try again in N
minutes" counted from now is exact.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from config.client_address import client_address_of_request


def client_ip(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the address rate limits key on (config.client_address), or None.

    None, not a placeholder, when there is none (a test client's force_login): axes stores the
    address in a GenericIPAddressField.
    """
    return client_address_of_request(request)


def lockout_wait() -> dt.timedelta:
    return get_cool_off() or dt.timedelta(0)


def lockout_message(*, now: dt.datetime | None = None) -> str:
    """One sentence saying why sign-in is refused and when to try again."""
    wait = lockout_wait()
    minutes = max(1, round(wait.total_seconds() / 60))
    until = (now or timezone.now()) + wait
    return (
        "Too many failed sign-ins for this user from your address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, "
        f"after {until:%H:%M} UTC; another attempt before then starts the wait again."
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the admin's lockout page (429) instead of "wrong password".

    Axes' middleware calls it for a request its backend refused. Its async path (Daphne) passes
    the credentials where the response belongs (8.3.1), so neither argument is relied on. The
    token view answers lockouts itself (config/auth_api.py): DRF wraps the request, and axes
    flags the wrapper, which this middleware never sees.
    """
    response = render(
        request,
        "admin/login_locked_out.html",
        {"message": lockout_message(), "title": "Sign-in locked"},
        status=429,
    )
    response["Retry-After"] = str(int(lockout_wait().total_seconds()))
    return response
