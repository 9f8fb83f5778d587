"""The whole watcher (real HTTP to the simulator, its store, its rollout watch) on the real-timings simulator with
a manual clock, for every case of the rollout corpus that runs pods: a crash loop is one `rollout_failing` incident
soon after the sync and nothing else; a healthy rollout opens no incident at all, to past the progress deadline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.listening import OnEvent
from tests.support.no_repo import NoRepo
from watcher.adapters.argocd import ArgoCDClient
from watcher.domain import INCIDENT_KINDS, Event, EventKind
from watcher.observe.cycle import Watcher
from watcher.sim.case_run import CaseRun
from watcher.sim.rollouts import APP, CASES, HEALTHY_ROLLOUTS
from watcher.store import Store

ROUND = 10.0  # Argo CD seconds between the watcher's rounds (its default rollout interval)
HORIZON = 700.0  # past the Deployment's 600 s progress deadline


def run_case(tmp_path: Path, case: str) -> tuple[float, list[tuple[float, Event]]]:
    """(when the sync of the case's commit finished, every event with its Argo CD time), the watcher on defaults."""
    run = CaseRun(tmp_path / "world")
    settings = run.world.watcher_settings(tmp_path / "watcher", poll_seconds=ROUND)
    defaults = type(settings.detection)()  # Argo CD time: the production grace periods and deadlines
    settings = settings.model_copy(update={"detection": defaults})
    argocd = ArgoCDClient(settings.argocd, retry_max_wait=0.1)
    heard: list[tuple[float, Event]] = []
    watcher = Watcher(
        settings, argocd, NoRepo(), Store(settings.store.url), clock=lambda: _at(run.clock.time()),  # type: ignore[arg-type]
        listeners=[OnEvent(lambda e: heard.append((run.clock.time(), e)))],
    )  # fmt: skip

    def rounds(seconds: float) -> None:
        for _ in range(int(seconds / ROUND)):
            run.advance(ROUND)
            watcher.poll_apps()
            watcher.tick()
            watcher.watch_rollouts()

    try:
        rounds(30)
        heard.clear()
        pushed = run.push(CASES[case])
        rounds(HORIZON)
        synced = run.synced_at()
        assert synced is not None
        return synced - pushed, [(t - pushed, e) for t, e in heard]
    finally:
        argocd.close()
        run.stop()


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def test_a_crash_loop_is_one_rollout_failing_incident_a_minute_after_the_sync(tmp_path: Path) -> None:
    synced, heard = run_case(tmp_path, "crash_loop")
    incidents = [(t, e) for t, e in heard if e.kind in INCIDENT_KINDS]
    assert [(e.app, e.kind) for _, e in incidents] == [(APP, EventKind.ROLLOUT_FAILING)]
    t, event = incidents[0]
    assert t - synced <= 60, f"named {t - synced:.0f} s after the sync"
    assert {p["reason"] for p in event.evidence["failing_pods"]} <= {"CrashLoopBackOff", "Running", "restarting"}  # type: ignore[union-attr]
    assert event.evidence["failing_images"] == ["harbor.plate.local/plate/plate-api:2.6.1"]


@pytest.mark.parametrize("case", ["bad_image", "missing_secret_key", "invalid_image_name", "failed_hook"])
def test_every_failure_the_tree_shows_is_one_rollout_failing_incident(tmp_path: Path, case: str) -> None:
    synced, heard = run_case(tmp_path, case)
    incidents = [(t, e.app, e.kind) for t, e in heard if e.kind in INCIDENT_KINDS]
    assert [(a, k) for _, a, k in incidents] == [(APP, EventKind.ROLLOUT_FAILING)], incidents
    assert incidents[0][0] - synced <= 60


@pytest.mark.parametrize("case", [c.name for c in HEALTHY_ROLLOUTS])
def test_a_healthy_rollout_opens_no_incident(tmp_path: Path, case: str) -> None:
    _, heard = run_case(tmp_path, case)
    assert [(t, e.kind, e.reason) for t, e in heard if e.kind in INCIDENT_KINDS] == []
