"""The admin's JSON boxes refuse what PostgreSQL cannot store: a \\u0000 or a lone \\ud800 escape
decodes to a NUL or an unpaired surrogate, which reached the database (or the re-rendered page)
as a 500. Now each is the field's form error, and nothing is saved."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models

from chatbots.models import PromptTemplate
from chatbots.tests.factories import shop_for_tests
from config.input_guard import validate_storable_json
from tests.html_form import form_data

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("escape", "problem"),
    [("\\u0000", "contains a NUL character"), ("\\ud800", "contains an unpaired surrogate")],
)
def test_a_json_box_with_an_unstorable_escape_is_a_form_error(admin_client, escape, problem):
    template = PromptTemplate.objects.create(
        shop=shop_for_tests(), name="t", text="Hi {{a}}", variables={"a": "b"}
    )
    url = f"/admin/chatbots/prompttemplate/{template.pk}/change/"
    data = form_data(admin_client.get(url).content.decode(), form_id="prompttemplate_form")
    data["variables"] = '{"a": "x' + escape + 'y"}'

    response = admin_client.post(url, data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["variables"]
    assert errors == [
        f"The value at a {problem}" + ("." if "NUL" in problem else " (not valid Unicode).")
    ]
    template.refresh_from_db()
    assert template.variables == {"a": "b"}


def test_every_json_field_of_every_model_and_admin_refuses_them():
    fields = [
        field
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, models.JSONField)
    ]
    assert len(fields) >= 20
    for field in fields:
        assert validate_storable_json in field.validators, field
    for model_admin in admin.site._registry.values():
        assert models.JSONField in model_admin.formfield_overrides, model_admin


def test_full_clean_refuses_a_nul_in_a_nested_key():
    template = PromptTemplate(shop=shop_for_tests(), name="n", text="x", variables={"a\x00": 1})
    with pytest.raises(ValidationError) as refused:
        template.full_clean()
    assert "variables" in refused.value.message_dict
