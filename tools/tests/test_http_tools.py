"""HTTP tools: a shop's own endpoint, described by a JSON Schema, called with the model's
arguments in real turns; a small real HTTP service on 127.0.0.1 plays the shop's API."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

import pytest
from django.core.exceptions import ValidationError

from chatbots.tests.factories import shop_for_tests
from tests.fakes._server import FakeServer
from tools.models import HttpTool
from tools.tests.conftest import events_of, run_turn

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "Bearer stock-SECRET-4711"
SCHEMA = {
    "type": "object",
    "properties": {"sku": {"type": "string"}, "email": {"type": "string"}},
    "required": ["sku"],
}


class ShopApi(FakeServer):
    """GET /stock/<sku>?email=… → its stock; POST /returns → the body back; /slow never
    answers in time; /echo-auth answers 403 with the Authorization header it got."""

    name = "fake-shop-api"

    async def handle(self, req, resp) -> None:
        if req.headers.get("authorization") != TOKEN:
            await resp.send(401, {"error": "unauthorized"})
        elif req.path.startswith("/stock/"):
            sku = req.path.removeprefix("/stock/")
            query = {k: v[0] for k, v in parse_qs(req.query).items()}
            await resp.send(200, {"sku": sku, "in_stock": 12, "query": query})
        elif req.path == "/returns" and req.method == "POST":
            await resp.send(201, {"return_id": "R-1", "got": req.json})
        elif req.path.startswith("/slow"):
            await asyncio.sleep(30)
        else:
            await resp.send(403, f"denied for {req.headers.get('authorization')}")


@pytest.fixture
def shop_api():
    with ShopApi() as server:
        yield server


def http_tool(shop_api, *, name="stock", url="/stock/{sku}", method="GET", **kw) -> HttpTool:
    tool = HttpTool(
        shop=shop_for_tests(),
        name=name,
        description="Stock of a product by its SKU.",
        method=method,
        url=shop_api.url + url,
        parameters=SCHEMA,
        auth_headers=f"Authorization: {TOKEN}",
        personal_arguments="email",
        **kw,
    )
    tool.full_clean()
    tool.save()
    return tool


def tool_results(openai_server) -> list[str]:
    return [m["content"] for m in openai_server.requests[1].json["messages"] if m["role"] == "tool"]


def test_the_model_calls_a_get_tool_with_a_path_argument_and_a_query(
    openai_server, tool_bot, shop_api
):
    http_tool(shop_api)
    bot = tool_bot(["http__stock"])
    args = {"sku": "red wine/75 cl", "email": "anna@example.com"}
    openai_server.configure(script=[{"tool_calls": [{"name": "http__stock", "arguments": args}]}])

    turn = run_turn(bot, "Is the red wine in stock?")

    assert turn.status == "completed"
    (request,) = shop_api.requests
    assert request.path == "/stock/red%20wine%2F75%20cl"  # one path segment, escaped
    assert request.headers["authorization"] == TOKEN
    (result,) = tool_results(openai_server)
    assert json.loads(result)["in_stock"] == 12
    assert json.loads(result)["query"] == {"email": "anna@example.com"}
    offered = openai_server.requests[0].json["tools"][0]["function"]
    assert offered == {
        "name": "http__stock",
        "description": "Stock of a product by its SKU.",
        "parameters": SCHEMA,
    }
    call = next(d for k, d in events_of(turn) if k == "tool_call")
    assert call["arguments"] == {"sku": "red wine/75 cl", "email": "***"}


def test_a_post_tool_sends_the_arguments_as_json(openai_server, tool_bot, shop_api):
    http_tool(shop_api, name="return", url="/returns", method="POST")
    bot = tool_bot(["http__return"])
    openai_server.configure(
        script=[{"tool_calls": [{"name": "http__return", "arguments": {"sku": "A1"}}]}]
    )

    run_turn(bot, "Return A1")

    assert shop_api.requests[0].json == {"sku": "A1"}
    assert json.loads(tool_results(openai_server)[0])["return_id"] == "R-1"


def test_errors_and_slow_answers_are_the_models_to_read_without_our_credentials(
    openai_server, tool_bot, shop_api
):
    http_tool(shop_api, name="denied", url="/nothing/{sku}")
    http_tool(shop_api, name="slow", url="/slow/{sku}", timeout=1)
    bot = tool_bot(["http__denied", "http__slow"])
    openai_server.configure(
        script=[
            {
                "tool_calls": [
                    {"name": "http__denied", "arguments": {"sku": "1"}},
                    {"name": "http__slow", "arguments": {"sku": "1"}},
                ]
            }
        ]
    )

    turn = run_turn(bot, "Try")

    assert turn.status == "completed"
    denied, slow = (json.loads(r)["error"] for r in tool_results(openai_server))
    assert denied.startswith("The service answered HTTP 403")
    assert "SECRET" not in denied and "***" in denied
    assert slow == "The service did not answer in time."


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "ftp://shop.example/x", "full http(s)"),
        ("url", "https://{sku}.example/x", "not the host"),
        ("parameters", {"type": "string"}, "JSON Schema object"),
        ("url", "https://shop.example/{colour}", "lacks: colour"),
    ],
)
def test_a_tool_that_could_not_work_is_refused_on_the_form(field, value, message):
    fields = {
        "shop": shop_for_tests(),
        "name": "bad",
        "description": "x",
        "url": "https://shop.example/stock/{sku}",
        "parameters": SCHEMA,
        field: value,
    }
    with pytest.raises(ValidationError) as err:
        HttpTool(**fields).full_clean()
    assert message in str(err.value)


def test_a_private_address_is_refused_unless_the_installation_allows_it(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    tool = HttpTool(
        shop=shop_for_tests(),
        name="local",
        description="x",
        url="http://127.0.0.1:9/stock/{sku}",
        parameters=SCHEMA,
    )
    with pytest.raises(ValidationError) as err:
        tool.full_clean()
    assert "loopback" in str(err.value)


def test_staff_try_an_http_tool_with_sample_arguments(shop_api, admin_client):
    tool = http_tool(shop_api)

    page = admin_client.post(
        f"/admin/tools/httptool/{tool.pk}/try/",
        {"tool": "stock", "arguments": '{"sku": "A1"}'},
    ).content.decode()

    assert "The tool answered" in page and "in_stock" in page
    assert shop_api.requests[0].path == "/stock/A1"
