"""The pre-flight wing on fakes of its ports: which apps are asked about, how often, and what each verdict does."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from watcher.core.appmap import OPT_ANNOTATION
from watcher.core.detect import AppTracker
from watcher.core.notices import Notice
from watcher.core.preflight import REVERT_ANNOTATION, Render, Verdict
from watcher.domain import AppContext, AppSnapshot, ChangedCommit, Commit, Event, EventKind
from watcher.metrics.preflight import PreflightMetrics
from watcher.ports import FleetHealth, FleetStatus
from watcher.preflight.wing import SEEN_KEPT, Preflight
from watcher.settings import load_settings
from watcher.store import Store

REPO = "https://git.example.com/org/gitops.git"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD, GOOD, BAD = "a" * 40, "b" * 40, "c" * 40
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "plate"}}


def app_fields(name: str, path: str, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "argocd", "annotations": dict(annotations or {})}
    return {"metadata": meta, "spec": {"sources": [{"repoURL": REPO, "path": path, "targetRevision": "main"}]}}


class FakeFleet:
    def __init__(self, specs: dict[str, dict[str, Any]], paths: dict[str, tuple[str, ...]]):
        self.specs, self.paths = specs, paths
        snap = AppSnapshot(name="x", sync_revision=OLD)
        self.trackers = {k: AppTracker(last=AppSnapshot(name=k, sync_revision=snap.sync_revision)) for k in specs}

    def status(self) -> FleetStatus:
        return FleetStatus(self.trackers, {}, self.paths, {})

    def app_context(self, key: str) -> AppContext:
        meta = self.specs.get(key, {}).get("metadata", {})
        return AppContext(key, key, "", dict(meta.get("annotations") or {}), None, (), self.specs, self.paths)

    def environment(self, key: str) -> str:
        return key.rsplit("-", 1)[-1]

    def health(self) -> FleetHealth:
        return FleetHealth({}, {}, {})


class FakeRepo:
    def __init__(self) -> None:
        self.heads = {"main": OLD}
        self.pushed: list[ChangedCommit] = []

    def local_heads(self) -> dict[str, str]:
        return dict(self.heads)

    def changes(self, since: str, until: str, paths: Any, limit: int) -> tuple[list[ChangedCommit], bool]:
        return list(reversed(self.pushed)), False

    def push(self, sha: str, files: tuple[str, ...]) -> None:
        commit = Commit(sha, "Dev One", T0, f"change {sha[:4]}", parents=(self.heads["main"],))
        self.pushed.append(ChangedCommit(commit, files))
        self.heads["main"] = sha


class FakeRenderer:
    def __init__(self, renders: Mapping[str, Render]):
        self.renders = renders
        self.asked: list[tuple[str, str, int]] = []

    def manifests(self, name: str, namespace: str, revision: str, position: int) -> Render:
        self.asked.append((name, revision, position))
        return self.renders[revision]

    def cluster_version(self, server: str) -> str | None:
        return "v1.30.2"


class FakeReverts:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def revert_before_sync(self, app: str, commit: Commit, branch: str, synced: Any, evidence: Any, also: Any) -> str:
        self.asked.append((app, commit.sha))
        return "pushed"


class FakeStatuses:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    def post(self, sha: str, state: str, context: str, description: str, target_url: str = "") -> None:
        self.posted.append((sha, state, context))


RENDERS = {
    OLD: Render((DEPLOYMENT,)),
    GOOD: Render((DEPLOYMENT | {"spec": {"replicas": 3}},)),
    BAD: Render(error="boom"),
}


@pytest.fixture
def rig(tmp_path: Path) -> dict[str, Any]:
    specs = {
        "api-stg": app_fields("api-stg", "apps/api/stg"),
        "api-prod": app_fields("api-prod", "apps/api/prod"),
        "web-stg": app_fields("web-stg", "apps/web/stg", {REVERT_ANNOTATION: "true"}),
    }
    fleet = FakeFleet(specs, {k: (s["spec"]["sources"][0]["path"],) for k, s in specs.items()})
    settings = load_settings(git={"url": REPO}, preflight={"revert_environments": ["stg"]})
    store = Store(f"sqlite:///{tmp_path}/state.db")
    parts: dict[str, Any] = {
        "fleet": fleet, "repo": FakeRepo(), "renderer": FakeRenderer(RENDERS), "reverts": FakeReverts(),
        "statuses": FakeStatuses(), "store": store, "registry": CollectorRegistry(),
    }  # fmt: skip
    clock = iter(T0 + timedelta(seconds=i) for i in range(1000))
    wing = Preflight(
        settings, fleet, parts["repo"], parts["renderer"], store.preflight, PreflightMetrics(parts["registry"]),
        statuses=parts["statuses"], reverts=parts["reverts"], clock=lambda: next(clock),
    )  # fmt: skip
    parts["wing"] = wing
    parts["notices"] = []
    wing.listeners.append(parts["notices"].append)
    wing.check()  # the first look: what is there was there before
    return parts


def test_only_the_apps_a_commit_changed_are_asked_about_each_once(rig: dict[str, Any]) -> None:
    rig["repo"].push(GOOD, ("apps/api/stg/values.yaml",))
    judged = rig["wing"].check()
    assert [(j.app, j.verdict) for j in judged] == [("api-stg", Verdict.RENDERS)]
    assert rig["renderer"].asked == [("api-stg", GOOD, 1), ("api-stg", OLD, 1)]  # the commit, the synced revision
    assert rig["wing"].check() == [] and len(rig["renderer"].asked) == 2  # nothing new: nobody asked again
    assert rig["statuses"].posted == [(GOOD, "success", "sync-watcher/preflight: api-stg")]
    assert rig["notices"] == [] and rig["reverts"].asked == []


def test_a_failing_render_is_never_asked_again_and_warns_once(rig: dict[str, Any]) -> None:
    rig["repo"].push(BAD, ("apps/api/prod/values.yaml",))
    judged = rig["wing"].check()
    assert [(j.app, j.verdict, j.action) for j in judged] == [("api-prod", Verdict.WILL_FAIL_TO_RENDER, "warned")]
    rig["wing"]._heads = {"main": OLD}  # the same push seen again (a restart): the store says it was judged
    assert rig["wing"].check() == [] and len(rig["renderer"].asked) == 2
    notice: Notice = rig["notices"][0]
    assert (notice.app, notice.revision, notice.argocd_message) == ("api-prod", BAD, "boom")
    assert rig["reverts"].asked == []  # prod is not opted in
    assert rig["statuses"].posted[0][:2] == (BAD, "failure")


def test_opted_in_a_failing_render_is_handed_to_the_reverter(rig: dict[str, Any]) -> None:
    rig["repo"].push(BAD, ("apps/api/stg/values.yaml", "apps/web/stg/values.yaml"))
    judged = {j.app: j for j in rig["wing"].check()}
    assert judged["api-stg"].action == "revert: pushed" and judged["web-stg"].action == "revert: pushed"
    assert sorted(rig["reverts"].asked) == [("api-stg", BAD), ("web-stg", BAD)]


def test_an_opt_out_annotation_wins_over_the_environment(rig: dict[str, Any]) -> None:
    rig["fleet"].specs["api-stg"]["metadata"]["annotations"][REVERT_ANNOTATION] = "false"
    rig["repo"].push(BAD, ("apps/api/stg/values.yaml",))
    assert [j.action for j in rig["wing"].check()] == ["warned"]
    assert rig["reverts"].asked == [] and OPT_ANNOTATION != REVERT_ANNOTATION


def test_argo_cds_verdict_keeps_score_and_a_disagreement_pauses_local_checks(rig: dict[str, Any]) -> None:
    rig["repo"].push(GOOD, ("apps/api/stg/values.yaml",))
    rig["wing"].check()
    later = T0 + timedelta(minutes=3)
    rig["wing"].on_event(Event("api-stg", EventKind.MANIFEST_ERROR, GOOD, later, "ComparisonError"))
    registry = rig["registry"]
    assert registry.get_sample_value("sync_watcher_preflight_agreement_total", {"agreed": "false"}) == 1
    assert registry.get_sample_value("sync_watcher_preflight_agreement_total", {"agreed": "true"}) == 0  # shown
    for v in Verdict:  # every verdict's series from the start: 0 on a dashboard, not "no data"
        assert registry.get_sample_value("sync_watcher_preflight_verdicts_total", {"verdict": v.value}) is not None
    assert rig["store"].preflight.paused() == {"api-stg": "pre-flight said renders, Argo CD render_failed"}
    assert registry.get_sample_value("sync_watcher_argocd_detect_lag_seconds_count") == 1
    rig["wing"].on_event(Event("api-stg", EventKind.MANIFEST_ERROR, GOOD, later, "again"))  # scored once
    assert registry.get_sample_value("sync_watcher_preflight_agreement_total", {"agreed": "false"}) == 1
    assert rig["store"].preflight.reset("api-stg") and rig["store"].preflight.paused() == {}


def test_the_detect_lag_is_measured_for_commits_seen_within_a_day_and_then_forgotten(rig: dict[str, Any]) -> None:
    """A commit the watcher saw a day ago and Argo CD compares only now is not a detect lag of a day: its first
    sight is forgotten once newer commits arrive (the daemon runs for months; it keeps a day of them)."""
    wing, registry = rig["wing"], rig["registry"]
    rig["repo"].push(GOOD, ("apps/api/stg/values.yaml",))
    wing.check()
    a_day_on = iter(T0 + SEEN_KEPT + timedelta(minutes=5, seconds=i) for i in range(1000))
    wing.clock = lambda: next(a_day_on)
    rig["repo"].pushed.clear()  # the fake's `changes` ignores `since`: only BAD arrives now
    rig["repo"].push(BAD, ("apps/web/stg/values.yaml",))
    wing.check()
    wing.on_event(Event("api-prod", EventKind.DEPLOYED, GOOD, T0 + SEEN_KEPT, "synced"))
    wing.on_event(Event("web-stg", EventKind.DEPLOY_STARTED, BAD, T0 + SEEN_KEPT, "syncing"))
    assert registry.get_sample_value("sync_watcher_argocd_detect_lag_seconds_count") == 1  # BAD's, not GOOD's


def test_argo_cd_unreachable_is_cannot_judge_with_no_alarm(rig: dict[str, Any]) -> None:
    rig["renderer"].renders = RENDERS | {GOOD: Render(unreachable="HTTP 403")}
    rig["repo"].push(GOOD, ("apps/api/stg/values.yaml",))
    assert [j.verdict for j in rig["wing"].check()] == [Verdict.CANNOT_JUDGE]
    assert rig["notices"] == [] and rig["statuses"].posted[0][1] == "success"
