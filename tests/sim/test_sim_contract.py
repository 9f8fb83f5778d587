"""The simulator speaks Argo CD's published API: every response validates against swagger.json (strictly)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.support.multi_source import make_multi_source
from tests.support.swagger import (
    field_paths,
    validate,
)
from tests.support.waiting import wait_for
from watcher.sim.world import SimWorld


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


# -- the simulator beside real Applications (tests/fixtures/applications) ---------------------------------
COUNTED_ONCE = {"plugin", "sources", "ownerReferences", "managedFields", "labels"}


def shape(path: str) -> str | None:
    """A field path at the grain the watcher cares about: a plugin, a list of sources or owner references,
    managed fields or labels each count once; kubectl's apiVersion/kind (never served by argocd-server) not."""
    if path in ("apiVersion", "kind"):
        return None
    kept: list[str] = []
    for segment in path.split("."):
        if (name := segment.removesuffix("[]")) in COUNTED_ONCE:
            return ".".join([*kept, name])
        kept.append(segment)
    return path


# Shapes real Applications have that the simulator never serves, in a healthy world, a failed and retried sync,
# a ComparisonError, a person's sync and a multi-source app (a Helm repository chart with values from the repo).
# When the simulator gains one, this test fails: take it off the list (docs/argocd-conformance.md).
SIM_LACKS = [
    "metadata.generation",
    "metadata.labels",
    "metadata.managedFields",
    "metadata.ownerReferences",  # Applications an ApplicationSet generated
    "operation.sync.source",  # v3 controllers put the source into the operation they start
    "operation.sync.syncStrategy",
    "spec.destination.name",
    "spec.source.chart",  # a chart from a Helm repository: its revisions are chart versions
    "spec.source.plugin",
    "spec.syncPolicy.automated.allowEmpty",
    "status.controllerNamespace",
    "status.history[].source.chart",
    "status.history[].source.plugin",
    "status.operationState.operation.sync.source",
    "status.operationState.operation.sync.syncStrategy",
    "status.operationState.syncResult.resources[].hookPhase",
    "status.operationState.syncResult.source.chart",
    "status.operationState.syncResult.source.plugin",
    "status.resources[].health",  # served only with Cluster.persist_resource_health (before Argo CD 3.0)
    "status.resources[].requiresPruning",
    "status.resources[].syncWave",
    "status.sourceHydrator",
    "status.sourceType",
    "status.sourceTypes",
    "status.summary",
    "status.sync.comparedTo.destination.name",
    "status.sync.comparedTo.source.chart",
    "status.sync.comparedTo.source.plugin",
]


def test_sim_shapes_beside_real_applications(synced: SimWorld) -> None:
    from tests.support.real_applications import NAMES, fixture  # that module imports this one

    base = synced.argocd_url
    served = httpx.get(f"{base}/api/v1/applications").json()["items"]
    api, web = "helm/applications/plate-api/values-stg.yaml", "helm/applications/plate-web/values-stg.yaml"
    bad_api = synced.work.set_value(api, "replicaCount", -1)
    synced.work.commit("bad", {api: bad_api, web: "replicaCount: 1\nimage:\n  tag: [unclosed\n"})
    synced.work.push()
    phases: set[str] = set()

    def failed_and_broken() -> bool:
        app, web_app = (httpx.get(f"{base}/api/v1/applications/{n}").json() for n in ("plate-api-stg", "plate-web-stg"))
        served.extend([app, web_app])
        phases.add(app["status"]["operationState"]["phase"])
        return {"Running", "Failed"} <= phases and bool(web_app["status"].get("conditions"))

    wait_for(failed_and_broken, timeout=120, what="a retried, failed sync and a ComparisonError")
    served.extend(a_persons_sync(synced, "plate-web-prod"))
    served.extend(a_multi_source_app(synced, "plate-cache-stg"))
    sim = {path: known for app in served for path, known in field_paths(app, "v1alpha1Application").items()}
    real = {path for name in NAMES for path in field_paths(fixture(name), "v1alpha1Application")}
    assert [p for p, known in sim.items() if not known and p not in real] == []
    served_shapes = {shape(p) for p in sim}
    lacks = {s for p in real if (s := shape(p)) is not None and s not in served_shapes}
    # a missing field's children are missing too: list the top of each missing subtree
    assert sorted(p for p in lacks if not any(p.startswith(f"{q}.") for q in lacks)) == SIM_LACKS


def a_persons_sync(world: SimWorld, name: str) -> list[dict[str, Any]]:
    """The app while a person's sync runs and once it succeeded (initiatedBy.username, in the history too)."""
    url = f"{world.argocd_url}/api/v1/applications/{name}"
    seen = [httpx.post(f"{url}/sync", json={}, timeout=10).json()]
    wait_for(
        lambda: (
            seen.append(app := httpx.get(url, timeout=10).json())
            or app["status"]["operationState"]["phase"] == "Succeeded"
        ),
        what="the person's sync",
    )
    return seen


def a_multi_source_app(world: SimWorld, name: str) -> list[dict[str, Any]]:
    """`name` turned into a Helm repository chart with its values from the repo, once deployed."""
    sha = make_multi_source(world, name)
    url = f"{world.argocd_url}/api/v1/applications/{name}"
    return [
        wait_for(
            lambda: (
                (app := httpx.get(url, timeout=10).json())["status"]["sync"].get("revisions", [""])[-1] == sha
                and app["status"]["operationState"]["phase"] == "Succeeded"
                and app
            ),
            what="the multi-source app deployed",
        )
    ]


def test_resource_tree_validates(synced: SimWorld) -> None:
    """GET .../resource-tree is Argo CD's v1alpha1ApplicationTree: managed resources, and the ReplicaSet and
    Pod below the Deployment with their parentRefs."""
    tree = httpx.get(f"{synced.argocd_url}/api/v1/applications/plate-api-stg/resource-tree", timeout=10).json()
    validate(tree, "v1alpha1ApplicationTree")
    kinds = {n["kind"]: bool(n.get("parentRefs")) for n in tree["nodes"]}
    assert kinds == {"Deployment": False, "ConfigMap": False, "ReplicaSet": True, "Pod": True}
    missing = httpx.get(f"{synced.argocd_url}/api/v1/applications/nope/resource-tree", timeout=10)
    assert missing.status_code == 404
