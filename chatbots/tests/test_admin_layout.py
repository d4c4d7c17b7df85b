"""The admin where staff look for things (Django's test client, posting what the page shows):
opening hours as a week table, the endpoint's default model chosen from what "Test connection"
fetched, flows as blocks, readable endpoint choices, lists that fit, an index that leads on.
Chromium checks of the same pages: tests/browser/test_admin_layout.py."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from chatbots.models import AIEndpoint, Chatbot, Flow
from chatbots.selectors import chatbot_config_get
from chatbots.widgets import same_hours
from conversations.models import Conversation
from monitoring.models import ErrorLog
from tests.fakes.openai import FakeOpenAI
from tests.html_form import form_data

pytestmark = pytest.mark.django_db

KEY = "sk-test-layout-7e6d5c4b3a"
OFFERED = ["gpt-4o-mini", "gpt-4o", "llama-3.1-8b-instruct"]
HOURS = {
    "mon": [["13:00", "17:00"], ["09:00", "12:00"]],  # stored out of order, on purpose
    "tue": [["09:00", "17:00"]],
    "sat": [],
}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def openai():
    with FakeOpenAI(api_key=KEY, models=OFFERED) as server:
        yield server


def change_url(obj) -> str:
    return f"/admin/chatbots/{obj._meta.model_name}/{obj.pk}/change/"


def page_data(client, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200
    return form_data(response.content.decode())


def save(client, url: str, data: dict):
    return client.post(url, data)


def errors_of(response) -> str:
    assert response.status_code == 200, "the form was expected to come back with errors"
    return " ".join(response.content.decode().split())


# --- Opening hours ---------------------------------------------------------------------------


def test_saving_the_week_table_untouched_stores_exactly_the_json_it_showed(
    admin_client, make_chatbot
):
    bot = make_chatbot(opening_hours=HOURS)
    data = page_data(admin_client, change_url(bot))
    assert data["opening_hours_mon_0_from"] == "13:00" and "opening_hours" in data

    assert save(admin_client, change_url(bot), data).status_code == 302
    bot.refresh_from_db()
    assert bot.opening_hours == HOURS
    assert list(bot.opening_hours["mon"]) == HOURS["mon"]  # order kept too
    assert set(bot.opening_hours) == {"mon", "tue", "sat"}  # no day added, "sat": [] kept


def test_hours_typed_into_the_table_are_stored_for_every_day(admin_client, make_chatbot):
    bot = make_chatbot(opening_hours=HOURS)
    data = page_data(admin_client, change_url(bot))
    data.pop("opening_hours_wed_closed")  # the box a person unticks to open Wednesday
    data.update(
        opening_hours_wed_0_from="08:30",
        opening_hours_wed_0_to="12:00",
        opening_hours_wed_1_from="12:30",
        opening_hours_wed_1_to="16:00:00",  # a browser given seconds sends them
        opening_hours_tue_closed="on",  # Tuesday closed, its old times still in the boxes
    )

    assert save(admin_client, change_url(bot), data).status_code == 302
    bot.refresh_from_db()
    assert bot.opening_hours == {
        "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
        "tue": [],
        "wed": [["08:30", "12:00"], ["12:30", "16:00"]],
        "thu": [],
        "fri": [],
        "sat": [],
        "sun": [],
    }


def test_emptying_every_day_stores_no_hours(admin_client, make_chatbot):
    bot = make_chatbot(opening_hours={"mon": [["09:00", "17:00"]]})
    data = page_data(admin_client, change_url(bot))
    data.update(opening_hours_mon_0_from="", opening_hours_mon_0_to="")

    assert save(admin_client, change_url(bot), data).status_code == 302
    bot.refresh_from_db()
    assert bot.opening_hours == {}


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (
            {"opening_hours_thu_0_from": "09:00"},
            "Thursday: enter both the opening and the closing time.",
        ),
        (
            {"opening_hours_thu_0_from": "17:00", "opening_hours_thu_0_to": "09:00"},
            "Thursday: 17:00–09:00 ends before it starts.",
        ),
        (
            {
                "opening_hours_thu_0_from": "09:00",
                "opening_hours_thu_0_to": "13:00",
                "opening_hours_thu_1_from": "12:00",
                "opening_hours_thu_1_to": "17:00",
            },
            "Thursday: the ranges ending 13:00 and 17:00 overlap.",
        ),
        (
            {"opening_hours_thu_0_from": "25:00", "opening_hours_thu_0_to": "26:00"},
            "Thursday: “25:00” is not a time such as 09:00.",
        ),
        (
            {
                "opening_hours_thu_closed": "on",
                "opening_hours_thu_0_from": "09:00",
                "opening_hours_thu_0_to": "17:00",
            },
            "Thursday is ticked “closed” but has new opening times",
        ),
    ],
)
def test_the_week_table_says_what_is_wrong_with_a_day(admin_client, make_chatbot, typed, message):
    bot = make_chatbot(opening_hours=HOURS)
    data = page_data(admin_client, change_url(bot))
    data.pop("opening_hours_thu_closed", None)
    data.update(typed)

    page = errors_of(save(admin_client, change_url(bot), data))
    assert message in page
    # What was typed is shown again, to be corrected.
    for name, value in typed.items():
        if name.endswith(("_from", "_to")):
            assert f'name="{name}" id="id_{name}" value="{value}"' in page
    bot.refresh_from_db()
    assert bot.opening_hours == HOURS


def test_a_script_posting_the_json_itself_still_works(admin_client, make_chatbot):
    bot = make_chatbot(opening_hours={})
    data = {
        k: v
        for k, v in page_data(admin_client, change_url(bot)).items()
        if "opening_hours" not in k
    }
    data["opening_hours"] = json.dumps({"fri": [["10:00", "14:00"]]})

    assert save(admin_client, change_url(bot), data).status_code == 302
    bot.refresh_from_db()
    assert bot.opening_hours == {"fri": [["10:00", "14:00"]]}


def test_the_same_hours_in_other_words_count_as_unchanged():
    assert same_hours({"mon": [["09:00", "12:00"]], "sat": []}, {"mon": [("09:00", "12:00")]})
    assert not same_hours({"mon": [["09:00", "12:00"]]}, {"mon": [["09:00", "12:30"]]})
    assert not same_hours({"mon": "nonsense"}, {"mon": "nonsense"})


# --- The chatbot page -------------------------------------------------------------------------


def test_flows_are_blocks_of_grouped_fields_with_readable_endpoint_choices(
    admin_client, make_chatbot, make_endpoint, make_flow
):
    builtin = make_endpoint(name="Builtin", kind=AIEndpoint.Kind.BUILTIN)
    make_endpoint(name="Demo shop", kind=AIEndpoint.Kind.BUILTIN)
    make_endpoint(
        name="Production",
        kind=AIEndpoint.Kind.OPENAI,
        base_url="https://ai.example/v1",
        default_model="gpt-4o-mini",
    )
    bot = make_chatbot(with_main_flow=False)
    make_flow(chatbot=bot, name="main", is_main=True, endpoint=builtin)

    page = admin_client.get(change_url(bot)).content.decode()
    assert 'id="flows-group"' in page and 'data-inline-type="stacked"' in page
    assert "form-multiline" in page  # fields grouped in rows, not one 12-column table row
    assert ">Builtin</option>" in page
    assert ">Demo shop — builtin</option>" in page
    assert ">Production — OpenAI-compatible · gpt-4o-mini</option>" in page
    assert "Builtin (Builtin" not in page


def test_a_flows_model_box_suggests_what_the_servers_listed(
    admin_client, make_chatbot, make_endpoint
):
    make_endpoint(
        name="Production",
        kind=AIEndpoint.Kind.OPENAI,
        base_url="https://ai.example/v1",
        known_models=["gpt-4o", "gpt-4o-mini"],
    )
    bot = make_chatbot()

    page = admin_client.get(change_url(bot)).content.decode()
    assert '<option value="gpt-4o" label="Production"></option>' in page
    assert 'list="id_flows-0-target_models"' in page


# --- The default model ------------------------------------------------------------------------


def test_an_openai_flow_without_a_model_of_its_own_uses_the_endpoints_default(
    make_chatbot, make_endpoint, make_flow
):
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.OPENAI, base_url="https://ai.example/v1", default_model="gpt-4o-mini"
    )
    bot = make_chatbot(with_main_flow=False)
    main = make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint, target="")
    own = make_flow(chatbot=bot, name="flow2", endpoint=endpoint, target="gpt-4o")
    main.full_clean()
    own.full_clean()

    flows = {f["name"]: f for f in chatbot_config_get(public_id=bot.public_id)["flows"]}
    assert flows["main"]["target"] == "gpt-4o-mini"
    assert flows["flow2"]["target"] == "gpt-4o"  # a flow's own model wins


def test_an_openai_flow_needs_a_model_when_its_endpoint_has_no_default(make_chatbot, make_endpoint):
    endpoint = make_endpoint(name="Bare", kind=AIEndpoint.Kind.OPENAI, base_url="https://x/v1")
    flow = Flow(chatbot=make_chatbot(), name="flow2", endpoint=endpoint, target="")
    with pytest.raises(Exception) as failure:
        flow.full_clean()
    assert "or give the endpoint “Bare” a default model" in str(failure.value)


def test_an_endpoint_keeps_its_default_while_flows_rely_on_it(
    admin_client, make_chatbot, make_endpoint, make_flow
):
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.OPENAI, base_url="https://ai.example/v1", default_model="gpt-4o-mini"
    )
    bot = make_chatbot(public_id="vinhuset", with_main_flow=False)
    make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint, target="")
    data = page_data(admin_client, change_url(endpoint))
    data["default_model"] = ""

    page = errors_of(save(admin_client, change_url(endpoint), data))
    assert "Flows vinhuset/main name no model of their own and use this default" in page
    endpoint.refresh_from_db()
    assert endpoint.default_model == "gpt-4o-mini"


def test_only_openai_compatible_endpoints_take_a_default_model(make_endpoint):
    endpoint = make_endpoint(kind=AIEndpoint.Kind.FLOWISE, base_url="https://flowise.example")
    endpoint.default_model = "gpt-4o"
    with pytest.raises(Exception) as failure:
        endpoint.full_clean()
    assert "A Flowise flow names its chatflow id in the chatbot's flow row" in str(failure.value)


def test_test_connection_lists_the_servers_models_as_the_default_models_choices(
    admin_client, openai, make_endpoint
):
    endpoint = make_endpoint(kind=AIEndpoint.Kind.OPENAI, base_url=f"{openai.url}/v1", api_key=KEY)
    before = page_data(admin_client, change_url(endpoint))
    assert "default_model_choice" not in before  # nothing listed yet: a plain text box
    assert (
        "Press “Test connection” to list the models"
        in admin_client.get(change_url(endpoint)).content.decode()
    )
    updated_at = endpoint.updated_at

    response = admin_client.post(
        change_url(endpoint).replace("change/", "test-connection/"), follow=True
    )
    [message] = [str(m) for m in response.context["messages"]]
    assert "No model is chosen yet: pick the default model below" in message
    assert "The server offers 3 models: gpt-4o-mini, gpt-4o, llama-3.1-8b-instruct." in message
    endpoint.refresh_from_db()
    assert endpoint.known_models == OFFERED
    assert endpoint.updated_at == updated_at  # a fetched list is not a configuration change
    page = response.content.decode()
    for name in OFFERED:
        assert f'<option value="{name}">{name}</option>' in page

    data = page_data(admin_client, change_url(endpoint))
    assert data["default_model_choice"] == ""  # "— none —" until chosen
    data["default_model_choice"] = "gpt-4o"
    assert save(admin_client, change_url(endpoint), data).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.default_model == "gpt-4o"
    # Saved untouched, the choice stays.
    assert (
        save(
            admin_client, change_url(endpoint), page_data(admin_client, change_url(endpoint))
        ).status_code
        == 302
    )
    endpoint.refresh_from_db()
    assert endpoint.default_model == "gpt-4o"


def test_a_model_the_server_does_not_list_can_still_be_typed(admin_client, openai, make_endpoint):
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.OPENAI,
        base_url=f"{openai.url}/v1",
        api_key=KEY,
        known_models=OFFERED,
    )
    data = page_data(admin_client, change_url(endpoint))
    data.update(default_model_choice="__other__", default_model="my-azure-deployment")

    assert save(admin_client, change_url(endpoint), data).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.default_model == "my-azure-deployment"
    again = page_data(admin_client, change_url(endpoint))
    assert again["default_model_choice"] == "__other__"
    assert again["default_model"] == "my-azure-deployment"

    response = admin_client.post(
        change_url(endpoint).replace("change/", "test-connection/"), follow=True
    )
    [(level, message)] = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert level == "error"
    assert "the default model “my-azure-deployment” is not among the server's models" in message


def test_test_connection_names_each_flows_model_and_whether_the_server_lists_it(
    admin_client, openai, make_chatbot, make_endpoint, make_flow
):
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.OPENAI,
        base_url=f"{openai.url}/v1",
        api_key=KEY,
        default_model="gpt-4o-mini",
    )
    bot = make_chatbot(public_id="vinhuset", with_main_flow=False)
    make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint, target="")
    make_flow(chatbot=bot, name="flow2", endpoint=endpoint, target="gpt-5-turbo")

    response = admin_client.post(
        change_url(endpoint).replace("change/", "test-connection/"), follow=True
    )
    [message] = [str(m) for m in response.context["messages"]]
    assert (
        "Flows without a model of their own use “gpt-4o-mini”, which the server lists." in message
    )
    assert "Flow vinhuset/flow2 uses “gpt-5-turbo”, which the server does not list." in message
    assert KEY not in message


def test_save_and_test_connection_goes_from_a_new_endpoint_to_its_model_list(admin_client, openai):
    data = page_data(admin_client, "/admin/chatbots/aiendpoint/add/")
    data.update(
        name="OpenAI",
        kind="openai",
        base_url=f"{openai.url}/v1",
        api_key=KEY,
        _save_and_test="Save and test connection",
    )

    response = admin_client.post("/admin/chatbots/aiendpoint/add/", data, follow=True)
    endpoint = AIEndpoint.objects.get(name="OpenAI")
    assert response.redirect_chain == [(change_url(endpoint), 302)]
    messages = [str(m) for m in response.context["messages"]]
    assert messages[0] == "“OpenAI” was saved."
    assert "The server offers 3 models" in messages[1]
    assert endpoint.known_models == OFFERED


def test_the_default_model_travels_with_an_export(tmp_path, make_chatbot, make_endpoint, make_flow):
    endpoint = make_endpoint(
        name="OpenAI",
        kind=AIEndpoint.Kind.OPENAI,
        base_url="https://ai.example/v1",
        default_model="gpt-4o-mini",
        known_models=OFFERED,
    )
    bot = make_chatbot(public_id="vinhuset", with_main_flow=False)
    make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint, target="")
    out = io.StringIO()
    call_command("export_chatbots", stdout=out)
    document = json.loads(out.getvalue())
    [exported] = document["endpoints"]
    assert exported["default_model"] == "gpt-4o-mini"
    assert "known_models" not in exported  # fetched, not configured

    Chatbot.objects.all().delete()
    AIEndpoint.objects.all().delete()
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document))
    call_command("import_chatbots", str(path), stdout=io.StringIO())

    imported = AIEndpoint.objects.get(name="OpenAI")
    assert imported.default_model == "gpt-4o-mini"
    assert chatbot_config_get(public_id="vinhuset")["flows"][0]["target"] == "gpt-4o-mini"


# --- Lists and the index ----------------------------------------------------------------------


def test_the_error_log_list_shows_a_short_message(admin_client, make_chatbot):
    ErrorLog.objects.create(
        category=ErrorLog.Category.UPSTREAM_AI, code="UPSTREAM_ERROR", message="word " * 100
    )
    page = admin_client.get("/admin/monitoring/errorlog/").content.decode()
    cell = page.split('<td class="field-summary">', 1)[1].split("</td>", 1)[0]
    assert len(cell) <= 100 and cell.endswith("…")


def test_the_conversation_list_has_seven_columns_with_short_ids(admin_client, make_chatbot):
    bot = make_chatbot(public_id="a-chatbot-with-a-rather-long-public-identifier")
    Conversation.objects.create(chatbot=bot, user_id="visitor-" + "x" * 150)
    page = admin_client.get("/admin/conversations/conversation/").content.decode()
    head = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert head.count('scope="col"') == 8  # the tick box and seven columns
    assert "a-chatbot-with-a-rather…" in page and "x" * 30 not in page


def test_the_admin_index_leads_to_the_dashboard_and_the_operators_page(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert 'href="/admin/analytics/conversationanalysis/dashboard/"' in page
    assert 'href="/admin/monitoring/workersoverview/"' in page
    assert '<a href="/admin/inbox/">Live inbox</a>' in page
    assert "View site" not in page
