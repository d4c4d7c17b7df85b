"""Pinecone describe/query helpers and the Pinecone "Test connection" against FakePinecone."""

from __future__ import annotations

import httpx
import pytest

from aiclients.errors import UpstreamError
from aiclients.pinecone import describe_index, query_index
from aiclients.probe import probe_pinecone
from tests.fakes import FakePinecone

KEY = "pcsk_SECRET_0123456789abcdef"


@pytest.fixture
def pinecone():
    with FakePinecone(api_key=KEY) as srv:
        srv.indexes = {
            "kb-prod": {"dimension": 1536, "ready": True},
            "kb-new": {"dimension": 1536, "ready": False},
        }
        yield srv


def describe(srv: FakePinecone, **kw) -> dict:
    args = {"api_key": KEY, "index_name": "kb-prod", "control_url": srv.url, "timeout": 2}
    return describe_index(**{**args, **kw})


def test_describe_returns_the_index_model(pinecone):
    model = describe(pinecone)

    assert model["name"] == "kb-prod"
    assert model["dimension"] == 1536
    assert model["status"] == {"ready": True, "state": "Ready"}
    sent = pinecone.requests[0]
    assert sent.headers["api-key"] == KEY
    assert sent.headers["x-pinecone-api-version"] == "2025-10"


def test_describe_with_a_wrong_key_says_the_key_was_rejected(pinecone):
    with pytest.raises(UpstreamError) as exc:
        describe(pinecone, api_key="pcsk_wrong_key_0000")

    assert exc.value.code == "UPSTREAM_AUTH"
    assert exc.value.message == "Pinecone rejected the API key."
    assert "UNAUTHENTICATED" in exc.value.detail
    assert "pcsk_wrong_key_0000" not in exc.value.detail


def test_describe_of_a_missing_index_names_it(pinecone):
    with pytest.raises(UpstreamError) as exc:
        describe(pinecone, index_name="kb-typo")

    assert exc.value.code == "UPSTREAM_BAD_REQUEST"
    assert exc.value.status == 404
    assert "kb-typo" in exc.value.message


def test_describe_of_an_index_that_is_not_ready(pinecone):
    with pytest.raises(UpstreamError) as exc:
        describe(pinecone, index_name="kb-new")

    assert exc.value.code == "UPSTREAM_UNAVAILABLE"
    assert "not ready" in exc.value.message
    assert "Initializing" in exc.value.message


def test_describe_checks_the_embedding_dimension(pinecone):
    with pytest.raises(UpstreamError) as exc:
        describe(pinecone, expected_dimension=768)

    assert "1536" in exc.value.message
    assert "768" in exc.value.message


def test_describe_of_an_unreachable_server_is_unavailable():
    with pytest.raises(UpstreamError) as exc:
        describe_index(api_key=KEY, index_name="kb", control_url="http://127.0.0.1:9", timeout=1)

    assert exc.value.code in ("UPSTREAM_UNAVAILABLE", "UPSTREAM_CONNECT_TIMEOUT")
    assert KEY not in exc.value.message + exc.value.detail


def test_the_fake_requires_the_api_version_header(pinecone):
    response = httpx.get(f"{pinecone.url}/indexes/kb-prod", headers={"Api-Key": KEY})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_ARGUMENT"


def test_the_fake_answers_401_exactly_as_documented(pinecone):
    response = httpx.get(
        f"{pinecone.url}/indexes/kb-prod",
        headers={"Api-Key": "nope", "X-Pinecone-Api-Version": "2025-10"},
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "UNAUTHENTICATED", "message": "Invalid API key."},
        "status": 401,
    }


def test_query_returns_configured_matches(pinecone):
    pinecone.matches = [
        {"id": "a", "score": 0.9, "values": [], "metadata": {"text": "alpha"}},
        {"id": "b", "score": 0.8, "values": [], "metadata": {"text": "beta"}},
    ]
    host = describe(pinecone)["host"]
    result = query_index(
        api_key=KEY, host=f"http://{host}", vector=[0.1] * 1536, top_k=1, namespace="t-42"
    )

    assert [m["id"] for m in result["matches"]] == ["a"]
    assert result["matches"][0]["metadata"] == {"text": "alpha"}
    assert result["namespace"] == "t-42"
    assert pinecone.requests[-1].json["topK"] == 1


def test_query_with_the_wrong_dimension_is_a_bad_request(pinecone):
    with pytest.raises(UpstreamError) as exc:
        query_index(api_key=KEY, host=pinecone.url, vector=[0.1, 0.2], top_k=3)

    assert exc.value.code == "UPSTREAM_BAD_REQUEST"
    assert "dimension" in exc.value.detail


def test_probe_pinecone_ok(pinecone):
    ok, message = probe_pinecone(KEY, "kb-prod", control_url=pinecone.url, expected_dimension=1536)

    assert ok is True
    assert "kb-prod" in message


@pytest.mark.parametrize(
    ("key", "index", "expected"),
    [
        ("pcsk_wrong", "kb-prod", "Pinecone rejected the API key."),
        (KEY, "kb-missing", "Pinecone has no index named 'kb-missing' in this project."),
        (KEY, "kb-new", "Index 'kb-new' exists but is not ready yet (state: Initializing)."),
        ("", "kb-prod", "Enter a Pinecone API key."),
    ],
)
def test_probe_pinecone_failures_explain_themselves(pinecone, key, index, expected):
    ok, message = probe_pinecone(key, index, control_url=pinecone.url)

    assert ok is False
    assert expected in message
    assert KEY not in message
