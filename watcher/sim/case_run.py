"""One corpus case on the real-timings simulator with a manual clock: Argo CD's minutes in a second of wall time.

For tests and benchmarks: push a case, step Argo CD time, read back the app's status and resource tree at each
step, and when Argo CD's own notification triggers fired (the baseline a watcher's detection is measured against).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from watcher.sim.clock import ManualClock
from watcher.sim.controller import SimTimings
from watcher.sim.rollouts import APP, RolloutCase
from watcher.sim.triggers import first_fire
from watcher.sim.world import SimWorld

STEP = 5.0  # Argo CD seconds per tick


class CaseRun:
    """A real-timings world on a manual clock, with the app's status and tree recorded at every step."""

    def __init__(self, root: Path, seed: int = 7, app: str = APP):
        self.app = app
        self.clock = ManualClock()
        self.world = SimWorld.start(root, timings=SimTimings.real(seed=seed), clock=self.clock)
        self.statuses: list[tuple[float, dict[str, Any]]] = []
        self.trees: list[tuple[float, dict[str, Any]]] = []
        self.sha = ""
        self.advance(30.0)

    def advance(self, seconds: float, step: float = STEP) -> None:
        end = self.clock.time() + seconds
        while self.clock.time() < end:
            self.clock.advance(step)
            self.world.controller.tick()
            app = self.world.controller.get(self.app)
            assert app is not None, f"{self.app} is gone"
            self.statuses.append((self.clock.time(), app["status"]))
            self.trees.append((self.clock.time(), self.world.controller.resource_tree(self.app) or {}))

    def push(self, case: RolloutCase, webhook: bool = True) -> float:
        """Commit and push the case, and refresh as a webhook would (Argo CD syncs at the next step); without
        the webhook Argo CD sees it at its own resync (sim/refresh.py)."""
        self.sha = case.commit(self.world.work)
        self.world.work.push()
        if webhook:
            self.world.controller.refresh()
        return self.clock.time()

    def synced_at(self) -> float | None:
        """When the operation on the pushed revision finished (whatever its outcome)."""
        for t, s in self.statuses:
            state = s.get("operationState") or {}
            if state.get("finishedAt") and (state.get("syncResult") or {}).get("revision") == self.sha:
                return t
        return None

    def health_between(self, start: float, end: float) -> set[str]:
        return {s["health"]["status"] for t, s in self.statuses if start <= t <= end}

    def pod_reasons(self, start: float, end: float) -> set[str]:
        return {
            i["value"]
            for t, tree in self.trees
            if start <= t <= end
            for n in tree.get("nodes", [])
            if n["kind"] == "Pod"
            for i in n.get("info", [])
            if i["name"] == "Status Reason"
        }

    def triggers(self, since: float) -> dict[str, float | None]:
        return first_fire(self.statuses, since)

    def stop(self) -> None:
        self.world.stop()


def argocd_baseline(root: Path, case: RolloutCase, horizon: float = 900.0) -> dict[str, float | None]:
    """Seconds from the push to the sync finishing and to each of Argo CD's triggers firing (None: not within
    `horizon` Argo CD seconds). The render error case has no sync: its first ComparisonError is given instead."""
    run = CaseRun(root)
    try:
        pushed = run.push(case)
        run.advance(horizon)
        synced = run.synced_at()
        errors = [t for t, s in run.statuses if any(c["type"] == "ComparisonError" for c in s.get("conditions", []))]
        out: dict[str, float | None] = {
            "synced": None if synced is None else synced - pushed,
            "comparison_error": errors[0] - pushed if errors else None,
        }
        out |= {k: None if v is None else v - pushed for k, v in run.triggers(pushed).items()}
        return out
    finally:
        run.stop()
