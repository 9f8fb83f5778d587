"""Multi-source Applications (`spec.sources`, Argo CD >= 2.6): `revisions` lined up with the sources, a Helm
repository's chart version among them. Detected, blamed and verified on the watched repo's entry; a chart
version bump is blamed on the commit that changed the version in the watched repo."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import yaml

from tests.support.revert_world import Scenario
from tests.support.swagger import validate
from tests.support.waiting import wait_for
from watcher.core.appmap import app_paths, deploys_from_repo, mapping_fields
from watcher.core.snapshots import snapshot_from_app
from watcher.domain import Phase, SyncStatus, VerifyResult
from watcher.sim.chart_repo import HELM_REPO_URL
from watcher.sim.world import SimWorld

WATCHED = "https://git.plate.example/platform/gitops.git"
CHARTS = "https://charts.example.com/stable"
C1, C2 = "1" * 40, "2" * 40

# Shaped as Argo CD serves a multi-source app (swagger: v1alpha1SyncStatus.revisions, SyncOperationResult
# .revisions, RevisionHistory.revisions): the Helm repository's entry is a chart version.
MULTI: dict[str, Any] = {
    "metadata": {"name": "redis", "namespace": "argocd"},
    "spec": {
        "project": "default",
        "sources": [
            {
                "repoURL": CHARTS,
                "chart": "redis",
                "targetRevision": "17.3.8",
                "helm": {"valueFiles": ["$values/charts/redis/values-prod.yaml"]},
            },
            {"repoURL": WATCHED, "targetRevision": "main", "ref": "values"},
        ],
        "syncPolicy": {"automated": {"prune": True}},
    },
    "status": {
        "sync": {"status": "OutOfSync", "revisions": ["17.3.8", C2]},
        "health": {"status": "Healthy"},
        "operationState": {
            "phase": "Failed",
            "message": "one or more objects failed to apply",
            "startedAt": "2026-11-01T10:00:00Z",
            "finishedAt": "2026-11-01T10:00:20Z",
            "operation": {"sync": {"revisions": ["17.3.8", C2]}, "initiatedBy": {"automated": True}},
            "syncResult": {"revisions": ["17.3.8", C2], "sources": []},
        },
        "history": [
            {"id": 1, "revisions": ["17.3.7", C1], "deployedAt": "2026-10-31T10:00:00Z"},
        ],
    },
}


def test_every_revision_is_the_watched_sources_entry() -> None:
    snap = snapshot_from_app(MULTI, complete=True, watched_repo="git@git.plate.example:platform/gitops")
    assert (snap.sync_status, snap.phase) == (SyncStatus.OUT_OF_SYNC, Phase.FAILED)
    assert snap.sync_revision == C2 and snap.operation_revision == C2
    assert snap.history_revisions == (C1,)


def test_the_list_carries_the_sync_result_where_the_operation_would_be() -> None:
    """Argo CD's list puts the SyncResult under `status.operationState.operation.sync` (forwarder_overwrite.go)
    and cannot select `status.sync.revisions`: the operation's revision is read, the sync's is unknown."""
    listed = copy.deepcopy(MULTI)
    state = listed["status"]["operationState"]
    state["operation"] = {"sync": state.pop("syncResult")}
    listed["status"]["sync"] = {"status": "OutOfSync"}
    snap = snapshot_from_app(listed, complete=False, watched_repo=WATCHED)
    assert snap.operation_revision == C2 and snap.sync_revision is None


def test_a_missing_entry_is_unknown_never_another_sources_revision() -> None:
    short = copy.deepcopy(MULTI)
    short["status"]["sync"]["revisions"] = ["17.3.8"]
    assert snapshot_from_app(short, complete=True, watched_repo=WATCHED).sync_revision is None


def test_an_app_with_nothing_from_the_watched_repo_is_not_blamed_on_it() -> None:
    chart_only = {"spec": {"source": {"repoURL": CHARTS, "chart": "redis", "targetRevision": "17.3.8"}}}
    assert deploys_from_repo(mapping_fields(chart_only), WATCHED) is False
    assert deploys_from_repo(mapping_fields(MULTI), WATCHED) is True
    assert app_paths(MULTI, WATCHED, "apps/redis.yaml") == ("apps/redis.yaml", "charts/redis/values-prod.yaml")


# -- on real git, with the simulator's Helm repository -----------------------------------------------------
APP = "plate-cache-stg"
MANIFEST = f"environments/argocd/apps/{APP}.yaml"


def set_chart(world: SimWorld, version: str, subject: str, make_multi: bool = False) -> str:
    """Commit the app's chart version (turning it into a multi-source app first when asked) and push."""
    manifest = yaml.safe_load(world.work.read(MANIFEST))
    spec = manifest["spec"]
    if make_multi:
        own = spec.pop("source")
        values = [f"$values/{own['path']}/{f}" for f in own["helm"]["valueFiles"]]
        spec["sources"] = [
            {
                "repoURL": HELM_REPO_URL,
                "chart": "plate-cache",
                "targetRevision": version,
                "helm": {"valueFiles": values},
            },
            {"repoURL": own["repoURL"], "targetRevision": own["targetRevision"], "ref": "values"},
        ]
    else:
        spec["sources"][0]["targetRevision"] = version
    world.work.git("pull", "-q", "--rebase", "origin", "main")
    sha = world.work.commit(subject, {MANIFEST: yaml.safe_dump(manifest, sort_keys=False)}, "Platform Team")
    world.work.push()
    return sha


