"""A list body decoded one item at a time says what json.loads says, and fails where json.loads fails."""

from __future__ import annotations

import json
from typing import Any

import pytest

from watcher.adapters.json_items import array_items

APP = {"metadata": {"name": "plate-api-stg", "labels": {"env": "stg"}}, "status": {"sync": {"status": "Synced"}}}


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {"resourceVersion": "7"}, "items": [APP, APP | {"metadata": {"name": "b"}}]},
        {"items": [APP], "metadata": {}},  # keys in any order
        {"items": []},
        {"items": None},  # Argo CD's answer for no apps
        {"metadata": {}},
        {"metadata": {"items": [1]}, "items": [[], 1, "two", None, {"é": 'ü\\"\n'}]},  # nested "items" is not it
    ],
)
@pytest.mark.parametrize("spacing", [{}, {"indent": 2}, {"separators": (" , ", " : ")}])
def test_items_are_what_json_loads_says(body: dict[str, Any], spacing: dict[str, Any]) -> None:
    text = json.dumps(body, **spacing)
    assert list(array_items(text)) == (json.loads(text)["items"] or [] if "items" in body else [])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<html>502 Bad Gateway</html>{",
        '[{"metadata": {}}]',  # not an object
        '{"items": [{"a": 1}, {"b": 2',  # cut in the middle of an item
        '{"items": [{"a": 1}]',  # cut after the array
        '{"items": [1,]}',
        '{"items": {"a": 1}}',  # items is not a list
        '{"items": [1]} {"items": [2]}',  # trailing data
        '{"items": [1], "items": [2]}',
    ],
)
def test_what_json_loads_refuses_raises(text: str) -> None:
    with pytest.raises(ValueError):
        list(array_items(text))


def test_items_before_a_fault_come_first_then_the_error() -> None:
    items = array_items('{"items": [{"a": 1}, {"b": ]}')
    assert next(items) == {"a": 1}
    with pytest.raises(ValueError):
        next(items)
