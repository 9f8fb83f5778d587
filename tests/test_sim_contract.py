"""The simulator speaks Argo CD's published API: every response validates against swagger.json (strictly)."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import reference, wait_for
from watcher.sim.world import SimWorld


@functools.cache
def _definitions() -> dict[str, Any]:
    spec = json.loads(reference("argocd", "swagger.json").read_text())
    definitions = copy.deepcopy(spec["definitions"])
    for schema in definitions.values():
        _tighten(schema)
    return definitions


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


@pytest.fixture
def synced(world: SimWorld) -> SimWorld:
    wait_for(
        lambda: (
            all(a["status"].get("health", {}).get("status") == "Healthy" for a in world.controller.snapshot())
            and len(world.controller.snapshot()) == 9
        )
    )
    return world


def test_strict_schema_catches_a_misspelt_field() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate({"metadata": {"name": "x"}, "status": {"sync": {"statuss": "Synced"}}}, "v1alpha1Application")


def test_list_get_version_validate(synced: SimWorld) -> None:
    base = synced.argocd_url
    validate(httpx.get(f"{base}/api/v1/applications").json(), "v1alpha1ApplicationList")
    validate(
        httpx.get(f"{base}/api/v1/applications", params={"fields": "items.metadata.name,items.status.health"}).json(),
        "v1alpha1ApplicationList",
    )
    validate(httpx.get(f"{base}/api/v1/applications/plate-web-stg").json(), "v1alpha1Application")
    validate(
        httpx.get(f"{base}/api/v1/applications/plate-web-stg", params={"refresh": "normal"}).json(),
        "v1alpha1Application",
    )
    validate(httpx.get(f"{base}/api/version").json(), "versionVersionMessage")


def test_failed_and_retrying_states_validate(synced: SimWorld) -> None:
    values = "helm/applications/plate-api/values-stg.yaml"
    synced.work.commit("bad", {values: synced.work.set_value(values, "replicaCount", -1)})
    synced.work.push()
    states = []

    def phase() -> str | None:
        app = httpx.get(f"{synced.argocd_url}/api/v1/applications/plate-api-stg").json()
        states.append(app)
        return app["status"]["operationState"]["phase"] == "Failed" and app

    failed = wait_for(phase, what="Failed")
    validate(failed, "v1alpha1Application")
    retrying = [s for s in states if s["status"]["operationState"].get("retryCount")]
    for app in retrying[:3]:
        validate(app, "v1alpha1Application")


def test_stream_frames_validate(synced: SimWorld) -> None:
    with httpx.stream(
        "GET", f"{synced.argocd_url}/api/v1/stream/applications", headers={"Accept": "text/event-stream"}, timeout=5
    ) as r:
        frames = []
        for line in r.iter_lines():
            if line.startswith("data:"):
                frames.append(json.loads(line[5:]))
            if len(frames) == 9:
                break
    for frame in frames:
        assert frame["result"]["type"] == "ADDED"
        validate(frame["result"], "v1alpha1ApplicationWatchEvent")


def test_session_and_errors_validate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from watcher.sim.server import Auth

    w = SimWorld.start(tmp_path / "w", auth=Auth(accounts={"admin": "pw"}))
    try:
        r = httpx.post(f"{w.argocd_url}/api/v1/session", json={"username": "admin", "password": "pw"})
        validate(r.json(), "sessionSessionResponse")
        denied = httpx.get(f"{w.argocd_url}/api/v1/applications")
        assert denied.status_code == 401
        validate(denied.json(), "runtimeError")
        missing = httpx.get(
            f"{w.argocd_url}/api/v1/applications/nope", headers={"Authorization": f"Bearer {r.json()['token']}"}
        )
        assert missing.status_code == 404
        validate(missing.json(), "runtimeError")
    finally:
        w.stop()