def argocd_app(world: SimWorld) -> dict[str, Any]:
    return dict(httpx.get(f"{world.argocd_url}/api/v1/applications/{APP}", timeout=10).json())


def test_a_bad_chart_version_bump_is_reverted_and_only_it(world: SimWorld, scenario: Callable[..., Scenario]) -> None:
    s = scenario().start()
    multi = set_chart(world, "0.1.0", "plate-cache-stg: chart from the Helm repository", make_multi=True)
    wait_for(lambda: s.healthy_on(APP, multi), what="the multi-source app deployed", timeout=120)
    good = set_chart(world, "0.2.0", "plate-cache-stg: chart 0.2.0")
    wait_for(lambda: s.healthy_on(APP, good), what="the good chart bump deployed", timeout=120)
    bad = set_chart(world, "0.3.0", "plate-cache-stg: chart 0.3.0")

    row = wait_for(
        lambda: [r for r in s.revert_rows() if r.verify_result is VerifyResult.RESTORED],
        what="the revert restored the live state (the refused chart never reached the cluster)",
        timeout=120,
    )[0]
    assert row.culprits == (bad,)
    decision = s.decision(APP, "culprit_found")
    assert decision is not None and bad[:12] in decision.reason
    incident = s.d.store.detection.incident(row.incident_id)
    assert incident is not None and (incident.kind.value, incident.revision) == ("sync_failed", bad)
    assert [c[0] for c in s.bot_commits()] == [row.revert_sha]
    assert yaml.safe_load(s.remote_file(MANIFEST))["spec"]["sources"][0]["targetRevision"] == "0.2.0"
    # What Argo CD shows after the revert: the chart version and the revert commit, lined up with the sources.
    # The bad sync applied nothing, so the revert's manifests are already live: Argo CD says Synced on the
    # revert with no new sync, and the failed operation of the bad commit stays (rule 10). That is healed,
    # not "still failing", and no second incident is opened for the old operation.
    served = argocd_app(world)
    validate(served, "v1alpha1Application")  # the multi-source shapes are the published API's, strictly
    status = served["status"]
    assert status["sync"]["revisions"] == ["0.2.0", row.revert_sha]
    assert status["history"][-1]["revisions"] == ["0.2.0", good]
    assert status["operationState"]["phase"] == "Failed"
    assert status["operationState"]["syncResult"]["revisions"] == ["0.3.0", bad]
    wait_for(lambda: not s.d.store.detection.incidents(open_only=True), what="the incident closed", timeout=120)

    # The next bad bump is blamed alone: the revert that needed no sync is neither a culprit nor in the way.
    again = set_chart(world, "0.3.0", "plate-cache-stg: chart 0.3.0 again")
    wait_for(lambda: len(s.revert_rows("pushed")) == 2, what="the second revert", timeout=60)
    second = next(r for r in s.revert_rows("pushed") if r.id != row.id)
    assert second.culprits == (again,)
    assert len(s.d.store.detection.incidents()) == 2


def test_a_chart_only_app_is_alerted_never_blamed_on_the_watched_repo(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """No source of the app is the watched repo: Argo CD's revision is the chart version. The bump lives in
    the app's manifest, but nothing says which commit Argo CD deployed: alert with the version, revert nothing."""
    s = scenario().start()
    manifest = yaml.safe_load(world.work.read(MANIFEST))
    manifest["spec"]["source"] = {"repoURL": HELM_REPO_URL, "chart": "plate-cache", "targetRevision": "0.1.0"}
    world.work.git("pull", "-q", "--rebase", "origin", "main")
    world.work.commit("plate-cache-stg: chart only", {MANIFEST: yaml.safe_dump(manifest)}, "Platform Team")
    world.work.push()
    wait_for(lambda: s.healthy_on(APP, "0.1.0"), what="the chart-only app deployed", timeout=120)
    manifest["spec"]["source"]["targetRevision"] = "0.3.0"
    world.work.commit("plate-cache-stg: chart 0.3.0", {MANIFEST: yaml.safe_dump(manifest)}, "Platform Team")
    world.work.push()
    decision = wait_for(lambda: s.decision(APP), what="a decision", timeout=120)
    assert (decision.action, decision.rule) == ("alert", "not_from_watched_repo")
    assert "'0.3.0'" in decision.reason
    incident = s.d.store.detection.incidents(app=APP)[0]
    assert (incident.kind.value, incident.revision) == ("sync_failed", "0.3.0")
    assert s.bot_commits() == [] and s.revert_rows() == []
