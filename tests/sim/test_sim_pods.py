"""The simulated pods: the kubelet's states over time and the health gitops-engine gives them (pure, table-driven),
the info items argo-cd fills, a Deployment's rollout and its progress deadline, and the trigger clock."""

from __future__ import annotations

import time

import pytest

from tests.support.waiting import wait_for
from watcher.sim.clock import ManualClock, ScaledClock
from watcher.sim.pods import ImageBehaviour, PodSpec, go_duration, pod_info, pod_state
from watcher.sim.rollout import Placement, Rollout
from watcher.sim.triggers import fire_times, first_fire

IMAGE = "harbor.plate.local/plate/plate-api:2.6.1"
RUNS = PodSpec(IMAGE, ImageBehaviour())
CRASHES = PodSpec(IMAGE, ImageBehaviour(crash_after=2.0))
MISSING = PodSpec(IMAGE, None)
ONCE = PodSpec(IMAGE, ImageBehaviour(exits_once_after=3.0))
NO_KEY = PodSpec(IMAGE, ImageBehaviour(), config_error="couldn't find key token in Secret plate-stg/plate-api-db")
BAD_NAME = PodSpec("harbor.plate.local/plate/Plate-API:2.6.1", ImageBehaviour())
HOOK_MISSING = PodSpec(IMAGE, None, restart_policy="Never")
HOOK_CRASHES = PodSpec(IMAGE, ImageBehaviour(crash_after=1.0), restart_policy="Never")


@pytest.mark.parametrize(
    ("spec", "scheduled", "at", "reason", "health", "restarts", "ready"),
    [
        (RUNS, None, 50.0, "Pending", "Progressing", 0, False),  # unschedulable
        (RUNS, 0.0, 1.0, "ContainerCreating", "Progressing", 0, False),
        (RUNS, 0.0, 3.0, "Running", "Progressing", 0, False),  # started, readiness probe not passed yet
        (RUNS, 0.0, 6.0, "Running", "Healthy", 0, True),
        (MISSING, 0.0, 2.5, "ErrImagePull", "Degraded", 0, False),
        (MISSING, 0.0, 8.0, "ImagePullBackOff", "Degraded", 0, False),
        (MISSING, 0.0, 13.5, "ErrImagePull", "Degraded", 0, False),  # the second try, 10 s later
        (CRASHES, 0.0, 3.0, "Running", "Progressing", 0, False),  # not crashed yet
        (CRASHES, 0.0, 5.0, "CrashLoopBackOff", "Degraded", 1, False),
        (CRASHES, 0.0, 15.0, "Running", "Degraded", 1, False),  # up again, not ready, lastTerminationState set
        (CRASHES, 0.0, 20.0, "CrashLoopBackOff", "Degraded", 2, False),
        (CRASHES, 0.0, 600.0, "CrashLoopBackOff", "Degraded", 6, False),
        (ONCE, 0.0, 6.0, "CrashLoopBackOff", "Degraded", 1, False),  # a healthy rollout looks bad for 10 s
        (ONCE, 0.0, 16.0, "Running", "Degraded", 1, False),
        (ONCE, 0.0, 20.0, "Running", "Healthy", 1, True),
        (NO_KEY, 0.0, 3.0, "CreateContainerConfigError", "Degraded", 0, False),
        # gitops-engine's pod health matches Err*, *Error and *BackOff only: InvalidImageName stays Progressing.
        (BAD_NAME, 0.0, 3.0, "InvalidImageName", "Progressing", 0, False),
        # A hook's pod (restartPolicy Never) is never Degraded for a waiting reason; it fails when it exits.
        (HOOK_MISSING, 0.0, 8.0, "ImagePullBackOff", "Progressing", 0, False),
        (HOOK_CRASHES, 0.0, 4.0, "Error", "Degraded", 0, False),
    ],
)
def test_pod_state_follows_the_kubelet_and_gitops_engine(
    spec: PodSpec, scheduled: float | None, at: float, reason: str, health: str, restarts: int, ready: bool
) -> None:
    state = pod_state(spec, scheduled, at, pod="p_ns")
    assert (state.reason, state.health, state.restarts, state.ready) == (reason, health, restarts, ready)


def test_crash_loop_back_off_doubles_to_five_minutes() -> None:
    messages = {pod_state(CRASHES, 0.0, float(t), pod="p").message for t in range(0, 3000)}
    backoffs = {m.split()[1] for m in messages if m.startswith("back-off")}
    assert backoffs == {"10s", "20s", "40s", "1m20s", "2m40s", "5m0s"}
    assert go_duration(300) == "5m0s"


def test_pod_info_items_are_argo_cds() -> None:
    spec = PodSpec(IMAGE, ImageBehaviour(crash_after=2.0), cpu_millis=250, memory_bytes=64 * 1024 * 1024)
    info = pod_info(spec, pod_state(spec, 0.0, 20.0), "node-2")
    assert info == [
        {"name": "Status Reason", "value": "CrashLoopBackOff"},
        {"name": "Node", "value": "node-2"},
        {"name": "Containers", "value": "0/1"},
        {"name": "Restart Count", "value": "2"},
        {"name": "cpu", "value": "250"},
        {"name": "memory", "value": str(64 * 1024 * 1024 * 1000)},
    ]


def _roll(rollout: Rollout, placement: Placement, until: float, step: float = 1.0) -> list[tuple[float, str]]:
    seen, t = [], rollout.last_progress
    while t < until:
        t += step
        rollout.advance(t, placement)
        seen.append((t, rollout.health(t)[0]))
    return seen


