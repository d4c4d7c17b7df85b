"""Suite-wide fixtures: a clean Redis database per test and model factories."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from chatbots.tests.factories import *  # noqa: F403 - factories as fixtures


def _flush_retrying_deadlocks() -> None:
    """A transactional test's teardown empties the database with one TRUNCATE of every table.
    An end-to-end stack's Celery worker may still be finishing that test's turn analysis in its
    own transaction; PostgreSQL then breaks the lock cycle by failing one side, sometimes the
    flush ("deadlock detected", an error in the next test's teardown although nothing is wrong).
    The flush is one transaction, so trying it again is safe; the worker's work is done by then."""
    import time

    from django.core.management.base import CommandError
    from django.db import OperationalError
    from django.test import TransactionTestCase

    teardown = TransactionTestCase._fixture_teardown

    def retrying(self):
        for attempt in range(5):
            try:
                return teardown(self)
            except (OperationalError, CommandError) as exc:
                # `flush` wraps the database's error in a CommandError: look at both.
                cause = f"{exc} {exc.__cause__}"
                if "deadlock detected" not in cause or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    TransactionTestCase._fixture_teardown = retrying


_flush_retrying_deadlocks()


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


@pytest.fixture
def openai_server():
    """The fake OpenAI-compatible server, for the tests whose bots answer through it (one
    place instead of a copy in each module)."""
    from tests.fakes.openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def flowise():
    """The fake Flowise in its default scenario, for the tests whose bots answer through it."""
    from tests.fakes.flowise import FakeFlowise

    with FakeFlowise() as server:
        yield server


@pytest.fixture
def async_unsafe_refused(monkeypatch):
    """Django refuses ORM calls on an event loop only when DJANGO_ALLOW_ASYNC_UNSAFE is unset;
    tests that run turns on the worker's runtime use this so a read on the loop still fails."""
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)


@pytest.fixture(autouse=True)
def _a_shop_for_admin_pages(request):
    # What staff add in the admin goes to their current shop; tests that do not care about
    # tenants add as a superuser into the factories' shop.
    if "admin_client" in request.fixturenames:
        request.getfixturevalue("db")
        shop_for_tests()  # noqa: F405 - from the factories
