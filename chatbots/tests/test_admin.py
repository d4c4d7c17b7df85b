"""The chatbot admin as staff use it: forms with inlines, errors in words, write-only secrets,
"Test connection" against the fakes, and history with compare and one-click revert."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.messages import get_messages
from reversion.models import Version

from accounts.models import AuditEvent
from chatbots.models import (
    AIEndpoint,
    Chatbot,
    Flow,
    KnowledgeBase,
    PromptTemplate,
    TemplateAssignment,
)
from chatbots.selectors import chatbot_config_get
from chatbots.tests.factories import shop_for_tests
from tests.fakes.flowise import FakeFlowise
from tests.fakes.openai import FakeOpenAI
from tests.fakes.pinecone import FakePinecone
from tests.html_form import form_data as html_form_data

pytestmark = pytest.mark.django_db

SECRET = "sk-test-9f8e7d6c5b4a"
ADD_CHATBOT = "/admin/chatbots/chatbot/add/"
ADD_ENDPOINT = "/admin/chatbots/aiendpoint/add/"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # admin_client creates a superuser per test; the default PBKDF2 costs ~0.3 s each time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def chatbot_url(chatbot: Chatbot, suffix: str = "change/") -> str:
    return f"/admin/chatbots/chatbot/{chatbot.pk}/{suffix}"


def endpoint_url(endpoint: AIEndpoint, suffix: str = "change/") -> str:
    return f"/admin/chatbots/aiendpoint/{endpoint.pk}/{suffix}"


def form_data(response) -> dict:
    """What the browser would post back for the form on this page, unchanged: read from the
    page's HTML (tests/html_form.py), secret boxes and blank extra inline rows included."""
    assert response.status_code == 200, response.status_code
    return html_form_data(response.content.decode())


def add_row(data: dict, prefix: str, **fields) -> None:
    """Fill the page's first blank extra row, as a person types into it, or add a row as
    "Add another" does. (The `_filled:` keys only remember which rows were filled; the
    admin ignores names it does not know.)"""
    total = int(data[f"{prefix}-TOTAL_FORMS"])
    index = int(data[f"{prefix}-INITIAL_FORMS"])
    while index < total and f"_filled:{prefix}-{index}" in data:
        index += 1
    data[f"_filled:{prefix}-{index}"] = "1"
    for name, value in fields.items():
        data[f"{prefix}-{index}-{name}"] = value
    data[f"{prefix}-TOTAL_FORMS"] = str(max(total, index + 1))


def new_chatbot_data(admin_client, **fields) -> dict:
    data = form_data(admin_client.get(ADD_CHATBOT))
    data.update(public_id="vinhuset", name="Vinhuset", language="da", **fields)
    return data


def flow_row(endpoint: AIEndpoint, name: str, **fields) -> dict:
    row = {
        "name": name,
        "role": "answer",
        "endpoint": str(endpoint.pk),
        "top_k": "5",
        "enabled": "on",
    }
    return row | fields


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def save_in_admin(client, chatbot: Chatbot, change) -> None:
    data = form_data(client.get(chatbot_url(chatbot)))
    change(data)
    response = client.post(chatbot_url(chatbot), data)
    assert response.status_code == 302, response.context and response.context["errors"]


def row_of(data: dict, flow_name: str) -> str:
    return next(k for k, v in data.items() if k.endswith("-name") and v == flow_name)[
        : -len("-name")
    ]


# --- Creating and editing -----------------------------------------------------------------------


