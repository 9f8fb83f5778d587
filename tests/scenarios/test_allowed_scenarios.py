"""Verification, identity and what Argo CD may do, end to end: the simulator on real git, the whole daemon, and the
exact commits reverted with the decision's rule.

The simulator serves Argo CD's shapes: a revert whose manifests are already live compares Synced with no sync
(controller/appcontroller.go:2020-2024, :2538-2543); a new head that leaves an app alone moves its
status.sync.revision with no sync (controller/state.go:1093-1106); a deny sync window stops auto-sync silently
(appcontroller.go:2002-2019) and GET .../syncwindows answers as server/application/application.go:2887-2952;
RollingSync apps are synced by the ApplicationSet controller (applicationset/progressivesync/
progressive_sync.go:825-897).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import yaml
from click.testing import CliRunner

from tests.support.revert_world import Scenario, values_path
from tests.support.waiting import wait_for
from watcher.cli import main
from watcher.domain import Event, EventKind
from watcher.sim.world import SimWorld

APP = "plate-api-stg"
FAILURES = {EventKind.DEGRADED, EventKind.ROLLOUT_FAILING, EventKind.STUCK_PROGRESSING}


def argocd_app(world: SimWorld, name: str = APP) -> dict[str, Any]:
    return dict(httpx.get(f"{world.argocd_url}/api/v1/applications/{name}", timeout=10).json())


def test_a_revert_argo_cd_synced_is_healed(world: SimWorld, scenario: Callable[..., Scenario]) -> None:
    s = scenario().start()
    bad = s.push("plate-api-stg: image 9.9.9", {APP: ("image.tag", "9.9.9")})  # a tag the registry does not have
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)
    done = wait_for(lambda: [r for r in s.revert_rows() if r.verify_result], what="verified", timeout=120)[0]
    assert done.verify_result == "healed"  # the revert changed the cluster: Argo CD ran a sync of it
    op = argocd_app(world)["status"]["operationState"]
    assert op["phase"] == "Succeeded" and op["syncResult"]["revision"] == row.revert_sha
    incident = s.d.store.detection.incidents(app=APP)[0]
    assert incident.resolved_at is not None


def test_a_newer_commit_to_another_app_does_not_end_the_failure(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """branch-moves-degraded-app-marked-synced: c2 only touches plate-web-stg; Argo CD shows plate-api-stg Synced at
    c2 with no sync (its operation still c1's), and the reverter still reverts c1, and only c1."""
    s = scenario()
    moved: list[str] = []

    def push_c2_first(e: Event) -> None:  # before the reverter hears of the failure
        if e.app == APP and e.kind in FAILURES and not moved:
            moved.append(s.push("plate-web-stg: bump to 1.26.0", {"plate-web-stg": ("image.tag", "1.26.0")}))
            world.controller.refresh()
            wait_for(lambda: argocd_app(world)["status"]["sync"].get("revision") == moved[0], what="moved to c2")

    s.start(before=push_c2_first)
    bad = s.push("plate-api-stg: image 9.9.9", {APP: ("image.tag", "9.9.9")})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed", timeout=120)[0]
    assert row.culprits == (bad,) and moved
    status = argocd_app(world)["status"]
    assert status["operationState"]["operation"]["sync"]["revision"] in (bad, row.revert_sha)  # never c2's
    decision = s.decision(APP)
    assert decision is not None and decision.rule == "culprit_found"
    assert s.decision(APP, "no_longer_failing") is None
    assert yaml.safe_load(s.remote_file(values_path("plate-web-stg")))["image"]["tag"] == "1.26.0"  # c2 kept
    assert len(s.bot_commits()) == 1


def test_a_deny_sync_window_holds_the_revert_until_it_ends(world: SimWorld, scenario: Callable[..., Scenario]) -> None:
    """sync-window-deny-active-timezone: the failure shows during a freeze. The reverter waits for the window's end
    (read from the project's window, in its time zone), says why, then reverts the culprit and Argo CD deploys it."""
    s = scenario()
    window: list[dict[str, Any]] = []

    def freeze(e: Event) -> None:  # a deny window begins as the failure shows; it ends a few seconds later
        if e.app == APP and e.kind in FAILURES and not window:
            now = datetime.now(UTC)
            window.append({"kind": "deny", "schedule": f"{now.minute} {now.hour} * * *",
                           "duration": f"{now.second + 6}s", "applications": ["*-stg"], "timeZone": "UTC"})  # fmt: skip
            world.controller.windows.set("default", window)

    s.start(before=freeze)
    bad = s.push("plate-api-stg: image 9.9.9", {APP: ("image.tag", "9.9.9")})
    held = wait_for(lambda: s.decision(APP, "sync_window"), what="held by the window", timeout=120)
    assert held.action == "wait" and "held by a deny sync window" in held.reason and "until" in held.reason
    assert held.evidence["culprits"] == [bad] and s.bot_commits() == []
    metric = s.d.watcher.metrics.registry.get_sample_value
    assert metric("sync_watcher_revert_waits_total", {"reason": "sync_window"}) == 1
    api = f"http://127.0.0.1:{s.d.http.port}"
    explained = CliRunner().invoke(main, ["explain", APP, "--url", api])
    assert "WAIT (sync_window)" in explained.output and "held by a deny sync window" in explained.output
    row = wait_for(lambda: s.revert_rows("pushed"), what="reverted once the window ended", timeout=120)[0]
    assert row.culprits == (bad,)
    wait_for(lambda: s.revert_rows()[0].verify_result == "healed", what="deployed after the window", timeout=120)


def test_a_rolling_sync_app_is_reverted_and_the_applicationset_controller_deploys_it(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """rollingsync-stg-degraded-prod-waiting: automated.enabled=false, synced by the ApplicationSet controller: not
    `no_automated_sync`, the culprit is reverted and the controller's sync of the revert heals it."""
    manifest_path = f"environments/argocd/apps/{APP}.yaml"
    manifest = yaml.safe_load(world.work.read(manifest_path))
    manifest["metadata"]["ownerReferences"] = [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": "plate-api", "uid": "0a1b"}
    ]
    manifest["spec"]["syncPolicy"]["automated"] = {**manifest["spec"]["syncPolicy"]["automated"], "enabled": False}
    world.work.commit("plate-api-stg: rolled out by an ApplicationSet", {manifest_path: yaml.safe_dump(manifest)})
    world.work.push()
    s = scenario().start()
    bad = s.push("plate-api-stg: image 9.9.9", {APP: ("image.tag", "9.9.9")})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed", timeout=120)[0]
    assert row.culprits == (bad,)
    decision = s.decision(APP)
    assert decision is not None and decision.rule == "culprit_found"
    done = wait_for(lambda: [r for r in s.revert_rows() if r.verify_result], what="verified", timeout=120)[0]
    assert done.verify_result == "healed"
    op = argocd_app(world)["status"]["operationState"]["operation"]
    assert op["initiatedBy"] == {"username": "applicationset-controller", "automated": True}
