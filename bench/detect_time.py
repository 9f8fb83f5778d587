"""Time to detect, on Argo CD's real clock: sync-watcher against Argo CD's own notification triggers.

    python bench/detect_time.py [--scale 60] [--cases bad_image,crash_loop,...] [--quiet-minutes 15]

For every failure of the simulator's rollout corpus (watcher/sim/rollouts.py), in a world of its own on
SimTimings.real() and a ScaledClock (an hour of Argo CD time in a minute at --scale 60), one commit is pushed and
Argo CD is told to refresh (as a git webhook does: the 120-180 s poll would only shift both sides alike). Printed, in
Argo CD seconds after the sync of the bad commit (its start for a failing sync, Argo CD's fetch of the commit for a
render error):
- when sync-watcher opened an incident (its first incident-kind event for the app) and of which kind;
- when Argo CD's triggers would first fire (reference/argocd/triggers: on-health-degraded, on-sync-failed,
  on-sync-status-unknown), judged over every status the simulator served for the app;
- the ratio trigger / sync-watcher (the goal: runtime failures >= 10x sooner than on-health-degraded, and under
  60 s), and the time from detection to the revert synced and healthy.
Then every healthy rollout of the corpus runs in one world, one after the other, each followed by --quiet-minutes
of Argo CD time: any incident on it is a false alarm (goal: none).
The times are those of a scaled clock: the watcher polls every 0.25 s of wall time (15 Argo CD seconds at x60), so
a detection is known to about that much.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcher.demo_real import StatusLog, real_timings_settings  # noqa: E402
from watcher.domain import INCIDENT_KINDS, Event, EventKind, RevertReport, RevertStep  # noqa: E402
from watcher.logs import configure  # noqa: E402
from watcher.ports import Listener  # noqa: E402
from watcher.run.daemon import Daemon  # noqa: E402
from watcher.sim.clock import ScaledClock  # noqa: E402
from watcher.sim.controller import SimTimings  # noqa: E402
from watcher.sim.rollouts import APP, FAILURES, HEALTHY_ROLLOUTS, RolloutCase  # noqa: E402
from watcher.sim.world import SimWorld  # noqa: E402

GOAL_RATIO = 10.0
GOAL_SECONDS = 60.0
RUNTIME = "runtime"  # a failure that shows only once the new pods run (the sync itself succeeds)


@dataclass
class Measured:
    case: str
    origin: str  # what the times count from
    detected: float | None  # Argo CD seconds after the origin
    kind: str
    triggers: dict[str, float | None]
    healed: float | None  # detection -> the revert synced and healthy (a second world, in push mode)
    reverted: tuple[str, ...]
    only_the_bad_commit: bool
    actions: tuple[str, ...] = ()  # what the reverter reported, in order


class Run(Listener):
    """One world, one watcher on its scaled clock, and what each saw."""

    def __init__(self, root: Path, scale: float, mode: str = "push"):
        self.clock = ScaledClock(scale)
        self.world = SimWorld.start(root, timings=SimTimings.real(seed=13), clock=self.clock)
        self.statuses = StatusLog(APP, self.clock)
        self.world.controller.listeners.append(self.statuses.on_change)
        self.events: list[tuple[float, Event]] = []
        self.reports: list[tuple[float, RevertReport]] = []
        self._lock = threading.Condition()
        settings = real_timings_settings(self.world, root)
        settings = settings.model_copy(update={"revert": settings.revert.model_copy(update={"mode": mode})})
        self.daemon = Daemon(settings, argocd_retry_max_wait=0.5, listeners=[self], clock=self.clock.now)
        self.fetched: dict[str, float] = {}
        self._head_watch = threading.Thread(target=self._watch_head, daemon=True)
        self._stop = threading.Event()

    def start(self, wall_timeout: float) -> None:
        self.daemon.start()
        self._head_watch.start()
        apps = {a["metadata"]["name"] for a in self.world.controller.snapshot()}
        self.wait(lambda: apps <= {e.app for _, e in self.events if e.kind is EventKind.DEPLOYED}, wall_timeout)

    def on_event(self, e: Event) -> None:
        with self._lock:
            self.events.append((self.clock.time(), e))
            self._lock.notify_all()

    def on_report(self, r: RevertReport) -> None:
        with self._lock:
            self.reports.append((self.clock.time(), r))
            self._lock.notify_all()

    def _watch_head(self) -> None:
        """When Argo CD's repo poll first saw each head (the simulator keeps no such record)."""
        while not self._stop.wait(0.005):
            head = self.world.controller.head
            if head and head not in self.fetched:
                self.fetched[head] = self.clock.time()

    def wait(self, test: Any, wall_timeout: float) -> None:
        deadline = time.monotonic() + wall_timeout
        with self._lock:
            while not test():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the simulated world did not get there in time")
                self._lock.wait(min(left, 0.2))

    def push(self, case: RolloutCase) -> str:
        sha = case.commit(self.world.work)
        self.world.work.push()
        self.world.controller.refresh()  # a git webhook
        return sha

    def incident(self, since: float) -> tuple[float, Event] | None:
        return next(((t, e) for t, e in self.events if t >= since and e.app == APP and e.kind in INCIDENT_KINDS), None)

    def stop(self) -> None:
        self._stop.set()
        self.daemon.stop()
        self.world.stop()


