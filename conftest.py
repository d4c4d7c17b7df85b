"""Suite-wide fixtures: a clean Redis database per test and model factories."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from chatbots.tests.factories import *  # noqa: F403 - factories as fixtures


@pytest.fixture(autouse=True)
def _clean_redis():
    from config.redis import get_redis

    # `./run test` points REDIS_URL at database 15 of the server; never flush anything else.
    assert settings.REDIS_URL.rstrip("/").endswith("/15"), "tests must use Redis database 15"
    get_redis().flushdb()
    yield


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _encryption_keys(settings):
    if not settings.FIELD_ENCRYPTION_KEYS:
        settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    yield


@pytest.fixture(autouse=True)
def _a_shop_for_admin_pages(request):
    # What staff add in the admin goes to their current shop; tests that do not care about
    # tenants add as a superuser into the factories' shop.
    if "admin_client" in request.fixturenames:
        request.getfixturevalue("db")
        shop_for_tests()  # noqa: F405 - from the factories
