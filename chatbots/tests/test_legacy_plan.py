"""The plan step of the legacy import: which chatbots a file creates and which it updates,
decided before anything is written, and the rows it rejects against the database."""

from __future__ import annotations

import dataclasses

import pytest

from chatbots.models import Chatbot
from chatbots.tests.factories import create_chatbot, create_flow
from chatbots.transfer import LegacyRow, legacy_plan_build
from chatbots.transfer.legacy_checks import legacy_rows_check

pytestmark = pytest.mark.django_db


def plan_for(*rows: dict[str, str], skip_bad_rows: bool = False):
    legacy_rows = [LegacyRow(where=f"row {n}", data=data) for n, data in enumerate(rows, 1)]
    good, rejected = legacy_rows_check(legacy_rows)
    return legacy_plan_build(rows=good, rejected=rejected, skip_bad_rows=skip_bad_rows)


def test_the_plan_lists_new_chatbots_as_created_and_known_ones_as_updated():
    create_chatbot(public_id="known")
    plan = plan_for({"chatbot_id": "known", "flow2_key": "faq"}, {"chatbot_id": "fresh"})
    assert plan.creates == ("fresh",)
    assert plan.updates == ("known",)
    assert plan.rejected == ()
    assert plan.applies


def test_building_a_plan_writes_nothing():
    plan_for({"chatbot_id": "fresh", "flow2_key": "faq"})
    assert not Chatbot.objects.filter(public_id="fresh").exists()


def test_a_row_the_database_contradicts_is_rejected_and_stops_the_plan_unless_skipping():
    chatbot = create_chatbot(public_id="known")
    create_flow(chatbot=chatbot, name="flow2", role="extractor")
    rows = ({"chatbot_id": "known", "flow2_key": "faq"}, {"chatbot_id": "fresh"})

    plan = plan_for(*rows)
    assert [r.where for r in plan.rejected] == ["row 1"]
    assert "has the role extractor" in plan.rejected[0].reasons[0]
    assert plan.creates == ("fresh",)
    assert not plan.applies
    assert plan_for(*rows, skip_bad_rows=True).applies


def test_the_plan_cannot_be_changed_once_built():
    plan = plan_for({"chatbot_id": "fresh"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.skip_bad_rows = True  # type: ignore[misc]