def test_a_crash_looping_rollout_is_progressing_until_the_deadline_and_keeps_the_old_pod() -> None:
    rollout, room = Rollout("api", "plate-stg"), Placement()
    rollout.deploy(RUNS, 1, 0.0, room)
    _roll(rollout, room, 30.0)
    rollout.deploy(CRASHES, 1, 30.0, room)
    seen = _roll(rollout, room, 700.0)
    assert {h for t, h in seen if t <= 630.0} == {"Progressing"}
    assert {h for t, h in seen if t > 631.0} == {"Degraded"}
    assert rollout.health(700.0)[1] == 'Deployment "api" exceeded its progress deadline'
    old, new = rollout.sets
    assert len(old.pods) == 1 and rollout.state(old, old.pods[0], 700.0).ready  # the old pod still serves


def test_surge_pods_wait_for_room_then_the_rollout_completes() -> None:
    rollout, room = Rollout("api", "plate-stg"), Placement(cpu_millis=4000)
    one_cpu = PodSpec(IMAGE, ImageBehaviour(), cpu_millis=1000)
    rollout.deploy(PodSpec(IMAGE.replace("2.6.1", "2.5.0"), ImageBehaviour(), cpu_millis=1000), 4, 0.0, room)
    _roll(rollout, room, 30.0)
    rollout.deploy(one_cpu, 4, 30.0, room)
    rollout.advance(31.0, room)
    pending = [p for p in rollout.sets[-1].pods if p.scheduled_at is None]
    assert pending, "a surge pod does not fit beside the old ones"
    assert rollout.state(rollout.sets[-1], pending[0], 31.0).health == "Progressing"
    seen = _roll(rollout, room, 200.0)
    assert "Degraded" not in {h for _, h in seen} and seen[-1][1] == "Healthy"
    assert [len(rs.pods) for rs in rollout.sets] == [0, 4]


def test_scale_down_keeps_the_replica_set() -> None:
    rollout, room = Rollout("api", "plate-stg"), Placement()
    rollout.deploy(RUNS, 3, 0.0, room)
    _roll(rollout, room, 30.0)
    rollout.deploy(RUNS, 1, 30.0, room)
    assert len(rollout.sets) == 1 and len(rollout.sets[0].pods) == 1 and rollout.health(31.0)[0] == "Healthy"


def test_a_rollback_reuses_the_earlier_replica_set_with_a_new_revision() -> None:
    rollout, room = Rollout("api", "plate-stg"), Placement()
    for at, spec in ((0.0, RUNS), (30.0, CRASHES), (60.0, RUNS)):
        rollout.deploy(spec, 1, at, room)
    assert [(rs.spec, rs.revision) for rs in rollout.sets] == [(CRASHES, 2), (RUNS, 3)]
    names = [n["name"] for n in rollout.nodes(61.0, {"status": "Progressing"}) if n["kind"] == "ReplicaSet"]
    assert len(names) == len(set(names))


def _status(health: str, phase: str | None = None, revision: str = "r1", sync: str = "Synced") -> dict[str, object]:
    status: dict[str, object] = {"health": {"status": health}, "sync": {"status": sync}}
    if phase:
        status["operationState"] = {"phase": phase, "syncResult": {"revision": revision}}
    return status


def test_trigger_clock_fires_once_per_sync_result_revision() -> None:
    timeline = [
        (0.0, _status("Healthy", "Succeeded")),
        (10.0, _status("Progressing", "Succeeded", "r2")),
        (600.0, _status("Degraded", "Succeeded", "r2")),
        (650.0, _status("Degraded", "Succeeded", "r2")),  # still degraded: no second notification
        (700.0, _status("Healthy", "Succeeded", "r2")),
        (800.0, _status("Degraded", "Succeeded", "r2")),  # degraded again on the same revision: oncePer holds
        (900.0, _status("Degraded", "Failed", "r3")),
        (950.0, _status("Degraded", "Failed", "r3", sync="Unknown")),  # a render error: no sync, status Unknown
    ]
    assert fire_times(timeline) == {
        "on-health-degraded": [600.0, 900.0],
        "on-sync-failed": [900.0],
        "on-sync-status-unknown": [950.0],
    }
    assert first_fire(timeline, since=700.0) == {
        "on-health-degraded": 900.0,
        "on-sync-failed": 900.0,
        "on-sync-status-unknown": 950.0,
    }
    assert first_fire(timeline[:3]) == {
        "on-health-degraded": 600.0,
        "on-sync-failed": None,
        "on-sync-status-unknown": None,
    }


def test_trigger_conditions_are_argo_cds_catalog() -> None:
    from tests.support.tools import reference

    degraded = reference("argocd", "triggers/on-health-degraded.yaml").read_text()
    failed = reference("argocd", "triggers/on-sync-failed.yaml").read_text()
    unknown = reference("argocd", "triggers/on-sync-status-unknown.yaml").read_text()
    assert "app.status.health.status == 'Degraded'" in degraded
    assert "app.status.operationState.phase in ['Error', 'Failed']" in failed
    assert "app.status.sync.status == 'Unknown'" in unknown
    assert all("oncePer: app.status.operationState?.syncResult?.revision" in t for t in (degraded, failed, unknown))


def test_scaled_clock_runs_scale_times_faster() -> None:
    clock = ScaledClock(120.0)
    start, wall = clock.time(), time.monotonic()
    wait_for(lambda: clock.time() - start >= 12.0, timeout=120)
    assert 12.0 <= clock.time() - start <= (time.monotonic() - wall) * 120.0 + 1
    assert abs(clock.now().timestamp() - clock.time()) < 1
    manual = ManualClock(100.0)
    manual.advance(5)
    assert manual.time() == 105.0
