"""The rollout corpus on the real-timings simulator, driven by a manual clock (Argo CD minutes in wall seconds):
each failure shows as Argo CD shows it, at Argo CD's times; every healthy rollout reaches Healthy with no Degraded
app and no notification; the trees and apps served validate against the swagger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.swagger import validate
from watcher.sim.case_run import STEP
from watcher.sim.case_run import CaseRun as Run
from watcher.sim.rollouts import APP, FAILURES, HEALTHY_ROLLOUTS, RolloutCase
from watcher.sim.triggers import first_fire
from watcher.sim.world import FAST, SimWorld


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    r = Run(tmp_path)
    yield r
    r.stop()


RUNTIME = [c for c in FAILURES if c.app_degrades]


@pytest.mark.parametrize("case", RUNTIME, ids=[c.name for c in RUNTIME])
def test_a_runtime_failure_keeps_the_app_progressing_until_the_progress_deadline(run: Run, case: RolloutCase) -> None:
    pushed = run.push(case)
    run.advance(700.0)
    synced = run.synced_at()
    assert synced - pushed <= 2 * STEP + 3
    # The pods say what is wrong within a minute; the app says nothing but Progressing for ten.
    assert case.pod_reason in run.pod_reasons(synced, synced + 60.0)
    assert run.health_between(synced + STEP, synced + 600.0 - STEP) == {"Progressing"}
    assert run.health_between(synced + 600.0 + STEP, synced + 700.0) == {"Degraded"}
    fired = first_fire(run.statuses, since=pushed)
    assert fired["on-sync-failed"] is None
    assert fired["on-health-degraded"] is not None and fired["on-health-degraded"] - synced >= 600.0


SYNC_FAILURES = [c for c in FAILURES if c.sync_fails]


@pytest.mark.parametrize("case", SYNC_FAILURES, ids=[c.name for c in SYNC_FAILURES])
def test_a_failing_sync_retries_with_back_off_then_fails(run: Run, case: RolloutCase) -> None:
    pushed = run.push(case)
    run.advance(120.0)
    fired = first_fire(run.statuses, since=pushed)
    # retry limit 2 in the world: retries 10 s and 20 s after a failure (sim/retry.py), plus 3 s runs: ~40 s.
    assert fired["on-sync-failed"] is not None and fired["on-sync-failed"] - pushed < 90.0
    assert fired["on-health-degraded"] is None  # the live app was never touched: still Healthy
    state = run.statuses[-1][1]["operationState"]
    assert state["phase"] == "Failed" and "(retried 2 times)." in state["message"]


def test_a_failed_hook_is_in_the_sync_result_and_the_tree(run: Run) -> None:
    case = next(c for c in FAILURES if c.name == "failed_hook")
    run.push(case)
    run.advance(120.0)
    state = run.statuses[-1][1]["operationState"]
    assert state["message"].startswith("one or more synchronization tasks completed unsuccessfully")
    [hook] = state["syncResult"]["resources"]
    assert (hook["kind"], hook["hookType"], hook["hookPhase"]) == ("Job", "PreSync", "Failed")
    assert hook["message"] == "Job has reached the specified backoff limit"
    nodes = run.trees[-1][1]["nodes"]
    [job] = [n for n in nodes if n["kind"] == "Job"]
    assert job["health"]["status"] == "Degraded"
    [pod] = [n for n in nodes if n.get("parentRefs", [{}])[0].get("kind") == "Job"]
    assert pod["health"] == {"status": "Degraded", "message": 'container "migrate" failed with exit code 1'}


def test_a_render_error_shows_at_once_after_a_webhook(run: Run) -> None:
    """The webhook's refresh compares with CompareWithLatestForceResolve, which skips the repo error grace
    (argo-cd controller/state.go:751-762); without a webhook see tests/sim/test_conformance.py."""
    case = next(c for c in FAILURES if c.name == "render_error")
    pushed = run.push(case)
    run.advance(STEP)
    shown = [t for t, s in run.statuses if any(c["type"] == "ComparisonError" for c in s.get("conditions", []))]
    assert shown and shown[0] - pushed <= STEP
    assert run.statuses[-1][1]["sync"]["status"] == "Unknown"


@pytest.mark.parametrize("case", HEALTHY_ROLLOUTS, ids=[c.name for c in HEALTHY_ROLLOUTS])
def test_a_healthy_rollout_reaches_healthy_without_a_degraded_app(run: Run, case: RolloutCase) -> None:
    pushed = run.push(case)
    run.advance(400.0)
    synced = run.synced_at()
    assert run.health_between(pushed, synced + 400.0) <= {"Healthy", "Progressing"}
    final = run.statuses[-1][1]
    assert final["health"]["status"] == "Healthy" and final["sync"]["status"] == "Synced"
    assert final["operationState"]["phase"] == "Succeeded"
    assert set(first_fire(run.statuses, since=pushed).values()) == {None}


def test_healthy_corpus_really_shows_the_transients_it_names(run: Run) -> None:
    """The corpus is worth something only if the normal rollouts look alarming for a while at the pod level."""
    seen: set[str] = set()
    for case in (c for c in HEALTHY_ROLLOUTS if c.name in ("restart_once", "slow_pull", "surge_pending")):
        start = run.push(case)
        run.advance(300.0)
        seen |= run.pod_reasons(start, start + 300.0)
    assert {"CrashLoopBackOff", "ContainerCreating", "Pending"} <= seen


@pytest.mark.parametrize("name", ["crash_loop", "failed_hook"])
def test_served_trees_and_apps_validate_against_the_swagger(run: Run, name: str) -> None:
    case = next(c for c in FAILURES if c.name == name)
    run.push(case)
    run.advance(60.0)
    base = run.world.argocd_url
    tree = httpx.get(f"{base}/api/v1/applications/{APP}/resource-tree", timeout=10).json()
    validate(tree, "v1alpha1ApplicationTree")
    validate(httpx.get(f"{base}/api/v1/applications/{APP}", timeout=10).json(), "v1alpha1Application")
    kinds = {n["kind"] for n in tree["nodes"]}
    assert {"Deployment", "ReplicaSet", "Pod", "ConfigMap"} <= kinds
    for node in tree["nodes"]:
        assert node["createdAt"] and node["uid"] and (node["kind"] == "ConfigMap" or node["health"]["status"])
    pods = [n for n in tree["nodes"] if n["kind"] == "Pod"]
    assert all(p["images"] and p["parentRefs"][0]["kind"] in ("ReplicaSet", "Job") for p in pods)
    replica_sets = [n for n in tree["nodes"] if n["kind"] == "ReplicaSet"]
    assert all(any(i["name"] == "Revision" for i in rs["info"]) for rs in replica_sets)


def test_the_fast_timings_serve_the_same_pods_in_a_fraction_of_a_second(tmp_path: Path) -> None:
    """The other tests' fast world shows a crash loop in the tree within about a second, its app health as
    before (Degraded after the fast health delay), so end-to-end tests of rollout detection run in seconds."""
    from tests.support.waiting import wait_for

    world = SimWorld.start(tmp_path, timings=FAST)
    try:
        wait_for(
            lambda: (world.controller.get(APP) or {}).get("status", {}).get("health", {}).get("status") == "Healthy"
        )
        case = next(c for c in FAILURES if c.name == "crash_loop")
        case.commit(world.work)
        world.work.push()

        def crash_looping() -> bool:
            tree = world.controller.resource_tree(APP) or {}
            return any(
                i["value"] == "CrashLoopBackOff"
                for n in tree.get("nodes", [])
                for i in n.get("info", [])
                if n["kind"] == "Pod"
            )

        wait_for(crash_looping, timeout=120)
    finally:
        world.stop()
