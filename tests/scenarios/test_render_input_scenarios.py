"""Rule 3 on real git: what the renderer reads outside an app's directory is the app's too.

A shared library chart (a `file://` dependency) and a Kustomize base live outside the apps' directories; a
commit that touches only them is blamed and reverted for the apps that use them, and for no other app. Each
test asserts the exact set of reverted commits, the incident kinds and the decision's reason.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml

from tests.support.revert_world import Scenario
from tests.support.waiting import wait_for
from watcher.domain import EventKind
from watcher.sim.gitops_repo import LIBRARY, application
from watcher.sim.world import SimWorld

COMMON = f"{LIBRARY}/common/templates/_labels.tpl"
JOBS = f"{LIBRARY}/jobs/templates/_cronjob.tpl"


def rename_template(world: SimWorld, path: str, old: str, new: str) -> dict[str, str]:
    """A library refactor that renames a named template and forgets the charts that include it."""
    return {path: world.work.read(path).replace(f'"{old}"', f'"{new}"')}


def reverted(s: Scenario) -> set[str]:
    return {sha for row in s.revert_rows() for sha in row.culprits}


def blamed(s: Scenario) -> set[str]:
    """Every commit any decision named as a culprit, for any app."""
    found: set[str] = set()
    for decision in s.d.store.audit.decisions(limit=1000):
        blame = decision.evidence.get("blame")
        culprits = blame.get("culprits") if isinstance(blame, dict) else None
        found |= {str(c["sha"]) for c in culprits or []}
    return found


def render_failures(s: Scenario) -> set[tuple[str, EventKind]]:
    """Incidents a commit can cause at render or sync. (On a busy machine an app may also be reported stuck
    progressing for a moment: its deadline is 1.5 s here; that is the machine, not a commit.)"""
    kinds = (EventKind.MANIFEST_ERROR, EventKind.SYNC_FAILED, EventKind.DEGRADED)
    return {(i.app, i.kind) for i in s.d.store.detection.incidents() if i.kind in kinds}


def test_a_commit_to_the_shared_library_chart_alone_is_reverted(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    s = scenario().start()
    assert "helm/library/common" in s.d.fleet.app_context("plate-web-stg").paths["plate-web-stg"]
    bad = world.work.commit(
        "common: rename common.labels to common.metadataLabels",
        rename_template(world, COMMON, "common.labels", "common.metadataLabels"),
        "Dev Two",
    )
    world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    for app in ("plate-web-stg", "plate-web-prod"):
        wait_for(lambda app=app: s.healthy_on(app, row.revert_sha), what=f"{app} healthy on the revert")
    assert reverted(s) == {bad} and len(s.bot_commits()) == 1
    assert render_failures(s) == {
        ("plate-web-stg", EventKind.MANIFEST_ERROR),
        ("plate-web-prod", EventKind.MANIFEST_ERROR),
    }
    assert blamed(s) == {bad}
    decision = s.decision(row.app, "culprit_found")
    assert decision is not None and decision.action == "revert"
    assert f"{bad[:12]} (common: rename common.labels" in decision.reason
    other = "plate-web-prod" if row.app == "plate-web-stg" else "plate-web-stg"
    assert f"the culprit also changed {other}" in decision.reason
    conditions = s.d.store.detection.incidents(app=row.app)[0].evidence["conditions"]
    assert 'no template "common.labels"' in str(conditions)  # Helm's own words, through Argo CD's condition


def test_a_commit_to_a_library_chart_no_app_uses_is_not_blamed(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """The same broken refactor in a library nobody depends on, pushed with a real break of plate-web-stg: only
    the app's own commit is the culprit, though the library commit is newer and sits in the same range."""
    s = scenario().start()
    own = s.commit("plate-web-stg: scale to -1", {"plate-web-stg": ("replicaCount", -1)})
    library = world.work.commit(
        "jobs: rename jobs.schedule", rename_template(world, JOBS, "jobs.schedule", "jobs.cron"), "Dev One"
    )
    world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    wait_for(lambda: s.healthy_on("plate-web-stg", row.revert_sha), what="plate-web-stg healthy on the revert")
    assert reverted(s) == {own} and len(s.bot_commits()) == 1
    assert render_failures(s) == {("plate-web-stg", EventKind.SYNC_FAILED)}  # the library broke nothing
    assert blamed(s) == {own}
    decision = s.decision("plate-web-stg", "culprit_found")
    assert decision is not None and decision.reason.startswith("1 commit(s) since")
    assert own[:12] in decision.reason and library[:12] not in decision.reason
    assert [c["sha"] for c in decision.evidence["blame"]["culprits"]] == [own]


DOCS = "kustomize/plate-docs"
OVERLAY = f"{DOCS}/overlays/stg"
DOCS_FILES = {
    f"{DOCS}/base/kustomization.yaml": "resources: [configmap.yaml]\n",
    f"{DOCS}/base/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plate-docs}\ndata: {a: '1'}\n",
    f"{OVERLAY}/kustomization.yaml": "namespace: plate-stg\nresources: [../../base]\npatches: [{path: data.yaml}]\n",
    f"{OVERLAY}/data.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plate-docs}\ndata: {b: '2'}\n",
}


def test_a_commit_to_a_kustomize_base_outside_the_overlay_is_reverted(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """An overlay app (the platform team adds it to the app-of-apps) whose base is a sibling directory: a commit
    that breaks only the base's YAML fails the overlay's render, and blame finds it through kustomization.yaml."""
    manifest = application("plate-docs-stg", world.repo_url, OVERLAY, "plate-stg", None, "2", retry_limit=2)
    manifest["spec"]["source"].pop("directory")  # type: ignore[index]
    added = world.work.commit(
        "plate-docs-stg: docs site from a kustomize overlay",
        {**DOCS_FILES, "environments/argocd/apps/plate-docs-stg.yaml": yaml.safe_dump(manifest, sort_keys=False)},
        "Platform Team",
    )
    world.work.push()
    s = scenario().start()
    wait_for(lambda: "plate-docs-stg" in s.d.fleet.trackers and s.healthy_on("plate-docs-stg", added), what="docs")
    assert f"{DOCS}/base" in s.d.fleet.app_context("plate-docs-stg").paths["plate-docs-stg"]
    broken = world.work.read(f"{DOCS}/base/configmap.yaml").replace("data: {a: '1'}", "data: {a: '1'")
    bad = world.work.commit("docs base: one more key", {f"{DOCS}/base/configmap.yaml": broken}, "Dev Two")
    world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    wait_for(lambda: s.healthy_on("plate-docs-stg", row.revert_sha), what="plate-docs-stg healthy on the revert")
    assert reverted(s) == {bad} and row.app == "plate-docs-stg"
    assert render_failures(s) == {("plate-docs-stg", EventKind.MANIFEST_ERROR)} and blamed(s) == {bad}
    decision = s.decision("plate-docs-stg", "culprit_found")
    assert decision is not None and f"{bad[:12]} (docs base: one more key)" in decision.reason
