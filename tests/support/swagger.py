"""Argo CD's swagger as a strict JSON schema: validate what the simulator serves, list unknown fields."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import jsonschema

from tests.support.tools import reference


@functools.cache
def _definitions() -> dict[str, Any]:
    spec = json.loads(reference("argocd", "swagger.json").read_text())
    definitions = copy.deepcopy(spec["definitions"])
    for schema in definitions.values():
        _inline_all_of(schema, spec["definitions"])
    for schema in definitions.values():
        _tighten(schema)
    return definitions


def _inline_all_of(schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    """Go's embedded structs (`json:",inline"`, e.g. ResourceNode embeds ResourceRef) appear as `allOf`: their
    fields belong to the object itself, so they are merged in before unknown keys are refused."""
    for part in schema.pop("allOf", []):
        ref = part.get("$ref", "").removeprefix("#/definitions/")
        embedded = definitions.get(ref, part)
        schema.setdefault("properties", {}).update(copy.deepcopy(embedded.get("properties", {})))


@functools.cache
def validator(name: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator({"$ref": f"#/definitions/{name}", "definitions": _definitions()})


def _tighten(node: Any) -> None:
    """No unknown keys (a typo in a field name fails), and Go's int64-as-number wire format (SOURCE.md)."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        if node.get("type") == "string" and node.get("format") in ("int64", "uint64"):
            node["type"] = ["string", "integer"]
        for value in node.values():
            _tighten(value)
    elif isinstance(node, list):
        for value in node:
            _tighten(value)


def validate(body: Any, name: str) -> None:
    validator(name).validate(body)


def field_paths(body: Any, name: str) -> dict[str, bool]:
    """Every field path in `body` ("status.history[].revision"; map keys as "*"), each with whether swagger's
    `name` definition knows it. The walk stops below an unknown field: its children are unknown too."""
    paths: dict[str, bool] = {}

    def walk(node: Any, schema: dict[str, Any], path: str) -> None:
        while "$ref" in schema:
            schema = _definitions()[schema["$ref"].rsplit("/", 1)[-1]]
        if isinstance(node, list):
            for item in node:
                walk(item, schema.get("items") or {}, f"{path}[]")
            return
        if not isinstance(node, dict):
            return
        properties = schema.get("properties")
        mapped = schema.get("additionalProperties")
        for key, value in node.items():
            if properties is not None and key in properties:
                child, sub = f"{path}.{key}".lstrip("."), properties[key]
            elif isinstance(mapped, dict):
                child, sub = f"{path}.*".lstrip("."), mapped
            else:
                paths[f"{path}.{key}".lstrip(".")] = False
                continue
            paths[child] = True
            walk(value, sub, child)

    walk(body, {"$ref": f"#/definitions/{name}"}, "")
    return paths


def unknown_fields(body: Any, name: str = "v1alpha1Application") -> list[str]:
    return sorted(path for path, known in field_paths(body, name).items() if not known)
