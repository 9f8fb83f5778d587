"""The reverter on fakes of its ports: a revert that restored the live state is not called healed; a revert Argo CD
may not deploy (a deny sync window, the ApplicationSet controller's progressive sync) waits, bounded, and says why
in Slack, the audit (what `explain` prints) and the metrics instead of suspending the app.

The syncwindows answers are swagger's applicationApplicationSyncWindowsResponse (windows without timeZone,
server/application/application.go:2935-2952) and projectSyncWindowsResponse (with it, types.go:2930-2955).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.support.reverter_rig import APP, BAD, REVERT, Rig, application
from watcher.core.detect import AppTracker
from watcher.domain import AppSnapshot, Event, EventKind, Health, RevertStep, SyncStatus, VerifyResult

MakeRig = Callable[..., Rig]
NIGHT = {"kind": "deny", "schedule": "0 0 * * *", "duration": "23h59m", "manualSync": False}  # always on
NIGHT_ZONED = dict(NIGHT, timeZone="UTC", applications=["*"])


def held_by_a_window(r: Rig) -> None:
    r.argocd.windows[APP] = {"assignedWindows": [NIGHT], "activeWindows": [NIGHT], "canSync": False}
    r.argocd.project_windows["default"] = {"windows": [NIGHT_ZONED]}


def gauge(r: Rig, name: str, labels: dict[str, str] | None = None) -> float | None:
    return r.metrics.registry.get_sample_value(name, labels or {})


def test_a_revert_whose_manifests_were_already_live_restored_the_state_not_healed(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    r.reverter.handle(incident)
    r.repo.not_ancestors.add((REVERT, BAD))  # the culprit is older than its revert
    r.fleet.settle(APP, REVERT, synced=BAD)  # Synced at the revert, Argo CD's operation still the culprit's

    r.reverter.verify()

    row = r.revert_row(incident)
    assert row.verify_result is VerifyResult.RESTORED
    resolved = r.store.detection.incident(incident)
    assert resolved is not None and resolved.resolved_at == r.clock()
    assert resolved.resolution.startswith(f"revert {REVERT[:12]} restored the live state")
    assert "does not prove" in resolved.resolution
    assert r.steps() == [RevertStep.REVERT_PUSHED, RevertStep.RESTORED]
    assert gauge(r, "sync_watcher_revert_verifications_total", {"result": "restored"}) == 1
    assert gauge(r, "sync_watcher_revert_verifications_total", {"result": "healed"}) == 0
    assert r.store.audit.suspended() == {}


def test_a_revert_decision_waits_for_a_deny_window_and_says_until_when(rig: MakeRig) -> None:
    r = rig("push")
    held_by_a_window(r)
    r.clock.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule) == ("wait", "sync_window")
    assert r.repo.reverts == []  # nothing pushed that Argo CD could not deploy
    assert "held by a deny sync window (0 0 * * *, 23h59m, UTC) until 2026-11-23 23:59 UTC" in handled.reason
    assert handled.retry_in == 300.0  # looked at again every few minutes, not every 30 s for hours
    decision = r.store.audit.decisions(app=APP)[0]
    assert decision.rule == "sync_window" and decision.evidence["culprits"] == [BAD]
    assert r.steps() == [RevertStep.HELD]
    assert gauge(r, "sync_watcher_revert_waits_total", {"reason": "sync_window"}) == 1


def test_a_held_decision_turns_into_an_alert_past_the_bound(rig: MakeRig) -> None:
    r = rig("push", hold_max_seconds=3600.0)
    held_by_a_window(r)
    incident = r.fail()
    r.clock.advance(3600)

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule) == ("alert", "held_too_long") and r.repo.reverts == []


def test_a_pushed_revert_held_by_a_window_waits_past_its_deadline_instead_of_suspending(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    r.reverter.handle(incident)  # pushed while no window was active
    held_by_a_window(r)  # then a freeze began
    r.argocd.apps[APP] = application(APP, phase="Succeeded", operation_revision=BAD, sync="OutOfSync")
    r.fleet.settle(APP, BAD, Health.DEGRADED)
    r.clock.advance(r.settings.revert.verify_deadline_seconds)

    r.reverter.verify()

    row = r.revert_row(incident)
    assert row.verify_result is VerifyResult.PENDING and r.store.audit.suspended() == {}
    held = row.detail["held"]
    assert isinstance(held, dict) and held["reason"] == "sync_window" and "deny sync window" in str(held["text"])
    assert row.verify_deadline is not None and row.verify_deadline > r.clock() + timedelta(hours=1)
    assert r.steps() == [RevertStep.REVERT_PUSHED, RevertStep.HELD]
    assert gauge(r, "sync_watcher_reverts_held") == 1.0
    r.reverter.verify()  # said once, not at every pass
    assert r.steps() == [RevertStep.REVERT_PUSHED, RevertStep.HELD]


def test_a_revert_the_applicationset_controller_deploys_waits_bounded_then_says_why(rig: MakeRig) -> None:
    r = rig("push", hold_max_seconds=3600.0)
    appset = {"username": "applicationset-controller", "automated": True}
    # RollingSync: automated.enabled=false, syncs started by the ApplicationSet controller (progressive_sync.go)
    r.argocd.apps[APP] = application(APP, automated=False, initiated_by=appset)
    r.argocd.apps[APP]["spec"]["syncPolicy"] = {"automated": {"enabled": False}}
    incident = r.fail()
    handled = r.reverter.handle(incident)
    assert (handled.action, handled.rule) == ("revert", "culprit_found")  # not "no_automated_sync"
    r.fleet.settle(APP, BAD, Health.DEGRADED)
    r.clock.advance(r.settings.revert.verify_deadline_seconds)

    r.reverter.verify()
    row = r.revert_row(incident)
    assert row.verify_result is VerifyResult.PENDING and row.detail["held"]["reason"] == "progressive_sync"  # type: ignore[index]

    r.clock.advance(3600)
    r.reverter.verify()
    row = r.revert_row(incident)
    assert row.verify_result is VerifyResult.NOT_HEALED
    reason = r.store.audit.suspended()[APP].reason
    assert "did not bring the app back" in reason and "ApplicationSet controller" in reason


def test_degraded_by_pods_the_deploy_did_not_create_is_alerted_not_reverted(rig: MakeRig) -> None:
    """old-replicaset-pods-on-lost-node: the tree's pods in trouble belong to the ReplicaSet before the deploy (on a
    lost node, info.go's "Status Reason" Unknown); every pod of the new ReplicaSet is fine."""
    r = rig("push")
    started = (r.clock() - timedelta(minutes=10)).isoformat()
    app = application(APP, phase="Succeeded", operation_revision=BAD, sync="Synced", sync_revision=BAD,
                      health="Degraded")  # fmt: skip
    app["status"]["operationState"]["startedAt"] = started
    r.argocd.apps[APP] = app

    def rs(name: str, rev: int) -> dict[str, object]:
        return {"kind": "ReplicaSet", "namespace": "plate", "name": name, "uid": name,
                "parentRefs": [{"kind": "Deployment", "name": "plate-api"}],
                "info": [{"name": "Revision", "value": f"Rev:{rev}"}]}  # fmt: skip

    lost = {"kind": "Pod", "namespace": "plate", "name": "plate-api-old-4hxkq", "createdAt": "2026-11-20T13:02:11Z",
            "parentRefs": [{"kind": "ReplicaSet", "name": "plate-api-old", "uid": "plate-api-old"}],
            "info": [{"name": "Status Reason", "value": "Unknown"}], "health": {"status": "Unknown"}}  # fmt: skip
    fine = {"kind": "Pod", "namespace": "plate", "name": "plate-api-new-2kqzt", "createdAt": started,
            "parentRefs": [{"kind": "ReplicaSet", "name": "plate-api-new", "uid": "plate-api-new"}],
            "info": [{"name": "Containers", "value": "1/1"}], "health": {"status": "Healthy"}}  # fmt: skip
    r.argocd.trees[APP] = {"nodes": [rs("plate-api-old", 30), rs("plate-api-new", 31), lost, fine]}
    event = Event(APP, EventKind.DEGRADED, BAD, r.clock(), "degraded after deploy", {"onset": started})
    r.store.detection.record(APP, AppTracker(), [event], False, r.clock())
    incident = r.store.detection.find_incident(APP, EventKind.DEGRADED, BAD)
    assert incident is not None

    handled = r.reverter.handle(incident.id)

    assert (handled.action, handled.rule) == ("alert", "pods_not_from_this_deploy") and r.repo.reverts == []
    assert "plate-api-old-4hxkq" in handled.reason
    decision = r.store.audit.decisions(app=APP)[0]
    assert decision.evidence["pods_not_from_this_deploy"] == ["Pod/plate/plate-api-old-4hxkq"]


