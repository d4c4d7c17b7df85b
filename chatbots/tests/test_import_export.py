"""The legacy chatbot_settings import and the chatbot-config JSON export/import round trip."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from chatbots.models import (
    AIEndpoint,
    Chatbot,
    Flow,
    KnowledgeBase,
    KnowledgeEntry,
    PromptTemplate,
    TemplateAssignment,
    TextRule,
)
from chatbots.tests.factories import TEST_SHOP_SLUG, shop_for_tests
from chatbots.transfer import LEGACY_ENDPOINT_NAME, PLACEHOLDER_CHATFLOW_ID

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY_CSV = FIXTURES / "chatbot_settings.csv"
LEGACY_JSON = FIXTURES / "chatbot_settings.json"
VINHUSET_KEY = "pcsk_test_vinhuset_8Jd2kQ0pLx7Rv4"
HEADER = (
    "chatbot_id,flow2_key,flow3_key,flow4_key,apiflow_key,metadata_key,metadata2_key,"
    "pinecone_api_key,knowledgebase_index_endpoint,flow2_knowledgebase_index,"
    "flow3_knowledgebase_index,flow4_knowledgebase_index,apiflow_knowledgebase_index"
)


def legacy_keys() -> list[str]:
    with LEGACY_CSV.open(newline="") as handle:
        return [
            row["pinecone_api_key"] for row in csv.DictReader(handle) if row["pinecone_api_key"]
        ]


def with_shop(args: tuple[str, ...]) -> tuple[str, ...]:
    """Imports write into the factories' shop unless the test names another."""
    if args[0].startswith("import") and not any(a.startswith("--shop") for a in args):
        shop_for_tests()
        return (*args, "--shop", TEST_SHOP_SLUG)
    return args


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*with_shop(args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args: str) -> tuple[str, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command(*with_shop(args), stdout=out, stderr=err)
    return str(failure.value), out.getvalue(), err.getvalue()


def write_csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "settings.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def updated_at_snapshot() -> dict[str, list]:
    return {
        model.__name__: list(model.objects.order_by("pk").values_list("pk", "updated_at"))
        for model in (Chatbot, Flow, KnowledgeBase, AIEndpoint)
    }


# --- legacy import ------------------------------------------------------------------------


def test_legacy_csv_import_creates_the_normalized_rows():
    out, _ = run("import_chatbot_settings", str(LEGACY_CSV))

    assert Chatbot.objects.count() == 19
    vinhuset = Chatbot.objects.get(public_id="vinhuset")
    assert (vinhuset.name, vinhuset.language) == ("vinhuset", "da")
    flows = {
        flow.name: flow for flow in vinhuset.flows.select_related("endpoint", "knowledge_base")
    }
    assert set(flows) == {"main", "flow2", "flow3", "flow4", "apiflow", "metadata"}
    assert flows["main"].is_main and flows["main"].endpoint.kind == AIEndpoint.Kind.BUILTIN
    assert {name: flows[name].routing_key for name in ("flow2", "flow3", "flow4", "apiflow")} == {
        "flow2": "",
        "flow3": "product",
        "flow4": "productfilter",
        "apiflow": "order",
    }
    assert flows["metadata"].role == Flow.Role.EXTRACTOR
    assert flows["metadata"].applies_to == "productfilter"
    assert flows["metadata"].routing_key == ""
    assert {
        name: flows[name].knowledge_base.index_name for name in ("flow2", "flow3", "apiflow")
    } == {
        "flow2": "vinhuset-alt",
        "flow3": "vinhuset-pro",
        "apiflow": "vinhuset-alt",
    }
    assert flows["flow4"].knowledge_base == flows["flow3"].knowledge_base
    # Legacy flows have no chatflow id: they wait, disabled, on the placeholder endpoint.
    for name in ("flow2", "flow3", "flow4", "apiflow", "metadata"):
        assert flows[name].enabled is False
        assert flows[name].target == PLACEHOLDER_CHATFLOW_ID
        assert flows[name].endpoint.name == LEGACY_ENDPOINT_NAME
    assert "flow flow3: created (routing key product, knowledge base vinhuset-pro)" in out
    assert "disabled: needs a chatflow id" in out
    assert "flows were created disabled with the placeholder chatflow id" in out

    kbs = list(vinhuset.knowledge_bases.order_by("name"))
    assert [(kb.name, kb.kind, kb.index_name) for kb in kbs] == [
        ("vinhuset-alt", "pinecone", "vinhuset-alt"),
        ("vinhuset-pro", "pinecone", "vinhuset-pro"),
    ]
    assert all(kb.api_key.reveal() == VINHUSET_KEY for kb in kbs)

    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM chatbots_knowledgebase WHERE api_key <> ''")
        stored = [row[0] for row in cursor.fetchall()]
    assert stored and all(value.startswith("fernet:") for value in stored)
    for key in legacy_keys():
        assert not any(key in value for value in stored)

    # A bot with only a chatbot_id still gets a main flow and nothing else.
    bolig = Chatbot.objects.get(public_id="boligmagasinet")
    assert list(bolig.flows.values_list("name", "is_main")) == [("main", True)]
    assert "vinhuset: created" in out and "pinecone_api_key: set" in out


def test_legacy_json_rows_import_the_same_as_the_csv():
    _out, _ = run("import_chatbot_settings", str(LEGACY_JSON))
    assert Chatbot.objects.count() == 19
    assert Flow.objects.get(chatbot__public_id="vinhuset", name="apiflow").routing_key == "order"

    again, _ = run("import_chatbot_settings", str(LEGACY_CSV))
    assert "no changes" in again


def test_reimporting_the_same_file_changes_nothing():
    run("import_chatbot_settings", str(LEGACY_CSV))
    before = updated_at_snapshot()

    out, _ = run("import_chatbot_settings", str(LEGACY_CSV))

    assert out.splitlines()[1:] == ["no changes (19 chatbots already match the file)"]
    assert updated_at_snapshot() == before


def test_legacy_import_reports_skipped_columns_once(tmp_path):
    path = write_csv(
        tmp_path,
        "7,shop-a,," + "product" + "," * 10 + ",blue",
        "8,shop-b,,,,order" + "," * 8 + ",green",
        header=f"id,{HEADER},favourite_colour",
    )
    out, _ = run("import_chatbot_settings", str(path))
    assert out.count("Skipping columns") == 1
    assert "Skipping columns that have no place in the new model: id, favourite_colour" in out
    assert Chatbot.objects.count() == 2


def test_bad_rows_are_reported_with_their_line_and_nothing_is_imported(tmp_path):
    path = write_csv(
        tmp_path,
        "good-shop,,product,,order,,,,,,,,",
        "Bad Shop!,,,,,,,,,,,,",
        "shop-c,,pro duct,,,,,,,,,,",
        "shop-d,,order,,order,,,,,,,,",
        ",,product,,,,,,,,,,",
        "twice,,,,,,,,,,,,",
        "twice,,product,,,,,,,,,,",
        "shop-e,,,,,,,,Not_An_Index,,,,",
    )
    message, _, err = run_failing("import_chatbot_settings", str(path))

    assert "7 bad rows; nothing was imported" in message
    assert "line 3 (chatbot Bad Shop!): chatbot_id “Bad Shop!” is not a valid id" in err
    assert "line 4 (chatbot shop-c): flow3_key “pro duct” is not a routing key" in err
    assert (
        "line 5 (chatbot shop-d): flow3_key and apiflow_key all give the routing key “order”" in err
    )
    assert "line 6: chatbot_id is empty" in err
    assert (
        "line 7 (chatbot twice): chatbot_id “twice” appears more than once (line 7, line 8)" in err
    )
    assert "line 8 (chatbot twice)" in err
    assert "line 9 (chatbot shop-e): knowledgebase_index_endpoint “Not_An_Index” is not a" in err
    assert "line 2" not in err
    assert Chatbot.objects.count() == 0
    assert AIEndpoint.objects.count() == 0


def test_skip_bad_rows_imports_the_good_ones(tmp_path):
    path = write_csv(
        tmp_path,
        "good-shop,,product,,order,,,,,,,,",
        "Bad Shop!,,,,,,,,,,,,",
        "other-shop,,,,order,order,,,,,,,",
    )
    out, err = run("import_chatbot_settings", str(path), "--skip-bad-rows")
    assert "line 3 (chatbot Bad Shop!)" in err
    assert "Skipped 1 bad rows" in out
    assert sorted(Chatbot.objects.values_list("public_id", flat=True)) == [
        "good-shop",
        "other-shop",
    ]


def test_json_bad_rows_are_numbered_by_row(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps([{"chatbot_id": "fine"}, {"chatbot_id": 12}, "not a row", {"flow2_key": "x"}])
    )
    _, _, err = run_failing("import_chatbot_settings", str(path))
    assert "row 2: chatbot_id must be text, not int" in err
    assert "row 3: is not an object" in err
    assert "row 4: chatbot_id is empty" in err
    assert Chatbot.objects.count() == 0


def test_a_routing_key_held_by_another_flow_is_rejected(tmp_path, make_chatbot, make_flow):
    chatbot = make_chatbot(public_id="shop")
    make_flow(chatbot=chatbot, name="orders", routing_key="order")
    path = write_csv(tmp_path, "shop,,,,order,,,,,,,,")
    _, _, err = run_failing("import_chatbot_settings", str(path))
    assert "apiflow_key gives the routing key “order” to flow “apiflow”" in err
    assert "flow “orders” already has it" in err
    assert not chatbot.flows.filter(name="apiflow").exists()


def test_conflicts_with_the_stored_configuration_are_bad_rows(tmp_path, make_chatbot, make_flow):
    chatbot = make_chatbot(public_id="shop")
    make_flow(chatbot=chatbot, name="flow2", role=Flow.Role.ROUTER)
    path = write_csv(
        tmp_path,
        "shop,returns,,,,,,,,,,,",
        "new-shop,,,,,,,pcsk_test_without_index_77,,,,,",
    )
    _, _, err = run_failing("import_chatbot_settings", str(path))
    assert (
        "line 2 (chatbot shop): flow2_key needs flow “flow2” to have the role answer, but this "
        "chatbot's flow “flow2” has the role router"
    ) in err
    assert "line 3 (chatbot new-shop): pinecone_api_key is set but no" in err
    assert "pcsk_test_without_index_77" not in err
    assert not Chatbot.objects.filter(public_id="new-shop").exists()


def test_a_row_the_models_refuse_is_reported_and_rolled_back(
    tmp_path, make_chatbot, make_flow, make_endpoint
):
    flowise = make_endpoint(kind=AIEndpoint.Kind.FLOWISE, base_url="https://flowise.example")
    broken = make_chatbot(public_id="broken")
    make_flow(chatbot=broken, name="flow3", endpoint=flowise, target="not-a-uuid")
    path = write_csv(tmp_path, "fine,,product,,,,,,,,,,", "broken,,product,,,,,,,,,,")

    _, _, err = run_failing("import_chatbot_settings", str(path))
    assert "line 3 (chatbot broken): target: A Flowise flow needs its chatflow id" in err
    assert not Chatbot.objects.filter(public_id="fine").exists()

    _, err = run("import_chatbot_settings", str(path), "--skip-bad-rows")
    assert Chatbot.objects.filter(public_id="fine").exists()
    assert "line 3 (chatbot broken)" in err
    assert broken.flows.get(name="flow3").routing_key == ""


def test_a_multi_line_value_keeps_line_numbers_right(tmp_path):
    path = write_csv(
        tmp_path,
        "shop-a,,product,,,,,,,,,,",
        'shop-b,,"two\nlines",,,,,,,,,,',
        "Shop C!,,,,,,,,,,,,",
    )
    _, _, err = run_failing("import_chatbot_settings", str(path))
    assert "line 3 (chatbot shop-b): flow3_key “two\\nlines” is not a routing key" in err
    assert "line 5 (chatbot Shop C!)" in err


def test_an_extractor_keeps_a_label_no_answer_flow_has(tmp_path):
    path = write_csv(tmp_path, "shop,,product,,,size,,,,,,,")
    out, _ = run("import_chatbot_settings", str(path))
    extractor = Flow.objects.get(chatbot__public_id="shop", name="metadata")
    assert (extractor.role, extractor.applies_to, extractor.enabled) == ("extractor", "size", False)
    assert (
        "to do: flow metadata applies to routing key size, but no answer flow has that key" in out
    )


def test_empty_values_never_clear_what_is_stored(tmp_path):
    run("import_chatbot_settings", str(LEGACY_CSV))
    before = updated_at_snapshot()
    path = write_csv(tmp_path, "vinhuset,,,,,,,,,,,,", "dilling,,NULL,,,,,,,,,,")
    out, _ = run("import_chatbot_settings", str(path))
    assert "no changes" in out
    assert updated_at_snapshot() == before
    flow = Flow.objects.get(chatbot__public_id="vinhuset", name="flow3")
    assert flow.routing_key == "product"
    kb = KnowledgeBase.objects.get(chatbot__public_id="vinhuset", name="vinhuset-alt")
    assert kb.api_key.reveal() == VINHUSET_KEY


def test_changes_are_reported_per_chatbot_without_secret_values(tmp_path):
    run("import_chatbot_settings", str(LEGACY_CSV))
    new_key = "pcsk_test_rotated_vinhuset_Zz9Yy8"
    path = write_csv(
        tmp_path,
        f"vinhuset,,productfilter,product,,,,{new_key},,,,,",
        f"dilling,,,,,,,{legacy_keys()[1]},,,,,",
    )
    out, _ = run("import_chatbot_settings", str(path))

    assert "vinhuset: updated" in out
    assert "flow flow3: routing key product → productfilter" in out
    assert "flow flow4: routing key productfilter → product" in out
    assert "pinecone_api_key: changed" in out
    assert "dilling" not in out  # the same key again is no change
    assert new_key not in out and VINHUSET_KEY not in out
    assert Flow.objects.get(chatbot__public_id="vinhuset", name="flow4").routing_key == "product"
    for kb in KnowledgeBase.objects.filter(chatbot__public_id="vinhuset"):
        assert kb.api_key.reveal() == new_key


def test_an_existing_bot_keeps_its_configured_flows(
    tmp_path, make_chatbot, make_flow, make_endpoint
):
    flowise = make_endpoint(kind=AIEndpoint.Kind.FLOWISE, base_url="https://flowise.example")
    chatbot = make_chatbot(public_id="shop", with_main_flow=False)
    main = make_flow(chatbot=chatbot, name="main", is_main=True, endpoint=flowise)
    path = write_csv(tmp_path, "shop,,product,,,,,pcsk_test_shop_key_123,shop-main,,,,")
    out, _ = run("import_chatbot_settings", str(path))

    main.refresh_from_db()
    assert main.knowledge_base.index_name == "shop-main"
    flow3 = chatbot.flows.get(name="flow3")
    # New flows join the bot's own Flowise server rather than the placeholder endpoint.
    assert flow3.endpoint == flowise and flow3.enabled is False
    assert not AIEndpoint.objects.filter(name=LEGACY_ENDPOINT_NAME).exists()
    assert "flow main: knowledge base → shop-main" in out


def test_dry_run_saves_nothing():
    out, _ = run("import_chatbot_settings", str(LEGACY_CSV), "--dry-run")
    assert "19 chatbots created" in out
    assert "Dry run: nothing was saved." in out
    assert Chatbot.objects.count() == 0
    assert AIEndpoint.objects.count() == 0


def test_missing_chatbot_id_column_is_refused(tmp_path):
    path = write_csv(tmp_path, "x,y", header="name,flow2_key")
    message, _, _ = run_failing("import_chatbot_settings", str(path))
    assert "no chatbot_id column" in message


# --- chatbot-config export / import -------------------------------------------------------

ENDPOINT_KEY = "flowise-key-export-4f8a9c2e7d"
OPENAI_KEY = "sk-test-openai-export-1a2b3c4d"
PINECONE_KEY = "pcsk_export_secret_998877"


@pytest.fixture
def configured(make_chatbot, make_endpoint, make_flow, make_kb, make_entry):
    flowise = make_endpoint(
        name="Flowise prod",
        kind=AIEndpoint.Kind.FLOWISE,
        base_url="https://flowise.example",
        api_key=ENDPOINT_KEY,
    )
    openai = make_endpoint(
        name="OpenAI",
        kind=AIEndpoint.Kind.OPENAI,
        base_url="https://api.openai.example/v1",
        api_key=OPENAI_KEY,
        read_timeout=30.0,
    )
    builtin = make_endpoint(name="Builtin", kind=AIEndpoint.Kind.BUILTIN)
    make_endpoint(name="Unused")  # not referenced: stays out of the export
    embeddings = make_endpoint(  # referenced only by a knowledge base: exported with it
        name="Embeddings",
        kind=AIEndpoint.Kind.OPENAI,
        base_url="https://embeddings.example/v1",
        api_key=OPENAI_KEY,
    )
    template = PromptTemplate.objects.create(
        shop=shop_for_tests(),
        name="answer-da",
        text="Du er {{shop_name}}. Svar {{tone}}. {{context}}",
        variables={"tone": "venligt"},
    )
    chatbot = make_chatbot(
        public_id="vinhuset",
        name="Vinhuset",
        language="da",
        with_main_flow=False,
        greeting="Hej!",
        allowed_origins=["https://www.vinhuset.dk"],
        opening_hours={"mon": [["09:00", "16:00"]]},
        topics=["levering", "retur"],
        routing_mode=Chatbot.RoutingMode.PARALLEL,
        message_rate_limit=30,
    )
    faq = make_kb(
        chatbot=chatbot,
        name="faq",
        embedding_endpoint=embeddings,
        embedding_model="text-embedding-3-small",
        chunk_size=600,
        chunk_overlap=80,
    )
    make_entry(knowledge_base=faq, title="Levering", text="1-3 dage.", tags=["fragt"])
    make_entry(knowledge_base=faq, title="Retur", text="30 dage.")
    pinecone = make_kb(
        chatbot=chatbot,
        name="vinhuset-pro",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="vinhuset-pro",
        host="vinhuset-pro-abc.svc.pinecone.io",
        namespace="da",
        api_key=PINECONE_KEY,
    )
    make_flow(chatbot=chatbot, name="main", is_main=True, endpoint=builtin, knowledge_base=faq)
    product = make_flow(
        chatbot=chatbot,
        name="flow3",
        routing_key="product",
        endpoint=flowise,
        knowledge_base=pinecone,
        top_k=8,
    )
    make_flow(chatbot=chatbot, name="router", role=Flow.Role.ROUTER, endpoint=openai)
    make_flow(
        chatbot=chatbot,
        name="metadata",
        role=Flow.Role.EXTRACTOR,
        applies_to="product",
        endpoint=openai,
        enabled=False,
    )
    TemplateAssignment.objects.create(
        chatbot=chatbot, flow=product, template=template, overrides={"shop_name": "Vinhuset"}
    )
    TextRule.objects.create(chatbot=chatbot, kind=TextRule.Kind.EXCLAMATION, position=0)
    TextRule.objects.create(chatbot=chatbot, find="vin", replace="Vin", position=1)
    make_chatbot(public_id="dilling", name="Dilling")
    return chatbot


def export(*args: str) -> dict:
    out, _ = run("export_chatbots", *args)
    return json.loads(out)


def without_timestamp(document: dict) -> dict:
    return {key: value for key, value in document.items() if key != "exported_at"}


def empty_database() -> None:
    Chatbot.objects.all().delete()
    AIEndpoint.objects.all().delete()
    PromptTemplate.objects.all().delete()


def test_export_import_round_trip_into_an_empty_database(configured, tmp_path):
    path = tmp_path / "export.json"
    run("export_chatbots", "--include-secrets", "-o", str(path))
    first = json.loads(path.read_text())
    assert first["format"] == "chatbot-config" and first["version"] == 1
    assert [c["public_id"] for c in first["chatbots"]] == ["dilling", "vinhuset"]
    assert "Unused" not in [e["name"] for e in first["endpoints"]]
    # Natural keys only: no database ids anywhere in the document.
    assert not {"id", "pk", "chatbot_id", "endpoint_id"} & set(first["chatbots"][1]["flows"][0])
    assert first["chatbots"][1]["flows"][0]["endpoint"] == "Flowise prod"

    empty_database()
    assert Chatbot.objects.count() == 0
    out, _ = run("import_chatbots", str(path))
    assert "chatbot vinhuset: created" in out

    assert without_timestamp(export("--include-secrets")) == without_timestamp(first)
    flow = Flow.objects.get(chatbot__public_id="vinhuset", name="flow3")
    assert flow.endpoint.api_key.reveal() == ENDPOINT_KEY
    assert flow.template_assignment.overrides == {"shop_name": "Vinhuset"}
    assert KnowledgeEntry.objects.filter(knowledge_base__name="faq").count() == 2
    faq = KnowledgeBase.objects.get(name="faq")
    assert faq.embedding_endpoint.name == "Embeddings"
    assert (faq.embedding_model, faq.chunk_size, faq.chunk_overlap) == (
        "text-embedding-3-small",
        600,
        80,
    )


def test_importing_the_same_document_twice_changes_nothing(configured, tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export("--include-secrets")))
    empty_database()
    run("import_chatbots", str(path))
    before = updated_at_snapshot()

    out, _ = run("import_chatbots", str(path))

    assert out.strip() == "no changes"
    assert updated_at_snapshot() == before


