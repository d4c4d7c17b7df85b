"""Sign-in lockout (django-axes): the admin login and POST /api/auth/token refuse a username from
an address after LOGIN_FAILURE_LIMIT wrong passwords, with the right one too, until the cool-off
has passed; the page and the error say when to try again."""

from __future__ import annotations

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "right-pw-123456789"


@pytest.fixture
def staff_user():
    return User.objects.create_user("ops", password=PASSWORD, is_staff=True, is_superuser=True)


def admin_login(client, password, *, username="ops", ip="203.0.113.7"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
    )


def token_obtain(client, password, *, username="ops", ip="203.0.113.7"):
    return client.post(
        "/api/auth/token",
        {"username": username, "password": password},
        content_type="application/json",
        REMOTE_ADDR=ip,
    )


def let_cool_off_pass():
    AccessAttempt.objects.update(attempt_time=timezone.now() - dt.timedelta(minutes=16))


def test_thirty_wrong_passwords_lock_the_admin_login_even_for_the_right_one(client, staff_user):
    for _ in range(30):
        admin_login(client, "wrong-password")
    response = admin_login(client, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_the_lockout_page_says_in_words_when_to_try_again(client, staff_user, settings):
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=15)
    for _ in range(5):
        admin_login(client, "wrong-password")
    response = admin_login(client, PASSWORD)
    page = response.content.decode()
    assert response.status_code == 429
    assert "Too many failed sign-ins for this user from your address." in page
    assert "Try again in 15 minutes, after " in page and " UTC" in page
    assert response["Retry-After"] == "900"
    assert PASSWORD not in page


def test_the_admin_login_works_again_after_the_cool_off(client, staff_user):
    for _ in range(30):
        admin_login(client, "wrong-password")
    assert admin_login(client, PASSWORD).status_code == 429
    let_cool_off_pass()
    response = admin_login(client, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_success_clears_the_count_so_occasional_typos_never_lock_anyone_out(client, staff_user):
    for _ in range(3):
        for _ in range(4):
            admin_login(client, "typo")
        assert admin_login(client, PASSWORD).status_code == 302
        client.logout()


def test_the_lockout_is_per_username_and_address(client, staff_user):
    User.objects.create_user("colleague", password=PASSWORD, is_staff=True)
    for _ in range(10):
        admin_login(client, "wrong-password")
    assert admin_login(client, PASSWORD).status_code == 429
    assert admin_login(client, PASSWORD, ip="198.51.100.9").status_code == 302
    client.logout()
    assert admin_login(client, PASSWORD, username="colleague").status_code == 302


def test_the_token_endpoint_locks_out_at_the_failure_limit(client, staff_user, settings):
    settings.RATE_LIMITS_ENABLED = False  # the per-IP token rate limit would answer first
    statuses = [token_obtain(client, "wrong-password").status_code for _ in range(30)]
    # The wrong password that reaches LOGIN_FAILURE_LIMIT (5) is already answered with the lockout.
    limit = settings.AXES_FAILURE_LIMIT
    assert statuses == [401] * (limit - 1) + [429] * (30 - limit + 1)
    response = token_obtain(client, PASSWORD)
    assert response.status_code == 429
    body = response.json()
    assert body["error"]["code"] == "RATE_LIMITED"
    assert "Try again in 15 minutes" in body["error"]["message"]
    assert "access" not in body and response["Retry-After"] == "900"


def test_the_token_endpoint_works_again_after_the_cool_off(client, staff_user, settings):
    settings.RATE_LIMITS_ENABLED = False
    for _ in range(6):
        token_obtain(client, "wrong-password")
    assert token_obtain(client, PASSWORD).status_code == 429
    let_cool_off_pass()
    response = token_obtain(client, PASSWORD)
    assert response.status_code == 200 and response.json()["access"]


def test_a_token_success_clears_the_count(client, staff_user, settings):
    settings.RATE_LIMITS_ENABLED = False
    for _ in range(3):
        for _ in range(4):
            assert token_obtain(client, "typo").status_code == 401
        assert token_obtain(client, PASSWORD).status_code == 200


def test_admin_and_token_failures_count_together(client, staff_user, settings):
    settings.RATE_LIMITS_ENABLED = False
    for _ in range(3):
        admin_login(client, "wrong-password")
    for _ in range(3):
        token_obtain(client, "wrong-password")
    assert admin_login(client, PASSWORD).status_code == 429


def test_the_lockout_page_is_served_under_asgi_too(async_client, staff_user):
    # Daphne runs the middleware chain in async mode: axes' async path is a different one.
    from asgiref.sync import async_to_sync

    post = async_to_sync(async_client.post)
    for _ in range(5):
        post("/admin/login/", {"username": "ops", "password": "wrong"})
    response = post("/admin/login/", {"username": "ops", "password": PASSWORD})
    assert response.status_code == 429
    assert "Try again in 15 minutes" in response.content.decode()