def test_a_revert_pushed_to_a_manual_sync_app_waits_for_a_person_and_says_so(rig: MakeRig) -> None:
    r = rig("push", without_auto_sync="revert", hold_max_seconds=3600.0)
    r.argocd.apps[APP] = application(APP, automated=False)
    incident = r.fail()
    assert r.reverter.handle(incident).rule == "culprit_found"  # WATCHER_REVERT__WITHOUT_AUTO_SYNC=revert
    r.clock.advance(r.settings.revert.verify_deadline_seconds)

    r.reverter.verify()

    row = r.revert_row(incident)
    assert row.verify_result is VerifyResult.PENDING and r.store.audit.suspended() == {}
    assert row.detail["held"]["reason"] == "manual_sync_app"  # type: ignore[index]
    said = r.told[-1].detail.reason
    assert r.steps()[-1] == RevertStep.HELD and "only when a person syncs it" in said
    assert gauge(r, "sync_watcher_revert_waits_total", {"reason": "manual_sync_app"}) == 1


def test_a_multi_source_apps_revert_is_confirmed_by_a_get_every_few_seconds_not_every_pass(rig: MakeRig) -> None:
    """A list row cannot carry a multi-source app's revision, so the verifier GETs the app; its passes come every
    second, its GETs every CONFIRM_EVERY (and once more at the deadline, so "did not heal" rests on a fresh answer)."""
    r = rig("push")
    incident = r.fail()
    r.reverter.handle(incident)
    r.repo.not_ancestors.add((REVERT, BAD))  # the culprit is older than its revert
    listed = AppSnapshot(APP, sync_status=SyncStatus.SYNCED, health=Health.HEALTHY, complete=False)
    r.fleet.contexts[APP] = replace(r.fleet.contexts[APP], last=listed)  # what the list shows: no revision
    r.argocd.apps[APP] = application(APP, phase="Succeeded", sync="Synced", sync_revision=BAD)  # not deployed yet
    r.argocd.calls.clear()

    def gets() -> int:
        return sum(1 for call, _, _ in r.argocd.calls if call == "get_app")

    for _ in range(4):  # four passes within CONFIRM_EVERY
        r.reverter.verify()
        r.clock.advance(1)
    assert gets() == 1 and r.revert_row(incident).verify_result is VerifyResult.PENDING
    r.argocd.apps[APP] = application(APP, phase="Succeeded", operation_revision=REVERT, sync="Synced",
                                     sync_revision=REVERT)  # fmt: skip
    r.reverter.verify()  # the answer of 4 s ago stands
    assert gets() == 1 and r.revert_row(incident).verify_result is VerifyResult.PENDING
    r.clock.advance(1)
    r.reverter.verify()
    assert gets() == 2 and r.revert_row(incident).verify_result is VerifyResult.HEALED


def test_a_multi_source_apps_revert_is_judged_not_healed_only_on_a_get_from_past_the_deadline(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    r.reverter.handle(incident)
    r.repo.not_ancestors.add((REVERT, BAD))  # the culprit is older than its revert
    listed = AppSnapshot(APP, sync_status=SyncStatus.SYNCED, health=Health.HEALTHY, complete=False)
    r.fleet.contexts[APP] = replace(r.fleet.contexts[APP], last=listed)
    r.argocd.apps[APP] = application(APP, phase="Succeeded", sync="Synced", sync_revision=BAD)
    r.clock.advance(r.settings.revert.verify_deadline_seconds - 1)
    r.reverter.verify()  # asked a second before the deadline: not deployed yet
    r.argocd.apps[APP] = application(APP, phase="Succeeded", operation_revision=REVERT, sync="Synced",
                                     sync_revision=REVERT)  # fmt: skip
    r.clock.advance(1)
    r.reverter.verify()  # at the deadline: asked again, not judged on the answer from before it
    assert r.revert_row(incident).verify_result is VerifyResult.HEALED and r.store.audit.suspended() == {}