def sync_origin(run: Run, sha: str, case: RolloutCase) -> tuple[float | None, str]:
    """When Argo CD synced the bad commit: the sync's end for a runtime failure, its start for a failing sync,
    and for a render error (no sync at all) the repo poll that fetched it."""
    if case.kind == "render_error":
        return run.fetched.get(sha), "Argo CD fetched the commit"
    for at, status in run.statuses.snapshot():
        state = status.get("operationState") or {}
        revision = (state.get("operation") or {}).get("sync", {}).get("revision")
        if case.sync_fails and revision == sha:
            return at, "the sync started"
        if not case.sync_fails and state.get("phase") == "Succeeded" and revision == sha:
            return at, "the sync finished"
    return None, "no sync seen"


def measure_failure(case: RolloutCase, scale: float, wall_timeout: float) -> Measured:
    """Two worlds: the watcher in dry-run mode beside Argo CD's triggers (a revert would keep the app from ever
    turning Degraded, so the triggers are only comparable while nothing acts), then in push mode for the revert."""
    seen = _detect(case, scale, wall_timeout)
    healed, reverted, sha, actions = _revert(case, scale, wall_timeout)
    return Measured(case.name, *seen, healed, reverted, set(reverted) == {sha}, actions)


def _push_until_incident(run: Run, case: RolloutCase, wall_timeout: float) -> tuple[float, str, float, Event]:
    """Start the world, push the case; when it was pushed, its sha, and the first incident on the app (when, what)."""
    run.start(wall_timeout)
    pushed = run.clock.time()
    sha = run.push(case)
    run.wait(lambda: run.incident(pushed) is not None, wall_timeout)
    found = run.incident(pushed)
    assert found is not None
    return pushed, sha, found[0], found[1]


def _detect(case: RolloutCase, scale: float, wall_timeout: float) -> tuple[str, float, str, dict[str, float | None]]:
    root = Path(tempfile.mkdtemp(prefix=f"detect-{case.name}-"))
    run = Run(root, scale, mode="dry-run")
    try:
        pushed, sha, detected_at, incident = _push_until_incident(run, case, wall_timeout)
        # Past the slowest trigger: the 600 s progress deadline, a sync's retries, the 180 s repo error grace.
        run.wait(lambda: run.clock.time() > pushed + 900, wall_timeout)
        origin, origin_text = sync_origin(run, sha, case)
        base = origin if origin is not None else pushed
        triggers = {k: None if v is None else v - base for k, v in run.statuses.first(pushed).items()}
        return origin_text, detected_at - base, incident.kind.value, triggers
    finally:
        run.stop()
        shutil.rmtree(root, ignore_errors=True)


def _revert(
    case: RolloutCase, scale: float, wall_timeout: float
) -> tuple[float | None, tuple[str, ...], str, tuple[str, ...]]:
    """Detection to the revert synced and healthy (None: not within 30 Argo CD minutes), and what was reverted."""
    root = Path(tempfile.mkdtemp(prefix=f"revert-{case.name}-"))
    run = Run(root, scale, mode="push")
    try:
        _, sha, detected_at, _ = _push_until_incident(run, case, wall_timeout)
        try:
            run.wait(
                lambda: _healed(run, detected_at) is not None or run.clock.time() > detected_at + 1800, wall_timeout
            )
        except TimeoutError:
            pass
        healed = _healed(run, detected_at)
        reverted = tuple(c.sha for _, r in run.reports if r.step is RevertStep.REVERT_PUSHED for c in r.culprits)
        steps = tuple(f"{r.step}({r.detail.rule})" if r.detail.rule else str(r.step) for _, r in run.reports)
        actions = tuple(dict.fromkeys(steps))
        return None if healed is None else healed - detected_at, reverted, sha, actions
    finally:
        run.stop()
        shutil.rmtree(root, ignore_errors=True)