def test_import_updates_by_natural_key_and_reports_changes(configured, tmp_path):
    document = export()
    bot = document["chatbots"][1]
    bot["greeting"] = "Velkommen!"
    flows = {flow["name"]: flow for flow in bot["flows"]}
    flows["flow3"]["routing_key"] = "wine"
    bot["flows"] = [flow for flow in bot["flows"] if flow["name"] != "router"]
    bot["text_rules"] = bot["text_rules"][:1]
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(document))

    out, _ = run("import_chatbots", str(path))

    assert "chatbot vinhuset: updated greeting" in out
    assert "chatbot vinhuset: flow flow3: updated routing_key" in out
    assert "chatbot vinhuset: flow router removed" in out
    assert "chatbot vinhuset: text rules replaced (2 → 1)" in out
    configured.refresh_from_db()
    assert configured.greeting == "Velkommen!"
    assert configured.flows.get(name="flow3").routing_key == "wine"


def test_import_can_swap_routing_keys_and_the_main_flow(configured, tmp_path):
    document = export()
    flows = {flow["name"]: flow for flow in document["chatbots"][1]["flows"]}
    flows["main"]["is_main"], flows["flow3"]["is_main"] = False, True
    flows["flow3"]["routing_key"], flows["main"]["routing_key"] = "", "product"
    flows["main"]["knowledge_base"] = "vinhuset-pro"
    flows["main"]["endpoint"] = "Flowise prod"
    flows["main"]["target"] = "5f0c6f1e-1111-4b4b-9c9c-222233334444"
    path = tmp_path / "swapped.json"
    path.write_text(json.dumps(document))

    run("import_chatbots", str(path))

    assert configured.flows.get(is_main=True).name == "flow3"
    assert configured.flows.get(routing_key="product").name == "main"


