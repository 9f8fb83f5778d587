"""`sync-watcher demo --real-timings`: the demo's story on Argo CD's real clock (scaled: an hour in about a minute).

Argo CD here compares each app every 120 s plus a 0-60 s jitter of its own, resolving the branch through a
3-minute cache (so it first sees a push 0-7 min later, median about 2 min 15 s), ignores a render error for
180 s, keeps a crash-looping app Progressing until the Deployment's 600 s progress deadline (sim/refresh.py;
docs/argocd-conformance.md rows 10-14 and 22 cite argo-cd for each).
The watcher reads the same scaled clock: its grace periods and deadlines are in Argo CD seconds (its defaults),
its polling intervals in wall seconds. One push carries two good changes around a bad one: an image that
crash-loops. Every time printed is Argo CD time after the push.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watcher.demo import SlackPreview, Timeline, revert_summary
from watcher.domain import INCIDENT_KINDS, Event, EventKind, RevertStep
from watcher.run.daemon import Daemon
from watcher.sim.clock import ScaledClock
from watcher.sim.controller import SimApp, SimTimings
from watcher.sim.rollouts import APP, CASES
from watcher.sim.triggers import first_fire
from watcher.sim.world import SimWorld

DEFAULT_SCALE = 60.0
PROGRESS_DEADLINE_SECONDS = (
    600.0  # a Deployment's spec.progressDeadlineSeconds by default  # an hour of Argo CD time in a minute
)
WALL_POLL_SECONDS = 0.25  # the watcher's list and git polls, on the wall clock (15 Argo CD seconds at scale 60)
GOOD_CHANGES = [
    ("plate-web", "image.tag", "1.26.0", "plate-web-stg: bump image to 1.26.0", "Dev One"),
    # The same app as the bad commit: blame alone would revert both; narrowing names the image's commit.
    ("plate-api", "config.greeting", "hello", "plate-api-stg: greet in the api's config", "Dev One"),
    ("plate-cache", "image.tag", "7.2.5", "plate-cache-stg: bump redis to 7.2.5", "Dev Three"),
]


class StatusLog:
    """The sim's status of one app each time it changed, stamped with Argo CD time (for the trigger clock)."""

    def __init__(self, app: str, clock: ScaledClock):
        self.app, self.clock = app, clock
        self.entries: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def on_change(self, kind: str, app: SimApp) -> None:
        if app.name == self.app:
            with self._lock:
                self.entries.append((self.clock.time(), copy.deepcopy(app.status)))

    def synced(self, revision: str) -> float | None:
        """When Argo CD finished syncing `revision` (whatever the outcome)."""
        with self._lock:
            for at, status in self.entries:
                state = status.get("operationState") or {}
                if state.get("finishedAt") and (state.get("syncResult") or {}).get("revision") == revision:
                    return at
        return None

    def compared(self, revision: str) -> float | None:
        """When Argo CD's first compare at `revision` was written (its sync.revision moved there)."""
        with self._lock:
            return next((at for at, s in self.entries if (s.get("sync") or {}).get("revision") == revision), None)

    def snapshot(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return list(self.entries)

    def first(self, since: float) -> dict[str, float | None]:
        with self._lock:
            return first_fire(list(self.entries), since)


def run_real_timings_demo(workdir: Path | None = None, scale: float = DEFAULT_SCALE) -> dict[str, Any]:
    root = Path(workdir or tempfile.mkdtemp(prefix="sync-watcher-demo-real-"))
    clock = ScaledClock(scale)
    timeline, slack = Timeline(), SlackPreview()
    world = SimWorld.start(root, timings=SimTimings.real(seed=13), clock=clock)
    statuses = StatusLog(APP, clock)
    world.controller.listeners.append(statuses.on_change)
    daemon: Daemon | None = None
    argo_wait = 3600.0 / scale * 1.5  # wall seconds for up to 1.5 h of Argo CD time per step
    try:
        # Grace periods and deadlines in Argo CD time.
        settings = real_timings_settings(world, root)
        daemon = Daemon(settings, argocd_retry_max_wait=0.5, listeners=[timeline, slack], clock=clock.now)
        daemon.start()
        for app in sorted(a["metadata"]["name"] for a in world.controller.snapshot()):
            timeline.wait_for(_on(app, {EventKind.DEPLOYED}), argo_wait)

        commits = _push(world)
        pushed = clock.time()
        bad = next(c for c in commits if not c["good"])
        timeline.wait_for(_on(APP, {EventKind.DEPLOYED}, commits[-1]["sha"]), argo_wait)
        incident = timeline.wait_for(_on(APP, set(INCIDENT_KINDS)), argo_wait)
        detected = clock.time()
        reverted_report = timeline.wait_report(RevertStep.REVERT_PUSHED, argo_wait)
        reverted = clock.time()
        timeline.wait_report((RevertStep.RECOVERED, RevertStep.RESTORED), argo_wait)
        recovered = clock.time()
        synced_at = statuses.synced(commits[-1]["sha"])
        synced = None if synced_at is None else round(synced_at - pushed, 1)
        compared_at = statuses.compared(commits[-1]["sha"])
        triggers = statuses.first(pushed)
        revert_sha = str(reverted_report.detail.revert)
        revert_commit = daemon.repo.commit(revert_sha)
        return {
            "scale": scale,
            "commits": commits,
            "argocd_seconds_after_push": {
                "compared": None if compared_at is None else round(compared_at - pushed, 1),
                "synced": synced,
                "detected": round(detected - pushed, 1),
                "revert_pushed": round(reverted - pushed, 1),
                "recovered": round(recovered - pushed, 1),
                **{k: None if v is None else round(v - pushed, 1) for k, v in triggers.items()},
            },
            "detected": {"kind": incident.kind.value, "revision": incident.revision, "app": incident.app},
            "revert": {
                "sha": revert_sha,
                **revert_summary(revert_commit, bad["sha"]),
            },
            "wall_seconds": round(time.monotonic() - timeline.started, 1),
            "slack": slack.lines,
        }
    finally:
        if daemon is not None:
            daemon.stop()
        world.stop()
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def real_timings_settings(world: SimWorld, root: Path) -> Any:
    """The watcher's settings for a real-timings world: grace periods and deadlines at their defaults (Argo CD
    seconds), polls in wall seconds."""
    settings = world.watcher_settings(root, poll_seconds=WALL_POLL_SECONDS)
    detection = settings.detection.model_copy(
        update={
            "comparison_error_grace_seconds": 120.0,
            "degraded_grace_seconds": 120.0,
            "progress_deadline_seconds": 600.0,
            "rollout_interval_seconds": WALL_POLL_SECONDS,  # wall seconds, as the polls
        }
    )
    revert = settings.revert.model_copy(update={"mode": "push"})
    return settings.model_copy(update={"detection": detection, "revert": revert})


def _push(world: SimWorld) -> list[dict[str, Any]]:
    """One push of four commits: good changes to plate-web and to plate-api's config, the crash-looping image of
    plate-api, another good change."""
    commits = []
    web, api, cache = GOOD_CHANGES
    for change in (web, api, None, cache):
        if change is None:
            case = CASES["crash_loop"]
            commits.append(
                {"sha": case.commit(world.work), "subject": case.subject, "author": "Dev Two", "good": False}
            )
            continue
        svc, key, value, subject, author = change
        values = f"helm/applications/{svc}/values-stg.yaml"
        sha = world.work.commit(subject, {values: world.work.set_value(values, key, value)}, author)
        commits.append({"sha": sha, "subject": subject, "author": author, "good": True})
    world.work.push()
    return commits


def _on(app: str, kinds: set[EventKind], revision: str | None = None) -> Callable[[Event], bool]:
    return lambda e: e.app == app and e.kind in kinds and revision in (None, e.revision)


def render_real_text(result: dict[str, Any]) -> str:
    t = result["argocd_seconds_after_push"]

    def at(seconds: float | None) -> str:
        return "never" if seconds is None else f"+{int(seconds) // 60}:{int(seconds) % 60:02d}"

    bad = next(c for c in result["commits"] if not c["good"])
    same_app = [c for c in result["commits"] if c["good"] and c["subject"].startswith(f"{APP}:")]
    only_bad = "only the bad commit" + (
        f"; narrowed: {', '.join(c['sha'][:10] for c in same_app)} also changed {APP} and stays" if same_app else ""
    )
    degraded = t.get("on-health-degraded")
    after_sync = t["detected"] - t["synced"]
    # The revert usually lands before the progress deadline, so Argo CD's trigger never fires in this run: it
    # would have at the deadline (bench/detect_time.py measures it, with the watcher in dry-run).
    deadline = degraded if degraded is not None else t["synced"] + PROGRESS_DEADLINE_SECONDS
    ratio = f"{(deadline - t['synced']) / after_sync:.1f}x" if after_sync > 0 else "n/a"
    events: list[tuple[float | None, str]] = [
        (0.0, "pushed (no webhook)"),
        (
            t.get("compared"),
            f"Argo CD's first compare of {APP} at the push (its resync: 120 s + 0-60 s jitter, 3 min branch cache)",
        ),
        (t["synced"], f"Argo CD synced {APP}"),
        (t["detected"], f"sync-watcher DETECTED {result['detected']['kind']} on {APP}"),
        (
            t["revert_pushed"],
            f"sync-watcher REVERTED {bad['sha'][:10]} "
            f"({only_bad if result['revert']['only_the_bad_commit'] else 'NOT only the bad commit'})",
        ),
        (t["recovered"], f"{APP} synced and healthy on the revert"),
        (
            deadline,
            "Argo CD's on-health-degraded notification would fire (app Degraded: progress deadline 600 s)"
            + ("" if degraded is not None else ", had nothing reverted"),
        ),
        (t.get("on-sync-failed"), "Argo CD's on-sync-failed notification would fire"),
    ]
    timed = sorted((e for e in events if e[0] is not None), key=lambda e: float(e[0] or 0))
    lines = [
        f"sync-watcher demo on Argo CD's real clock (x{result['scale']:g}; Argo CD time, min:s after the push)",
        "",
        *[
            f"  commit {c['sha'][:10]} {c['author']:<10} {c['subject']}{'' if c['good'] else '  <- crash-loops'}"
            for c in result["commits"]
        ],
        "",
        *[f"  {at(seconds):>7}  {text}" for seconds, text in timed],
        *[f"  {'never':>7}  {text}" for seconds, text in events if seconds is None],
        "",
        f"Argo CD first compared {APP} {at(t.get('compared'))} after the push: the lead a watcher of git has",
        f"time to detect after the sync: {after_sync:.0f} s; Argo CD's on-health-degraded: {ratio} that",
        f"the run took {result['wall_seconds']}s of wall time",
    ]
    return "\n".join(lines)
