"""Routing decisions: the router's answer selects an answer flow, else the main flow."""

import pytest

from chatbots import flow_router

CONFIG = {
    "flows": [
        {
            "id": 1,
            "name": "main",
            "role": "answer",
            "is_main": True,
            "routing_key": "",
            "applies_to": "",
        },
        {
            "id": 2,
            "name": "flow3",
            "role": "answer",
            "is_main": False,
            "routing_key": "product",
            "applies_to": "",
        },
        {
            "id": 3,
            "name": "flow4",
            "role": "answer",
            "is_main": False,
            "routing_key": "productfilter",
            "applies_to": "",
        },
        {
            "id": 4,
            "name": "apiflow",
            "role": "answer",
            "is_main": False,
            "routing_key": "order",
            "applies_to": "",
        },
        {
            "id": 5,
            "name": "router",
            "role": "router",
            "is_main": False,
            "routing_key": "",
            "applies_to": "",
        },
        {
            "id": 6,
            "name": "metadata",
            "role": "extractor",
            "is_main": False,
            "routing_key": "",
            "applies_to": "productfilter",
        },
        {
            "id": 7,
            "name": "metadata2",
            "role": "extractor",
            "is_main": False,
            "routing_key": "",
            "applies_to": "",
        },
    ]
}
KEYS = flow_router.routable_keys(CONFIG)


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("product", "product"),
        ("  Product. ", "product"),
        ('{"route": "order"}', "order"),
        ('Sure! {"label": "productfilter"}', "productfilter"),
        ("I think this is about productfilter questions", "productfilter"),
        ("nothing relevant", None),
        ("", None),
    ],
)
def test_router_answers_are_read_into_labels(answer, label):
    assert flow_router.parse_label(answer, KEYS) == label


def test_label_selects_its_flow_and_unknown_labels_fall_back_to_main():
    assert flow_router.answer_flow_for(CONFIG, "order")["name"] == "apiflow"
    assert flow_router.answer_flow_for(CONFIG, None)["name"] == "main"
    assert flow_router.answer_flow_for(CONFIG, "nope")["name"] == "main"


def test_extractor_for_a_flow_prefers_the_one_that_applies_to_it():
    flow4 = flow_router.answer_flow_for(CONFIG, "productfilter")
    assert flow_router.extractor_for(CONFIG, flow4)["name"] == "metadata"
    main = flow_router.main_flow(CONFIG)
    assert flow_router.extractor_for(CONFIG, main)["name"] == "metadata2"


def test_json_objects_are_found_inside_prose():
    assert flow_router.parse_json_object('Here: {"order_number": "1001"} ok') == {
        "order_number": "1001"
    }
    assert flow_router.parse_json_object("no json") is None
