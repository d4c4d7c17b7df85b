"""Template overrides: which names staff may override, and what the admin says about the rest."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from chatbots.models import TURN_VARIABLES, PromptTemplate, TemplateAssignment
from chatbots.services import prompt_render, prompt_values
from chatbots.tests.factories import shop_for_tests

pytestmark = pytest.mark.django_db

TEXT = "{{shop_name}} in {{language}}, {{tone}}: {{question}} / {{context}}"


@pytest.fixture
def assignment(make_chatbot):
    template = PromptTemplate.objects.create(
        shop=shop_for_tests(), name="voice", text=TEXT, variables={"tone": "calm"}
    )

    def make(overrides: dict) -> TemplateAssignment:
        bot = make_chatbot()
        return TemplateAssignment(
            chatbot=bot, flow=bot.flows.get(), template=template, overrides=overrides
        )

    return make


def test_overriding_a_built_in_such_as_shop_name_is_accepted(assignment):
    assignment({"shop_name": "Vinhuset Aarhus", "language": "Danish", "tone": "warm"}).full_clean()


def test_overriding_the_message_s_own_data_is_refused_with_a_sentence_naming_each_variable(
    assignment,
):
    with pytest.raises(ValidationError) as refused:
        assignment({"question": "x", "context": "y", "tone": "warm"}).full_clean()

    message = refused.value.message_dict["overrides"][0]
    assert message == (
        "These variables cannot be overridden because each message fills them in: "
        "context (the passages and facts found for it); question (the customer's message). "
        "Remove them from the overrides."
    )


def test_every_turn_variable_is_refused_even_if_the_template_does_not_use_it(assignment):
    for name in TURN_VARIABLES:
        with pytest.raises(ValidationError, match=name):
            assignment({name: "x"}).full_clean()


def test_the_values_rank_defaults_then_built_ins_then_overrides_then_the_message():
    values = prompt_values(
        defaults={"tone": "calm", "shop_name": "Default shop", "language": "xx"},
        bot={"shop_name": "Vinhuset", "language": "da"},
        overrides={"shop_name": "Vinhuset Aarhus", "question": "overridden?"},
        turn={"question": "Do you ship?", "context": "We ship daily."},
    )

    assert prompt_render(text=TEXT, variables=values) == (
        "Vinhuset Aarhus in da, calm: Do you ship? / We ship daily."
    )