def _healed(run: Run, since: float) -> float | None:
    return next((t for t, e in run.events if t >= since and e.app == APP and e.kind is EventKind.RECOVERED), None)


def measure_healthy(cases: tuple[RolloutCase, ...], scale: float, quiet: float, wall_timeout: float) -> list[Any]:
    root = Path(tempfile.mkdtemp(prefix="detect-healthy-"))
    run = Run(root, scale)
    rows = []
    try:
        run.start(wall_timeout)
        for case in cases:
            pushed = run.clock.time()
            sha = run.push(case)
            run.wait(
                lambda sha=sha: any(e.kind is EventKind.DEPLOYED and e.revision == sha for _, e in run.events),
                wall_timeout,
            )
            deployed = next(t for t, e in run.events if e.kind is EventKind.DEPLOYED and e.revision == sha)
            run.wait(lambda deployed=deployed: run.clock.time() > deployed + quiet, wall_timeout)
            alarms = [e for t, e in run.events if t >= pushed and e.app == APP and e.kind in INCIDENT_KINDS]
            rows.append((case.name, case.shows, [f"{e.kind.value}: {e.reason}" for e in alarms]))
    finally:
        run.stop()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def seconds(v: float | None) -> str:
    return "never" if v is None else f"{v:7.0f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=60.0)
    p.add_argument("--cases", default="", help="failure cases to run (default: all), comma-separated")
    p.add_argument("--quiet-minutes", type=float, default=15.0, help="Argo CD minutes watched after a healthy rollout")
    p.add_argument("--no-healthy", action="store_true")
    args = p.parse_args()
    configure("error", "console")
    wall_timeout = 4 * 3600 / args.scale
    chosen = [c for c in FAILURES if not args.cases or c.name in args.cases.split(",")]
    print(f"time to detect on Argo CD's real clock (x{args.scale:g}); Argo CD seconds")
    print(
        f"{'failure':<20}{'counted from':<28}{'sync-watcher':>13}  {'kind':<18}{'Argo CD trigger':<24}{'fires':>9}"
        f"{'ratio':>8}  revert healthy after"
    )
    for case in chosen:
        m = measure_failure(case, args.scale, wall_timeout)
        name, fired = _relevant(case, m.triggers)
        ratio = f"{fired / m.detected:6.1f}x" if fired is not None and m.detected else "   n/a"
        runtime = not case.sync_fails and case.kind != "render_error"
        goal = ""
        if runtime and name == "on-health-degraded":
            ok = fired is not None and m.detected is not None and fired / max(m.detected, 1e-9) >= GOAL_RATIO
            ok = ok and m.detected is not None and m.detected < GOAL_SECONDS
            goal = "  goal >=10x and <60 s: " + ("met" if ok else "NOT met")
        print(
            f"{case.name:<20}{m.origin:<28}{seconds(m.detected):>13}  {m.kind:<18}{name:<24}{seconds(fired):>9}"
            f"{ratio:>8}  {seconds(m.healed) if m.healed is not None else 'not healed: ' + ','.join(m.actions)}"
            f"{'' if m.only_the_bad_commit else '  (reverted: ' + ','.join(s[:10] for s in m.reverted) + ')'}{goal}"
        )
    if not args.no_healthy:
        rows = measure_healthy(HEALTHY_ROLLOUTS, args.scale, args.quiet_minutes * 60, wall_timeout)
        alarms = sum(len(r[2]) for r in rows)
        print(f"\nhealthy rollouts, each watched {args.quiet_minutes:g} Argo CD minutes after its deploy")
        for name, shows, found in rows:
            print(f"  {name:<16}{'no incident' if not found else 'FALSE ALARM: ' + '; '.join(found)}   ({shows})")
        print(f"false alarms: {alarms} of {len(rows)} healthy rollouts (goal: 0)")


def _relevant(case: RolloutCase, triggers: dict[str, float | None]) -> tuple[str, float | None]:
    """The trigger a platform engineer would otherwise wait for: a failing sync's on-sync-failed, a render
    error's on-sync-status-unknown, else on-health-degraded."""
    if case.sync_fails:
        name = "on-sync-failed"
    elif case.kind == "render_error":
        name = "on-sync-status-unknown"
    else:
        name = "on-health-degraded"
    return name, triggers.get(name)


if __name__ == "__main__":
    main()
