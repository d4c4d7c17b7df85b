"""HTTP tools imported from an OpenAPI document: one per GET/POST operation, refusals listed."""

from __future__ import annotations

import json

import pytest

from chatbots.tests.factories import shop_for_tests
from tools.models import HttpTool
from tools.openapi import http_tools_import

pytestmark = pytest.mark.django_db

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "Shop API", "version": "1"},
    "servers": [{"url": "https://api.shop.example/v1"}],
    "paths": {
        "/stock/{sku}": {
            "parameters": [{"name": "sku", "in": "path", "schema": {"type": "string"}}],
            "get": {
                "operationId": "getStock",
                "summary": "Stock of a product",
                "parameters": [
                    {
                        "name": "warehouse",
                        "in": "query",
                        "description": "Which warehouse",
                        "schema": {"type": "string"},
                    }
                ],
            },
            "delete": {"operationId": "dropStock"},
        },
        "/returns": {
            "post": {
                "operationId": "createReturn",
                "description": "Book a return",
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Return"}}
                    }
                },
            }
        },
        "/me": {
            "get": {
                "operationId": "me",
                "parameters": [{"name": "X-Session", "in": "header", "schema": {"type": "string"}}],
            }
        },
    },
    "components": {
        "schemas": {
            "Return": {
                "type": "object",
                "properties": {"order_number": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["order_number"],
            }
        }
    },
}


def test_get_and_post_operations_become_tools_and_the_rest_is_reported():
    report = http_tools_import(shop_id=shop_for_tests().pk, text=json.dumps(DOCUMENT))

    assert report.created == ["getstock", "createreturn"]
    assert report.skipped == [
        "DELETE /stock/{sku}: only GET and POST become tools",
        "GET /me: its header parameter 'X-Session' cannot come from the model",
    ]
    stock = HttpTool.objects.get(name="getstock")
    assert stock.method == "GET" and stock.url == "https://api.shop.example/v1/stock/{sku}"
    assert stock.description == "Stock of a product"
    assert stock.parameters == {
        "type": "object",
        "properties": {
            "sku": {"type": "string"},
            "warehouse": {"type": "string", "description": "Which warehouse"},
        },
        "required": ["sku"],
    }
    returns = HttpTool.objects.get(name="createreturn")
    assert returns.method == "POST"
    assert returns.parameters["properties"]["order_number"] == {"type": "string"}
    assert returns.parameters["required"] == ["order_number"]


def test_importing_again_creates_nothing_twice():
    shop = shop_for_tests()
    http_tools_import(shop_id=shop.pk, text=json.dumps(DOCUMENT))

    report = http_tools_import(shop_id=shop.pk, text=json.dumps(DOCUMENT))

    assert report.created == []
    assert "GET /stock/{sku}: a tool named 'getstock' exists" in report.skipped
    assert HttpTool.objects.count() == 2


def test_yaml_is_read_too_and_a_base_url_fills_in_for_a_relative_server():
    text = (
        "openapi: 3.0.0\nservers: [{url: /api}]\npaths:\n  /ping:\n    get: {operationId: ping}\n"
    )

    with pytest.raises(ValueError, match="base URL"):
        http_tools_import(shop_id=shop_for_tests().pk, text=text)
    report = http_tools_import(
        shop_id=shop_for_tests().pk, text=text, base_url="https://shop.example/api"
    )

    assert report.created == ["ping"]
    assert HttpTool.objects.get().url == "https://shop.example/api/ping"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not: [yaml", "neither JSON nor YAML"),
        ("just words", "no “paths”"),
        ("[1, 2]", "no “paths”"),
        ('{"openapi": "3.0.0"}', "no “paths”"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_something_that_is_not_openapi_is_refused_in_words(text, message):
    with pytest.raises(ValueError, match=message):
        http_tools_import(shop_id=shop_for_tests().pk, text=text)


def test_a_private_server_is_reported_per_operation(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    document = {**DOCUMENT, "servers": [{"url": "http://127.0.0.1:8000"}]}

    report = http_tools_import(shop_id=shop_for_tests().pk, text=json.dumps(document))

    assert report.created == []
    assert any("loopback" in line for line in report.skipped)


def test_staff_import_a_document_in_the_admin(admin_client):
    shop = shop_for_tests()
    page = admin_client.get("/admin/tools/httptool/")
    assert "Import from OpenAPI" in page.content.decode()

    response = admin_client.post(
        "/admin/tools/httptool/import-openapi/",
        {"shop": shop.pk, "document": json.dumps(DOCUMENT), "base_url": ""},
        follow=True,
    )

    text = response.content.decode()
    assert "Created 2 tool(s): getstock, createreturn." in text
    assert "Skipped DELETE /stock/{sku}: only GET and POST become tools." in text
    assert HttpTool.objects.filter(shop=shop).count() == 2

    response = admin_client.post(
        "/admin/tools/httptool/import-openapi/", {"shop": shop.pk, "document": "{not: [yaml"}
    )
    assert response.status_code == 200
    assert "neither JSON nor YAML" in response.content.decode()
