"""Fixtures for monitoring tests: personas, dependencies that are down, an isolated broker."""

from __future__ import annotations

import socket

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from monitoring import selectors


def closed_port() -> int:
    """A local port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_url_with_db(url: str, db: int) -> str:
    base, _, _ = url.rstrip("/").rpartition("/")
    return f"{base}/{db}"


@pytest.fixture(autouse=True)
def _fresh_ping_cache():
    selectors._ping_cache.clear()
    yield
    selectors._ping_cache.clear()


@pytest.fixture
def staff_client(db):
    # The operators' endpoints are for platform operators (superusers), not shop staff.
    user = get_user_model().objects.create_user(
        "operator", password="pw", is_staff=True, is_superuser=True
    )
    staff = Client()
    staff.force_login(user)
    return staff


@pytest.fixture
def member_client(db):
    """Logged in, but not staff (e.g. a shop's own user); `client` stays anonymous."""
    user = get_user_model().objects.create_user("member", password="pw")
    member = Client()
    member.force_login(user)
    return member


@pytest.fixture
def redis_down(settings, monkeypatch):
    """REDIS_URL (cache, channel layer, statistics) points at a closed port."""
    import config.redis

    url = f"redis://127.0.0.1:{closed_port()}/15"
    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "hosts": [url]},
        }
    }
    monkeypatch.setattr(config.redis, "_sync_clients", {})
    return url


@pytest.fixture
def lonely_broker(settings):
    """A broker database no worker listens on (same test Redis server, database 13)."""
    url = redis_url_with_db(settings.CELERY_BROKER_URL, 13)
    settings.CELERY_BROKER_URL = url
    selectors.redis_client(url).flushdb()
    yield url
    selectors.redis_client(url).flushdb()


@pytest.fixture
def broker_down(settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/14"
    return settings.CELERY_BROKER_URL
