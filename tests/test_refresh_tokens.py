"""JWT refresh: a refresh token works once (rotation with a blacklist), and a password change or
deactivation ends every token issued before it."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection

pytestmark = pytest.mark.django_db

PASSWORD = "api-pw-123456789"


@pytest.fixture
def api_user():
    return User.objects.create_user("shop-server", password=PASSWORD)


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATE_LIMITS_ENABLED = False


def obtain(client) -> dict:
    response = client.post(
        "/api/auth/token",
        {"username": "shop-server", "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200
    return response.json()


def refresh(client, token: str):
    return client.post(
        "/api/auth/token/refresh", {"refresh": token}, content_type="application/json"
    )


def assert_refused(response):
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "NOT_AUTHENTICATED",
            "message": "This refresh token is no longer valid; request a new one with your password.",
            "details": {},
        }
    }


def test_a_refresh_answers_a_new_refresh_token_that_works(client, api_user):
    first = obtain(client)["refresh"]
    second = refresh(client, first).json()
    assert second["access"] and second["refresh"] and second["refresh"] != first
    assert refresh(client, second["refresh"]).status_code == 200


def test_a_used_refresh_token_cannot_be_used_twice(client, api_user):
    token = obtain(client)["refresh"]
    assert refresh(client, token).status_code == 200
    assert_refused(refresh(client, token))


def test_after_a_password_change_the_old_refresh_token_is_refused(client, api_user):
    token = obtain(client)["refresh"]
    api_user.set_password("a-new-pw-987654321")
    api_user.save()
    assert_refused(refresh(client, token))


def test_after_a_password_change_the_old_access_token_is_refused(client, api_user):
    access = obtain(client)["access"]
    headers = {"Authorization": f"Bearer {access}"}
    assert client.get("/api/users/anyone/sessions", headers=headers).status_code == 200
    api_user.set_password("a-new-pw-987654321")
    api_user.save()
    response = client.get("/api/users/anyone/sessions", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "NOT_AUTHENTICATED"


def test_a_token_obtained_after_the_password_change_works(client, api_user):
    api_user.set_password("a-new-pw-987654321")
    api_user.save()
    response = client.post(
        "/api/auth/token",
        {"username": "shop-server", "password": "a-new-pw-987654321"},
        content_type="application/json",
    )
    assert refresh(client, response.json()["refresh"]).status_code == 200


def test_a_refresh_token_of_a_user_made_inactive_is_refused(client, api_user):
    token = obtain(client)["refresh"]
    api_user.is_active = False
    api_user.save()
    assert_refused(refresh(client, token))


def test_a_refresh_token_of_a_deleted_user_is_refused_not_a_500(client, api_user):
    token = obtain(client)["refresh"]
    api_user.delete()
    assert_refused(refresh(client, token))


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        ("", 400, "VALIDATION_ERROR"),  # a required field left empty
        ("not-a-jwt", 401, "NOT_AUTHENTICATED"),
        ("a.b.c", 401, "NOT_AUTHENTICATED"),
    ],
)
def test_a_malformed_refresh_token_gets_the_envelope(client, token, status, code):
    response = refresh(client, token)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_with_one_token_at_the_same_moment_give_one_new_token(api_user):
    from django.test import Client

    token = obtain(Client())["refresh"]
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def use() -> None:
        barrier.wait()
        try:
            statuses.append(refresh(Client(), token).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 401, 401, 401]