def test_a_marker_never_clears_a_stored_secret(configured, tmp_path):
    document = export()
    endpoints = {endpoint["name"]: endpoint for endpoint in document["endpoints"]}
    assert endpoints["Flowise prod"]["api_key"] == {"set": True}
    assert endpoints["Builtin"]["api_key"] == {"set": False}
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document))

    out, _ = run("import_chatbots", str(path))

    assert out.strip() == "no changes"
    assert AIEndpoint.objects.get(name="Flowise prod").api_key.reveal() == ENDPOINT_KEY
    kb = KnowledgeBase.objects.get(name="vinhuset-pro")
    assert kb.api_key.reveal() == PINECONE_KEY


def test_import_without_secrets_says_which_keys_to_set(configured, tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export()))
    empty_database()
    out, _ = run("import_chatbots", str(path))
    assert "to do: endpoint Flowise prod: api_key was exported without --include-secrets" in out
    assert not AIEndpoint.objects.get(name="Flowise prod").api_key


def test_an_invalid_document_imports_nothing(configured, tmp_path):
    document = export()
    empty_database()
    document["endpoints"].append({"name": "New endpoint", "kind": "builtin"})
    flows = {flow["name"]: flow for flow in document["chatbots"][1]["flows"]}
    flows["flow3"]["target"] = "not-a-chatflow-id"
    flows["main"]["endpoint"] = "Nowhere"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))

    message, _, _ = run_failing("import_chatbots", str(path))

    assert "chatbots[vinhuset].flows[flow3].target: A Flowise flow needs its chatflow id" in message
    assert "chatbots[vinhuset].flows[main].endpoint: no endpoint named “Nowhere”" in message
    assert AIEndpoint.objects.count() == 0
    assert Chatbot.objects.count() == 0