def test_staff_create_a_chatbot_with_two_flows_in_one_form(admin_client, make_endpoint):
    endpoint = make_endpoint()
    data = new_chatbot_data(admin_client, allowed_origins="https://vinhuset.dk")
    add_row(data, "flows", **flow_row(endpoint, "main", is_main="on"))
    add_row(data, "flows", **flow_row(endpoint, "flow2", routing_key="order"))
    add_row(data, "text_rules", kind="exclamation", position="0")

    response = admin_client.post(ADD_CHATBOT, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    chatbot = Chatbot.objects.get(public_id="vinhuset")
    assert chatbot.allowed_origins == ["https://vinhuset.dk"]
    assert {(f.name, f.is_main, f.routing_key) for f in chatbot.flows.all()} == {
        ("main", True, ""),
        ("flow2", False, "order"),
    }
    assert chatbot.text_rules.get().kind == "exclamation"


def test_editing_a_routing_key_is_saved_and_the_cached_config_follows(
    admin_client, make_chatbot, make_flow
):
    chatbot = make_chatbot()
    make_flow(chatbot=chatbot, name="orders", routing_key="order")
    assert {f["routing_key"] for f in chatbot_config_get(public_id=chatbot.public_id)["flows"]} == {
        "",
        "order",
    }
    data = form_data(admin_client.get(chatbot_url(chatbot)))
    row = next(k for k, v in data.items() if k.endswith("-name") and v == "orders")
    data[row.replace("-name", "-routing_key")] = "ordre"

    assert admin_client.post(chatbot_url(chatbot), data).status_code == 302

    assert Flow.objects.get(chatbot=chatbot, name="orders").routing_key == "ordre"
    cached = chatbot_config_get(public_id=chatbot.public_id)
    assert {f["routing_key"] for f in cached["flows"]} == {"", "ordre"}


def test_moving_main_and_swapping_routing_keys_in_one_save_works(
    admin_client, make_chatbot, make_flow
):
    chatbot = make_chatbot()  # "main" is the main flow
    make_flow(chatbot=chatbot, name="product", routing_key="product")
    make_flow(chatbot=chatbot, name="sales", routing_key="order")
    data = form_data(admin_client.get(chatbot_url(chatbot)))
    rows = {v: k.removesuffix("-name") for k, v in data.items() if k.endswith("-name")}
    data.pop(f"{rows['main']}-is_main")
    data[f"{rows['product']}-is_main"] = "on"
    data[f"{rows['product']}-routing_key"] = "order"
    data[f"{rows['sales']}-routing_key"] = "product"

    assert admin_client.post(chatbot_url(chatbot), data).status_code == 302

    flows = {f.name: (f.is_main, f.routing_key) for f in chatbot.flows.all()}
    assert flows == {"main": (False, ""), "product": (True, "order"), "sales": (False, "product")}


def test_the_change_page_is_whole_and_links_to_the_demo(admin_client, make_chatbot):
    chatbot = make_chatbot(public_id="demo-shop")
    html = page(admin_client, chatbot_url(chatbot))
    # A help text mentioning a <script> tag must not open a real one and swallow the form.
    assert "<script> tag" not in html
    assert "the shop's script tag" in html or "the shop&#x27;s script tag" in html
    assert 'href="/chat/demo-shop/"' in html


def test_the_changelist_filters_and_counts_flows(admin_client, make_chatbot, make_flow):
    chatbot = make_chatbot(public_id="dilling", language="da")
    make_flow(chatbot=chatbot, name="extra")
    make_chatbot(public_id="other-shop", language="en")

    response = admin_client.get("/admin/chatbots/chatbot/?language__exact=da&q=dill")

    rows = list(response.context["cl"].result_list)
    assert [c.public_id for c in rows] == ["dilling"]
    assert rows[0]._flow_count == 2
    assert "/chat/dilling/" in response.content.decode()


# --- Validation in words --------------------------------------------------------------------------


def test_a_chatbot_without_a_main_flow_is_refused_in_words(admin_client, make_endpoint):
    endpoint = make_endpoint()
    data = new_chatbot_data(admin_client)
    add_row(data, "flows", **flow_row(endpoint, "main"))
    add_row(data, "flows", **flow_row(endpoint, "flow2", routing_key="order"))

    response = admin_client.post(ADD_CHATBOT, data)

    assert response.status_code == 200
    assert "This chatbot has no main flow." in response.content.decode()
    assert not Chatbot.objects.exists()


def test_a_chatbot_with_two_main_flows_is_refused_in_words(admin_client, make_endpoint):
    endpoint = make_endpoint()
    data = new_chatbot_data(admin_client)
    add_row(data, "flows", **flow_row(endpoint, "main", is_main="on"))
    add_row(data, "flows", **flow_row(endpoint, "flow2", is_main="on"))

    response = admin_client.post(ADD_CHATBOT, data)

    assert response.status_code == 200
    assert "Only one flow can be the main flow" in response.content.decode()
    assert not Chatbot.objects.exists()


def test_a_duplicate_routing_key_is_refused_in_words(admin_client, make_chatbot, make_flow):
    chatbot = make_chatbot()
    make_flow(chatbot=chatbot, name="product", routing_key="product")
    make_flow(chatbot=chatbot, name="sales", routing_key="order")
    data = form_data(admin_client.get(chatbot_url(chatbot)))
    row = next(k for k, v in data.items() if k.endswith("-routing_key") and v == "order")
    data[row] = "product"

    response = admin_client.post(chatbot_url(chatbot), data)

    assert response.status_code == 200
    assert "Another flow of this chatbot already has this routing key." in response.content.decode()
    assert Flow.objects.get(chatbot=chatbot, name="sales").routing_key == "order"


def test_a_duplicate_flow_name_is_refused_in_words(admin_client, make_endpoint):
    endpoint = make_endpoint()
    data = new_chatbot_data(admin_client)
    add_row(data, "flows", **flow_row(endpoint, "main", is_main="on"))
    add_row(data, "flows", **flow_row(endpoint, "main"))

    response = admin_client.post(ADD_CHATBOT, data)

    assert response.status_code == 200
    assert "Two flows have the same name" in response.content.decode()
    assert not Chatbot.objects.exists()


def test_a_flowise_flow_needs_a_uuid_target(admin_client, make_endpoint):
    endpoint = make_endpoint(kind=AIEndpoint.Kind.FLOWISE)
    data = new_chatbot_data(admin_client)
    add_row(data, "flows", **flow_row(endpoint, "main", is_main="on", target="my-flow"))

    response = admin_client.post(ADD_CHATBOT, data)

    assert response.status_code == 200
    [flows] = [
        i.formset for i in response.context["inline_admin_formsets"] if i.formset.prefix == "flows"
    ]
    assert flows.forms[0].errors["target"] == [
        "A Flowise flow needs its chatflow id (a UUID from Flowise)."
    ]
    assert (
        "A Flowise flow needs its chatflow id (a UUID from Flowise)." in response.content.decode()
    )
    assert not Chatbot.objects.exists()


def test_a_builtin_endpoint_with_a_url_is_refused_on_its_field(admin_client):
    data = form_data(admin_client.get(ADD_ENDPOINT))
    data.update(name="Demo", kind="builtin", base_url="https://ai.example.com")

    response = admin_client.post(ADD_ENDPOINT, data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["base_url"] == [
        "A builtin endpoint has no URL: it answers from the knowledge base."
    ]
    assert "A builtin endpoint has no URL" in response.content.decode()
    assert not AIEndpoint.objects.exists()


# --- Secrets ----------------------------------------------------------------------------------


def create_endpoint_in_admin(client, api_key: str = SECRET) -> AIEndpoint:
    data = form_data(client.get(ADD_ENDPOINT))
    data.update(name="OpenAI", kind="openai", base_url="https://api.openai.com/v1", api_key=api_key)
    assert client.post(ADD_ENDPOINT, data).status_code == 302
    return AIEndpoint.objects.get(name="OpenAI")


def test_an_api_key_is_stored_encrypted_and_never_shown_on_any_admin_page(admin_client):
    endpoint = create_endpoint_in_admin(admin_client)
    assert endpoint.api_key.reveal() == SECRET
    data = form_data(admin_client.get(endpoint_url(endpoint)))
    data.update(read_timeout="30", api_key="sk-test-replacement-0000")
    assert admin_client.post(endpoint_url(endpoint), data).status_code == 302
    old, new = Version.objects.get_for_object(endpoint).order_by("pk")

    stored = AIEndpoint.objects.get(pk=endpoint.pk).api_key.stored
    urls = [
        endpoint_url(endpoint),
        "/admin/chatbots/aiendpoint/",
        endpoint_url(endpoint, "history/"),
        endpoint_url(endpoint, f"history/compare/?old={old.pk}&new={new.pk}"),
        endpoint_url(endpoint, f"history/compare/?old={old.pk}"),
        endpoint_url(endpoint, f"history/{old.pk}/"),  # reversion's own revision form
        endpoint_url(endpoint, "delete/"),
    ]
    for url in urls:
        html = page(admin_client, url)
        for secret in (SECRET, "sk-test-replacement-0000", stored, endpoint.api_key.stored):
            assert secret not in html, url
    compare = page(admin_client, urls[3])
    assert "changed" in compare
    assert "30.0" in compare  # ordinary fields show old → new


def test_a_blank_key_input_keeps_the_stored_key(admin_client):
    endpoint = create_endpoint_in_admin(admin_client)
    data = form_data(admin_client.get(endpoint_url(endpoint)))
    data["name"] = "OpenAI main"

    assert admin_client.post(endpoint_url(endpoint), data).status_code == 302

    endpoint.refresh_from_db()
    assert endpoint.name == "OpenAI main"
    assert endpoint.api_key.reveal() == SECRET


def test_the_clear_box_removes_the_stored_key(admin_client):
    endpoint = create_endpoint_in_admin(admin_client)
    data = form_data(admin_client.get(endpoint_url(endpoint)))
    data["clear_api_key"] = "on"

    assert admin_client.post(endpoint_url(endpoint), data).status_code == 302

    endpoint.refresh_from_db()
    assert not endpoint.api_key


def test_a_pinecone_key_in_the_chatbot_form_is_write_only(admin_client, make_chatbot):
    first, second = "pcsk-secret-1a2b3c", "pcsk-secret-new-9z8y7x"
    chatbot = make_chatbot()
    kb = KnowledgeBase.objects.create(
        chatbot=chatbot, name="kb", kind="pinecone", index_name="kb", api_key=first
    )
    kb.refresh_from_db()
    first_stored = kb.api_key.stored
    save_in_admin(admin_client, chatbot, lambda d: None)
    assert KnowledgeBase.objects.get().api_key.reveal() == first  # blank inline input kept it
    save_in_admin(admin_client, chatbot, lambda d: d.update({"knowledge_bases-0-api_key": second}))
    kb.refresh_from_db()
    assert kb.api_key.reveal() == second
    old, new = Version.objects.get_for_object(chatbot).order_by("pk")

    compare = chatbot_url(chatbot, f"history/compare/?old={old.pk}&new={new.pk}")
    for url in (
        chatbot_url(chatbot),
        chatbot_url(chatbot, "history/"),
        compare,
        chatbot_url(chatbot, f"history/compare/?old={old.pk}"),
        chatbot_url(chatbot, f"history/{old.pk}/"),  # reversion's own revision form
        chatbot_url(chatbot, "delete/"),
        "/admin/chatbots/knowledgebase/",
        f"/admin/chatbots/knowledgebase/{kb.pk}/change/",
        f"/admin/chatbots/knowledgebase/{kb.pk}/history/",
    ):
        html = page(admin_client, url)
        for secret in (first, second, first_stored, kb.api_key.stored):
            assert secret not in html, url
    # Versions hold no secrets (docs/secrets.md): the history shows no key change, the audit
    # log says that one happened.
    sections = {s.title: s.rows for s in admin_client.get(compare).context["sections"]}
    assert "Knowledge bases" not in sections
    change = AuditEvent.objects.filter(object_id=str(chatbot.pk), action="change").latest("pk")
    assert "API key" in change.detail["change"]


# --- Test connection --------------------------------------------------------------------------


@pytest.fixture
def flowise():
    with FakeFlowise(api_key="flowise-key-7c6b5a4d3e") as server:
        yield server


@pytest.fixture
def openai():
    with FakeOpenAI(api_key=SECRET) as server:
        yield server


@pytest.fixture
def pinecone():
    with FakePinecone(api_key="pcsk-right-key-123456") as server:
        yield server


def run_connection_test(client, endpoint: AIEndpoint) -> list[str]:
    response = client.post(endpoint_url(endpoint, "test-connection/"), follow=True)
    assert response.redirect_chain == [(endpoint_url(endpoint), 302)]
    return [str(m) for m in response.context["messages"]]


def test_a_flowise_endpoint_answers_with_the_right_key(
    admin_client, flowise, make_chatbot, make_endpoint, make_flow
):
    endpoint = make_endpoint(kind="flowise", base_url=flowise.url, api_key="flowise-key-7c6b5a4d3e")
    chatbot = make_chatbot()
    chatflow = str(uuid.uuid4())
    make_flow(chatbot=chatbot, name="answer", endpoint=endpoint, target=chatflow)

    [message] = run_connection_test(admin_client, endpoint)

    assert "Connected" in message
    assert flowise.requests[-1].path == f"/api/v1/prediction/{chatflow}"


def test_a_flowise_endpoint_with_a_wrong_key_says_so_without_the_key(
    admin_client, flowise, make_chatbot, make_endpoint, make_flow
):
    endpoint = make_endpoint(kind="flowise", base_url=flowise.url, api_key="wrong-key-0a9b8c7d")
    make_flow(chatbot=make_chatbot(), endpoint=endpoint)

    response = admin_client.post(
        "/admin/chatbots/aiendpoint/",
        {"action": "test_connection", "_selected_action": [endpoint.pk]},
        follow=True,
    )

    [message] = [str(m) for m in response.context["messages"]]
    assert "refused the API key" in message
    assert "wrong-key-0a9b8c7d" not in response.content.decode()


def test_an_openai_endpoint_reports_success_and_a_rejected_key(
    admin_client, openai, make_chatbot, make_endpoint, make_flow
):
    good = make_endpoint(kind="openai", base_url=f"{openai.url}/v1", api_key=SECRET)
    bad = make_endpoint(kind="openai", base_url=f"{openai.url}/v1", api_key="sk-test-wrongwrong99")
    chatbot = make_chatbot()
    make_flow(chatbot=chatbot, name="a", endpoint=good, target="gpt-4o-mini")
    make_flow(chatbot=chatbot, name="b", endpoint=bad, target="gpt-4o-mini")

    [ok] = run_connection_test(admin_client, good)
    [refused] = run_connection_test(admin_client, bad)

    assert "uses “gpt-4o-mini”, which the server lists" in ok
    assert "API key was rejected" in refused
    for message in (ok, refused):
        assert SECRET not in message
        assert "sk-test-wrongwrong99" not in message


def test_a_builtin_endpoint_needs_no_connection_but_needs_entries(
    admin_client, make_chatbot, make_endpoint, make_flow, make_kb, make_entry
):
    endpoint = make_endpoint()
    chatbot = make_chatbot(public_id="empty-shop", with_main_flow=False)
    make_flow(chatbot=chatbot, name="main", is_main=True, endpoint=endpoint)

    [empty] = run_connection_test(admin_client, endpoint)
    make_entry(knowledge_base=make_kb(chatbot=chatbot), title="Returns", text="30 days.")
    [ready] = run_connection_test(admin_client, endpoint)

    assert "Builtin needs no connection" in empty
    assert "empty-shop has no knowledge entries" in empty
    assert "empty-shop: 1 knowledge entries" in ready


def test_a_pinecone_knowledge_base_reports_success_missing_index_and_wrong_key(
    admin_client, pinecone, make_chatbot
):
    chatbot = make_chatbot()

    def kb(name: str, index: str, key: str) -> KnowledgeBase:
        return KnowledgeBase.objects.create(
            chatbot=chatbot,
            name=name,
            kind="pinecone",
            index_name=index,
            api_key=key,
            control_url=pinecone.url,
        )

    bases = [
        kb("good", "kb", "pcsk-right-key-123456"),
        kb("missing", "no-such-index", "pcsk-right-key-123456"),
        kb("refused", "kb", "pcsk-wrong-key-654321"),
    ]
    response = admin_client.post(
        "/admin/chatbots/knowledgebase/",
        {"action": "test_connection", "_selected_action": [b.pk for b in bases]},
    )
    text = "\n".join(messages_of(response))

    assert "good — Pinecone: Connected: index 'kb' is ready" in text
    assert "Pinecone has no index named 'no-such-index'" in text
    assert "Pinecone rejected the API key" in text
    assert "pcsk-right-key-123456" not in text
    assert "pcsk-wrong-key-654321" not in text
    button = admin_client.post(f"/admin/chatbots/knowledgebase/{bases[0].pk}/test-connection/")
    assert "Connected" in messages_of(button)[-1]


def test_a_flowise_endpoint_no_flow_uses_is_only_pinged(admin_client, flowise, make_endpoint):
    endpoint = make_endpoint(kind="flowise", base_url=flowise.url, api_key="flowise-key-7c6b5a4d3e")

    [message] = run_connection_test(admin_client, endpoint)

    assert "The Flowise server answers. No flow uses this endpoint yet" in message
    assert [r.path for r in flowise.requests] == ["/api/v1/ping"]


def test_the_change_form_has_a_test_connection_button(admin_client, make_endpoint):
    endpoint = make_endpoint()
    assert endpoint_url(endpoint, "test-connection/") in page(admin_client, endpoint_url(endpoint))


def test_a_get_does_not_run_the_connection_test(admin_client, flowise, make_endpoint):
    endpoint = make_endpoint(kind="flowise", base_url=flowise.url)
    response = admin_client.get(endpoint_url(endpoint, "test-connection/"))
    assert response.status_code == 302
    assert flowise.requests == []


# --- History, compare, revert ---------------------------------------------------------------------


@pytest.fixture
def edited_twice(admin_client, make_chatbot, make_flow, make_endpoint):
    """v1: greeting "Hello v1", flows main + orders. v2: "Hello v2", orders gone, product added."""
    chatbot = make_chatbot(public_id="history-shop")
    make_flow(chatbot=chatbot, name="orders", routing_key="order")
    endpoint = make_endpoint()

    save_in_admin(admin_client, chatbot, lambda d: d.update(greeting="Hello v1"))

    def second(data):
        data["greeting"] = "Hello v2"
        data[f"{row_of(data, 'orders')}-DELETE"] = "on"
        add_row(data, "flows", **flow_row(endpoint, "product", routing_key="product"))

    save_in_admin(admin_client, chatbot, second)
    v1, v2 = Version.objects.get_for_object(chatbot).order_by("pk")
    return chatbot, v1, v2


def test_the_history_lists_both_saves_with_links(admin_client, edited_twice):
    chatbot, v1, v2 = edited_twice
    html = page(admin_client, chatbot_url(chatbot, "history/"))
    assert f"history/compare/?old={v1.pk}&amp;new={v2.pk}" in html
    assert f"history/{v1.pk}/revert/" in html
    assert "Changed Greeting. Added flow “history-shop/product”." in html  # nothing else changed


def test_compare_shows_old_and_new_values_of_the_chatbot_and_its_flows(admin_client, edited_twice):
    chatbot, v1, v2 = edited_twice

    response = admin_client.get(chatbot_url(chatbot, f"history/compare/?old={v1.pk}&new={v2.pk}"))

    sections = {s.title: s.rows for s in response.context["sections"]}
    [bot] = sections["Chatbot"]
    assert [(c.label, c.old, c.new) for c in bot.fields] == [("Greeting", "Hello v1", "Hello v2")]
    removed = {c.label: c.old for c in sections["Flows"][0].fields}
    assert removed["Routing key"] == "order"
    assert {(r.name, r.status) for r in sections["Flows"]} == {
        ("orders", "removed"),
        ("product", "added"),
    }
    html = response.content.decode()
    assert "Hello v1" in html and "Hello v2" in html


def test_revert_restores_deleted_flows_removes_added_ones_and_refreshes_the_cache(
    admin_client, edited_twice
):
    chatbot, v1, _ = edited_twice
    assert {f["name"] for f in chatbot_config_get(public_id="history-shop")["flows"]} == {
        "main",
        "product",
    }

    response = admin_client.post(chatbot_url(chatbot, f"history/{v1.pk}/revert/"))

    assert response.status_code == 302
    assert "Reverted" in messages_of(response)[-1]
    chatbot.refresh_from_db()
    assert chatbot.greeting == "Hello v1"
    assert set(chatbot.flows.values_list("name", "routing_key")) == {
        ("main", ""),
        ("orders", "order"),
    }
    config = chatbot_config_get(public_id="history-shop")
    assert config["greeting"] == "Hello v1"
    assert {f["name"] for f in config["flows"]} == {"main", "orders"}
    # The revert is itself a version, so it can be undone the same way.
    assert Version.objects.get_for_object(chatbot).count() == 3


def test_reversions_own_revision_form_reverts_too(admin_client, edited_twice):
    chatbot, v1, _ = edited_twice
    url = chatbot_url(chatbot, f"history/{v1.pk}/")
    data = form_data(admin_client.get(url))
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["errors"]
    assert set(chatbot.flows.values_list("name", flat=True)) == {"main", "orders"}
    assert {f["name"] for f in chatbot_config_get(public_id="history-shop")["flows"]} == {
        "main",
        "orders",
    }


def test_revert_refuses_in_words_when_an_endpoint_was_deleted_since(
    admin_client, make_chatbot, make_endpoint
):
    chatbot = make_chatbot()
    old_endpoint = chatbot.flows.get().endpoint
    new_endpoint = make_endpoint(name="replacement")
    save_in_admin(admin_client, chatbot, lambda d: d.update(greeting="v1"))

    def switch(data):
        data[f"{row_of(data, 'main')}-endpoint"] = str(new_endpoint.pk)

    save_in_admin(admin_client, chatbot, switch)
    old_endpoint.delete()
    v1 = Version.objects.get_for_object(chatbot).order_by("pk").first()

    response = admin_client.post(chatbot_url(chatbot, f"history/{v1.pk}/revert/"))

    assert response.status_code == 302
    assert "has been deleted since" in messages_of(response)[-1]
    assert chatbot.flows.get().endpoint == new_endpoint


def test_a_knowledge_base_saved_on_its_own_page_is_recorded_in_the_chatbot_history(
    admin_client, make_chatbot
):
    chatbot = make_chatbot()
    kb = KnowledgeBase.objects.create(chatbot=chatbot, name="faq")
    url = f"/admin/chatbots/knowledgebase/{kb.pk}/change/"
    data = form_data(admin_client.get(url))
    data["namespace"] = "faq-2026"

    assert admin_client.post(url, data).status_code == 302

    [version] = Version.objects.get_for_object(chatbot)
    assert version.revision.get_comment() == "Knowledge base “faq”: Changed Namespace."
    assert version.field_dict["public_id"] == chatbot.public_id


def test_a_chatbot_created_outside_the_admin_has_a_sensible_history_page(
    admin_client, make_chatbot
):
    chatbot = make_chatbot()
    assert "No saved versions yet" in page(admin_client, chatbot_url(chatbot, "history/"))


def test_compare_with_an_unknown_version_is_not_found(admin_client, make_chatbot, edited_twice):
    _, v1, _ = edited_twice
    other = make_chatbot()
    response = admin_client.get(chatbot_url(other, f"history/compare/?old={v1.pk}"))
    assert response.status_code == 404


# --- Access and index -------------------------------------------------------------------------


def test_non_staff_are_sent_to_the_login_page_for_every_added_url(
    client, django_user_model, edited_twice, make_endpoint, make_chatbot
):
    chatbot, v1, v2 = edited_twice
    endpoint = make_endpoint()
    kb = KnowledgeBase.objects.create(chatbot=chatbot, name="kb")
    client.force_login(django_user_model.objects.create_user("customer", password="x"))
    urls = [
        chatbot_url(chatbot, "history/"),
        chatbot_url(chatbot, f"history/compare/?old={v1.pk}&new={v2.pk}"),
        chatbot_url(chatbot, f"history/{v1.pk}/revert/"),
        endpoint_url(endpoint, "test-connection/"),
        f"/admin/chatbots/knowledgebase/{kb.pk}/test-connection/",
        f"/admin/chatbots/knowledgebase/{kb.pk}/history/compare/?old=1",
    ]
    for url in urls:
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith("/admin/login/"), url
    assert chatbot.flows.filter(name="product").exists()  # the revert POST did nothing


def test_regenerating_the_widget_key_replaces_it_and_refreshes_the_cache(
    admin_client, make_chatbot
):
    chatbot = make_chatbot()
    old_key = chatbot_config_get(public_id=chatbot.public_id)["widget_key"]

    admin_client.post(
        "/admin/chatbots/chatbot/",
        {"action": "regenerate_widget_key", "_selected_action": [chatbot.pk]},
    )

    chatbot.refresh_from_db()
    assert chatbot.widget_key != old_key
    assert chatbot_config_get(public_id=chatbot.public_id)["widget_key"] == chatbot.widget_key


def test_every_page_of_the_other_admins_renders(
    admin_client, make_chatbot, make_kb, make_entry, make_endpoint
):
    chatbot = make_chatbot()
    kb = make_kb(chatbot=chatbot)
    entry = make_entry(knowledge_base=kb, title="Returns", text="Within 30 days.")
    template = PromptTemplate.objects.create(
        shop=shop_for_tests(), name="shop", text="You help {{shop_name}}."
    )
    TemplateAssignment.objects.create(
        chatbot=chatbot, flow=chatbot.flows.get(), template=template, overrides={"shop_name": "X"}
    )
    endpoint = chatbot.flows.get().endpoint
    for url in (
        "/admin/chatbots/aiendpoint/",
        f"/admin/chatbots/aiendpoint/{endpoint.pk}/change/",
        "/admin/chatbots/knowledgebase/",
        "/admin/chatbots/knowledgebase/add/",
        f"/admin/chatbots/knowledgebase/{kb.pk}/change/",
        "/admin/chatbots/knowledgeentry/?q=30+days",
        f"/admin/chatbots/knowledgeentry/?knowledge_base__chatbot__id__exact={chatbot.pk}",
        f"/admin/chatbots/knowledgeentry/{entry.pk}/change/",
        "/admin/chatbots/prompttemplate/",
        f"/admin/chatbots/prompttemplate/{template.pk}/change/",
        chatbot_url(chatbot),
    ):
        page(admin_client, url)
    template_page = page(admin_client, f"/admin/chatbots/prompttemplate/{template.pk}/change/")
    assert chatbot_url(chatbot) in template_page  # "used by" links to the chatbot
    assert "Returns" in page(admin_client, "/admin/chatbots/knowledgeentry/?q=30+days")


def test_the_index_lists_chatbot_models_in_working_order(admin_client):
    response = admin_client.get("/admin/")
    [app] = [a for a in response.context["app_list"] if a["app_label"] == "chatbots"]
    assert [m["object_name"] for m in app["models"]] == [
        "Chatbot",
        "AIEndpoint",
        "PromptTemplate",
        "KnowledgeBase",
        "KnowledgeEntry",
    ]
