"""Secret inputs on every admin page that has one: what the page holds and what a post does.

The data posted is read from the page's HTML (tests/html_form.py), as a browser sends it.
"""

from __future__ import annotations

import pytest
from django import forms

from chatbots.forms import KEEP_STORED_SECRET, SecretFormField, SecretWidget
from chatbots.models import AIEndpoint, KnowledgeBase
from chatbots.secrets import SecretValue
from chatbots.tests.factories import create_chatbot
from tests.html_form import form_data

pytestmark = pytest.mark.django_db

KEY = "sk-secret-input-7a6b5c4d3e"


def objects_with_secrets() -> list[tuple[str, object, str]]:
    """(admin URL of the change page, object, secret field name) for every secret field."""
    from helpdesk.models import HelpdeskConnection
    from orders.models import OrderSource

    chatbot = create_chatbot()
    endpoint = AIEndpoint.objects.create(
        shop=chatbot.shop,
        name="OpenAI",
        kind="openai",
        base_url="https://api.example/v1",
        api_key=KEY,
    )
    kb = KnowledgeBase.objects.create(
        chatbot=chatbot, name="kb", kind="pinecone", index_name="kb", api_key=KEY
    )
    source = OrderSource.objects.create(
        chatbot=chatbot,
        name="Magento",
        kind="magento",
        base_url="https://shop.example",
        auth_method="oauth1",
        client_id="ck",
        client_secret=KEY,
        access_token=KEY + "-at",
        token_secret=KEY + "-ts",
    )
    helpdesk = HelpdeskConnection.objects.create(
        chatbot=chatbot, kind="freshdesk", domain="x.freshdesk.com", api_key=KEY
    )
    return [
        (f"/admin/chatbots/aiendpoint/{endpoint.pk}/change/", endpoint, "api_key"),
        (f"/admin/chatbots/knowledgebase/{kb.pk}/change/", kb, "api_key"),
        (f"/admin/orders/ordersource/{source.pk}/change/", source, "client_secret"),
        (f"/admin/orders/ordersource/{source.pk}/change/", source, "access_token"),
        (f"/admin/orders/ordersource/{source.pk}/change/", source, "token_secret"),
        (f"/admin/helpdesk/helpdeskconnection/{helpdesk.pk}/change/", helpdesk, "api_key"),
    ]


def stored(obj, field: str) -> str:
    obj.refresh_from_db()
    value = getattr(obj, field)
    return value.reveal() if value else ""


def test_every_secret_box_is_an_empty_password_input_saying_a_value_is_stored(admin_client):
    for url, obj, field in objects_with_secrets():
        html = admin_client.get(url).content.decode()
        data = form_data(html)
        assert data[field] == "", (url, field)
        assert f'type="password" name="{field}"' in html
        assert f'name="clear_{field}"' in html
        assert "stored; empty keeps it" in html
        obj.refresh_from_db()
        for leak in (KEY, "True", getattr(obj, field).stored):
            assert f'value="{leak}"' not in html and f">{leak}<" not in html, (url, leak)


def test_an_untouched_post_keeps_every_secret(admin_client):
    for url, obj, field in objects_with_secrets():
        before = stored(obj, field)
        response = admin_client.post(url, form_data(admin_client.get(url).content.decode()))
        errors = response.context and [str(e) for e in response.context["errors"]]
        assert response.status_code == 302, (url, errors)
        assert stored(obj, field) == before, (url, field)


def test_typing_replaces_and_the_remove_box_deletes(admin_client):
    for url, obj, field in objects_with_secrets():
        data = form_data(admin_client.get(url).content.decode())
        data[field] = "  replacement-key-0001  "
        assert admin_client.post(url, data).status_code == 302
        assert stored(obj, field) == "replacement-key-0001"

        data = form_data(admin_client.get(url).content.decode())
        data[f"clear_{field}"] = "on"
        response = admin_client.post(url, data)
        if response.status_code == 200:
            # A key the chosen kind needs (e.g. Magento OAuth 1): refused in words, kept.
            assert response.context["errors"], url
            assert stored(obj, field) == "replacement-key-0001"
        else:
            assert response.status_code == 302
            assert stored(obj, field) == ""


def test_a_key_with_line_breaks_or_a_pasted_document_is_refused_in_words():
    field = SecretFormField()
    for bad, words in (
        ("sk-one\nsk-two", "one line"),
        ("k\x00ey", "one line"),
        ("x" * 9000, "longer than any key"),
    ):
        with pytest.raises(forms.ValidationError, match=words):
            field.clean({"value": bad, "clear": False})
    assert field.clean({"value": "", "clear": False}) is KEEP_STORED_SECRET
    assert field.clean({"value": "", "clear": True}) == SecretValue()


def test_the_widget_never_renders_a_value_even_when_handed_one():
    html = SecretWidget().render("api_key", SecretValue.from_plaintext(KEY))
    assert KEY not in html and "True" not in html and 'value="' not in html
    assert "stored; empty keeps it" in html
    assert "not set" in SecretWidget().render("api_key", SecretValue())


def test_auth_headers_are_typed_one_per_line_into_an_empty_box_and_kept_when_untouched(
    admin_client,
):
    from tools.models import HttpTool

    tool = HttpTool(
        shop=create_chatbot().shop,
        name="stock",
        description="Stock of a product by its SKU.",
        url="http://127.0.0.1:9/stock/{sku}",
        parameters={"type": "object", "properties": {"sku": {"type": "string"}}},
        auth_headers=f"Authorization: Bearer {KEY}",
    )
    tool.full_clean()
    tool.save()
    url = f"/admin/tools/httptool/{tool.pk}/change/"

    html = admin_client.get(url).content.decode()
    # A box that takes line breaks (a password input cannot), empty, saying a value is stored.
    assert '<textarea name="auth_headers"' in html and "></textarea>" in html
    assert "stored; empty keeps it" in html and KEY not in html

    data = form_data(html)
    data["auth_headers"] = f"Authorization: Bearer {KEY}\r\nX-Shop-Id: 7\r\n"  # as browsers send
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    tool.refresh_from_db()
    assert tool.headers_text() == f"Authorization: Bearer {KEY}\nX-Shop-Id: 7"

    response = admin_client.post(url, form_data(admin_client.get(url).content.decode()))
    assert response.status_code == 302
    tool.refresh_from_db()
    assert tool.headers_text() == f"Authorization: Bearer {KEY}\nX-Shop-Id: 7"

    field = SecretFormField(multiline=True)
    with pytest.raises(forms.ValidationError, match="control characters"):
        field.clean({"value": "A: 1\x00", "clear": False})