def test_import_dry_run_saves_nothing(configured, tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export("--include-secrets")))
    empty_database()
    out, _ = run("import_chatbots", str(path), "--dry-run")
    assert "chatbot vinhuset: created" in out and "Dry run" in out
    assert Chatbot.objects.count() == 0


def test_export_of_chosen_chatbots_only(configured):
    document = export("--chatbot", "dilling")
    assert [c["public_id"] for c in document["chatbots"]] == ["dilling"]
    assert "Flowise prod" not in [e["name"] for e in document["endpoints"]]
    message, _, _ = run_failing("export_chatbots", "--chatbot", "nope")
    assert "No chatbot with id nope" in message


def test_an_export_spanning_two_shops_is_refused_in_words(configured):
    from chatbots.tests.factories import create_chatbot, create_shop

    create_chatbot(public_id="other-shops-bot", shop=create_shop(slug="other-shop"))
    message, _, _ = run_failing("export_chatbots")
    assert "belong to several shops" in message and "--shop" in message
    document = export("--shop", "other-shop")
    assert [c["public_id"] for c in document["chatbots"]] == ["other-shops-bot"]


def test_secrets_stay_out_of_an_export_unless_asked_for(configured, tmp_path):
    plain, err = run("export_chatbots")
    for secret in (ENDPOINT_KEY, OPENAI_KEY, PINECONE_KEY):
        assert secret not in plain
    assert '"api_key": {\n        "set": true\n      }' in plain
    assert err == ""

    path = tmp_path / "with-secrets.json"
    _, err = run("export_chatbots", "--include-secrets", "-o", str(path))
    text = path.read_text()
    for secret in (ENDPOINT_KEY, OPENAI_KEY, PINECONE_KEY):
        assert secret in text
    assert "Warning: this export contains plaintext API keys" in err
    assert os.stat(path).st_mode & 0o077 == 0


def test_no_secret_reaches_logs_or_command_output(configured, tmp_path, caplog, capsys, settings):
    caplog.set_level(logging.DEBUG)
    secrets = [ENDPOINT_KEY, OPENAI_KEY, PINECONE_KEY, *legacy_keys()]
    outputs = []
    outputs += run("import_chatbot_settings", str(LEGACY_CSV))
    outputs += run("import_chatbot_settings", str(LEGACY_CSV))
    outputs += run("export_chatbots")
    path = tmp_path / "export.json"
    path.write_text(outputs[-2])
    outputs += run("import_chatbots", str(path))
    outputs += run("rotate_secrets")
    bad = write_csv(tmp_path, f"Bad Id,,,,,,,{VINHUSET_KEY},,,,,")
    outputs += run_failing("import_chatbot_settings", str(bad))

    captured = capsys.readouterr()
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in captured.out and secret not in captured.err
        assert not any(secret in output for output in outputs)
    assert "legacy import: chatbot bevco created" in caplog.text
