"""The simulator's sync windows and progressive sync, against swagger.json and Argo CD's behaviour.

- GET .../applications/{name}/syncwindows is applicationApplicationSyncWindowsResponse, windows without timeZone,
  canSync as for a manual sync (server/application/application.go:2887-2952); GET /api/v1/projects/{name}/
  syncwindows is projectSyncWindowsResponse, the active windows whole (server/project/project.go:526-548).
- A deny window blocks auto-sync silently (controller/appcontroller.go:2002-2019): the app stays OutOfSync.
- An ApplicationSet's RollingSync app (automated.enabled=false) is synced by that controller, as
  initiatedBy {username: applicationset-controller, automated: true}, no revision in operation.sync
  (applicationset/progressivesync/progressive_sync.go:825-897).
"""

from __future__ import annotations

from typing import Any

import httpx
import yaml

from tests.support.revert_world import values_path
from tests.support.swagger import validate
from tests.support.waiting import wait_for
from watcher.sim.world import SimWorld

APP = "plate-api-stg"
ALWAYS_DENY = {"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": [APP],
               "manualSync": True, "timeZone": "Europe/Berlin"}  # fmt: skip


def app(world: SimWorld, name: str = APP) -> dict[str, Any]:
    return dict(httpx.get(f"{world.argocd_url}/api/v1/applications/{name}", timeout=10).json())


def synced_at_head(world: SimWorld, name: str = APP) -> bool:
    status = app(world, name)["status"]
    head = world.work.git("rev-parse", "HEAD")
    return status["sync"].get("revision") == head and status["sync"]["status"] == "Synced"


def test_sync_windows_answers_validate_and_drop_the_time_zone(world: SimWorld) -> None:
    world.controller.windows.set("default", [ALWAYS_DENY])
    answer = httpx.get(f"{world.argocd_url}/api/v1/applications/{APP}/syncwindows", timeout=10).json()
    validate(answer, "applicationApplicationSyncWindowsResponse")
    brief = {"kind": "deny", "schedule": "* * * * *", "duration": "1h", "manualSync": True}
    assert answer == {"assignedWindows": [brief], "activeWindows": [brief], "canSync": True}  # as for a manual sync
    other = httpx.get(f"{world.argocd_url}/api/v1/applications/plate-web-stg/syncwindows", timeout=10).json()
    assert other == {"canSync": True}  # no window assigned: empty lists left out
    project = httpx.get(f"{world.argocd_url}/api/v1/projects/default/syncwindows", timeout=10).json()
    validate(project, "projectSyncWindowsResponse")
    assert project == {"windows": [ALWAYS_DENY]}


def test_a_deny_window_blocks_auto_sync_silently_until_it_is_gone(world: SimWorld) -> None:
    wait_for(lambda: synced_at_head(world), what="synced", timeout=120)
    world.controller.windows.set("default", [ALWAYS_DENY])
    path = values_path(APP)
    world.work.commit("api: bump", {path: world.work.set_value(path, "image.tag", "2.4.1")})
    world.work.push()
    head = world.work.git("rev-parse", "HEAD")

    def out_of_sync_at_head() -> bool:
        sync = app(world)["status"]["sync"]
        return sync.get("status") == "OutOfSync" and sync.get("revision") == head

    wait_for(out_of_sync_at_head, what="OutOfSync at head", timeout=120)
    status = app(world)["status"]
    assert status["operationState"]["syncResult"]["revision"] != head and not status.get("conditions")
    world.controller.windows.set("default", [])
    wait_for(lambda: synced_at_head(world), what="synced once the window is gone", timeout=120)


def test_the_applicationset_controller_syncs_a_rolling_sync_app(world: SimWorld) -> None:
    wait_for(lambda: synced_at_head(world), what="synced", timeout=120)
    manifest_path = f"environments/argocd/apps/{APP}.yaml"
    manifest = yaml.safe_load(world.work.read(manifest_path))
    manifest["metadata"]["ownerReferences"] = [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": "plate-api", "uid": "0a1b"}
    ]
    manifest["spec"]["syncPolicy"]["automated"] = {**manifest["spec"]["syncPolicy"]["automated"], "enabled": False}
    path = values_path(APP)
    world.work.commit("api: rolled out by an ApplicationSet", {manifest_path: yaml.safe_dump(manifest)})
    world.work.commit("api: bump", {path: world.work.set_value(path, "image.tag", "2.4.1")})
    world.work.push()
    wait_for(lambda: synced_at_head(world), what="synced by the ApplicationSet controller", timeout=120)
    shown = app(world)
    validate(shown, "v1alpha1Application")
    op = shown["status"]["operationState"]["operation"]
    assert op["initiatedBy"] == {"username": "applicationset-controller", "automated": True}
    assert "revision" not in op["sync"] and op["info"][0]["name"] == "Reason"
    assert shown["status"]["operationState"]["syncResult"]["revision"] == world.work.git("rev-parse", "HEAD")


def test_a_manual_sync_is_refused_while_a_window_blocks_it(world: SimWorld) -> None:
    """application.go:2091-2097: PermissionDenied (HTTP 403) unless every active deny allows manual syncs."""
    world.controller.windows.set("default", [dict(ALWAYS_DENY, manualSync=False)])
    refused = httpx.post(f"{world.argocd_url}/api/v1/applications/{APP}/sync", json={}, timeout=10)
    assert refused.status_code == 403 and refused.json()["message"] == "cannot sync: blocked by sync window"
    validate(refused.json(), "runtimeError")
    world.controller.windows.set("default", [ALWAYS_DENY])  # manualSync: true lets a person through
    allowed = httpx.post(f"{world.argocd_url}/api/v1/applications/{APP}/sync", json={}, timeout=10)
    assert allowed.status_code in (200, 400)  # 400: an operation already running, not the window
