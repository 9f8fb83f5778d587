"""The watcher's cycle: the polls, the stream, the tick and the rollout watch, each handing what it saw to one
observation (observe/recording.py: detect -> look up -> record -> publish) of the fleet state (fleet_state.py).

Observers take turns under one lock (`_observing`), which may be held across git and store I/O; the fleet state
has its own, held only to copy or swap, so the HTTP views and the reverter read it while a fetch hangs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watcher.core.detect import DetectionRules
from watcher.core.lease import ALONE_FENCE
from watcher.core.rollout import RolloutRules, RolloutVerdict
from watcher.core.snapshots import snapshot_from_app
from watcher.domain import AppSnapshot, Clock, RetryLater, StoreUnavailable, utcnow
from watcher.logs import get_logger
from watcher.metrics.registry import Metrics
from watcher.observe.apps_listing import Known, Listing, confirm_batch, confirm_gone, is_suspect, list_snapshots
from watcher.observe.fleet_map import FleetMap
from watcher.observe.fleet_state import FleetState
from watcher.observe.memory import gc_paused, release_free_memory
from watcher.observe.recording import Recorder
from watcher.observe.rollout_reads import RolloutReads
from watcher.ports import AppSource, Fence, Listener, WatchedRepo
from watcher.settings import DetectionSettings, Settings
from watcher.store import Store


@dataclass(frozen=True, slots=True)
class PollSummary:
    """What one poll saw and recorded, as the one line `run --once` prints."""

    step: str  # "git poll" | "apps poll"
    seen: str  # what it saw, or why it failed
    events: int | None = None  # events recorded (None: the step records none)
    failed: bool = False

    def sentence(self) -> str:
        if self.failed:
            return f"{self.step}: FAILED, {self.seen}"
        if self.events is None:
            return f"{self.step}: {self.seen}"
        return f"{self.step}: {self.seen}, {self.events} event{'' if self.events == 1 else 's'} recorded"


def rules_from(d: DetectionSettings) -> DetectionRules:
    return DetectionRules(
        comparison_error_grace=timedelta(seconds=d.comparison_error_grace_seconds),
        degraded_grace=timedelta(seconds=d.degraded_grace_seconds),
        progress_deadline=timedelta(seconds=d.progress_deadline_seconds),
        attribution_window=timedelta(seconds=d.attribution_window_seconds),
        failed_after_retries=d.failed_after_retries,
    )


def rollout_rules_from(d: DetectionSettings) -> RolloutRules:
    return RolloutRules(
        grace=timedelta(seconds=d.rollout_grace_seconds),
        restarts=d.rollout_restarts,
        window=timedelta(seconds=d.rollout_window_seconds),
    )


class Watcher:
    """The sources of observations (polls, stream, tick, rollout watch) and the role they observe in."""

    def __init__(
        self,
        settings: Settings,
        argocd: AppSource,
        repo: WatchedRepo,
        store: Store,
        clock: Clock = utcnow,
        *,
        state: FleetState | None = None,
        metrics: Metrics | None = None,
        fence: Fence = ALONE_FENCE,
        listeners: Sequence[Listener] = (),
    ):
        self.settings = settings
        self.argocd = argocd
        self.repo = repo
        self.store = store
        self.clock = clock
        self.log = get_logger()
        self.state = state or FleetState(store.detection, FleetMap(repo, settings.git.url))
        self.metrics = metrics or Metrics(self.state.view())
        self.recorder = Recorder(
            self.state, store.detection, repo, rules_from(settings.detection), self.metrics, fence, listeners
        )
        self.stopped = self.recorder.stopped
        self.rollout_reads = RolloutReads(argocd, rollout_rules_from(settings.detection), self.metrics)
        self._observing = threading.RLock()  # observers take turns (see the module's docstring)
        # Deadlines pass only on fresh data: up to one list interval after the last complete list.
        self._fresh_until: datetime | None = None
        self._listed = False  # the last list poll succeeded (the rollout watch reads trees only then)
        self._confirm_polls = 0  # turns through the apps missing from lists (apps_listing.confirm_batch)

    # -- observe ----------------------------------------------------------------------------------------
    def poll_git(self) -> PollSummary:
        with self.state.in_flight.track("git"):
            return self._poll_git()

    def _poll_git(self) -> PollSummary:
        started = time.perf_counter()
        try:
            head = self.repo.sync()
        except RetryLater as exc:
            self.metrics.poll_errors.labels("git", type(exc).__name__).inc()
            self.log.warning("git_poll_failed", error=str(exc))
            return PollSummary("git poll", f"{type(exc).__name__}: {exc}", failed=True)
        finally:
            self.metrics.poll_duration.labels("git").observe(time.perf_counter() - started)
        previous = self.state.head
        if head != previous:
            self.log.info("git_head_moved", previous=previous, head=head)
            self.state.head = head
        self._mark_success("git")
        self.recorder.fetch_missing_commits()  # what detection could not name: one bounded fetch, here
        self.state.fleet_map.remap(head)
        moved = "first look" if previous is None else "unchanged" if head == previous else f"moved from {previous[:12]}"
        return PollSummary("git poll", f"head {head[:12]} ({moved})")

    def poll_apps(self) -> PollSummary:
        with self.state.in_flight.track("argocd"):
            return self._poll_apps()

    def _poll_apps(self) -> PollSummary:
        """The safety net: a complete list, a full GET of the apps that look wrong, detection for all."""
        started = time.perf_counter()
        fleet_map = self.state.fleet_map
        try:
            with gc_paused():
                known = Known(self.state.held(), fleet_map.specs())
                a = self.settings.argocd
                listing = list_snapshots(self.argocd, known, a.concurrent_gets, self.settings.git.url)
        except RetryLater as exc:
            self.metrics.poll_errors.labels("argocd", type(exc).__name__).inc()
            self.metrics.argocd_up.set(0)
            self._listed = False
            self.log.warning("argocd_poll_failed", error=str(exc), error_type=type(exc).__name__)
            # unknown state: nothing is decided on a failed poll
            return PollSummary("apps poll", f"Argo CD unreachable ({type(exc).__name__}: {exc})", failed=True)
        finally:
            self.metrics.poll_duration.labels("argocd").observe(time.perf_counter() - started)
        self.metrics.argocd_up.set(1)
        listed_at = self.clock()
        for key, why in listing.unreadable.items():
            self.metrics.unreadable_apps.inc()
            self.log.warning("app_unreadable", app=key, reason=why)
        gone = self._confirmed_gone(listing)
        with self._observing:
            fleet_map.update(listing.specs)
            changed = self.state.changed(listing.snapshots)
            try:
                recorded = self.recorder.observe([*((k, None) for k in gone), *changed], self.clock())
            except StoreUnavailable as exc:
                return self._store_failed("apps poll", exc)
        self._mark_success("argocd")  # after the write: a poll whose facts were not kept did not succeed
        self._fresh_until = listed_at + timedelta(seconds=self.settings.argocd.list_interval_seconds)
        self._listed = True
        fleet_map.remap(self.state.head)
        release_free_memory()
        seen = f"{len(listing.snapshots)} apps listed, {len(gone)} gone"
        if listing.unreadable:
            seen += f", {len(listing.unreadable)} unreadable"
        return PollSummary("apps poll", seen, events=recorded)

    def _confirmed_gone(self, listing: Listing) -> list[str]:
        """Apps missing from the list that Argo CD confirms deleted, one GET each, a bounded batch per poll in
        turn. A suspect list removes nothing by itself (it is counted and logged), but its missing apps are
        asked about all the same: a thousand apps really deleted at once must leave, one answer at a time."""
        known = self.state.known()
        missing = sorted(known - set(listing.snapshots) - set(listing.unreadable))
        if is_suspect(len(missing), len(known)):
            self.metrics.suspect_lists.inc()
            self.log.warning("argocd_list_suspect", missing=len(missing), known=len(known))
        self._confirm_polls += 1
        batch = confirm_batch(missing, self._confirm_polls)
        # Named with its project as last listed (Argo CD's "default" for none): another project answers 404 for an
        # app that exists (server/application/application.go:237-245), which would read as deleted.
        refs = [
            (key, *self.state.fleet_map.ref(key), (last.project if last else "") or "default")
            for key, last in self.state.lasts(batch)
        ]
        return confirm_gone(self.argocd, refs, self.log)

    def _store_failed(self, step: str, exc: StoreUnavailable) -> PollSummary:
        """Loud: counted, logged, and /readyz fails until a write succeeds. Nothing observed is lost: memory
        did not follow the failed write, so the next poll observes (and records) the same again."""
        self.metrics.store_errors.inc()
        self.state.failing["store"] = str(exc)
        self.log.error("store_write_failed", error=str(exc))
        return PollSummary(step, str(exc), failed=True)

    def _observe(
        self, step: str, seen: Sequence[tuple[str, AppSnapshot | None]], now: datetime,
        verdicts: dict[str, RolloutVerdict] | None = None,
    ) -> int:  # fmt: skip
        """One observation, in turn with the other observers; a failed write is loud and records nothing."""
        with self._observing:
            try:
                return self.recorder.observe(seen, now, verdicts)
            except StoreUnavailable as exc:
                self._store_failed(step, exc)
                return 0

    def on_stream_event(self, kind: str, app: dict[str, Any]) -> None:
        self.metrics.stream_events.labels(kind).inc()
        snap = snapshot_from_app(app, complete=True, watched_repo=self.settings.git.url)
        if not snap.name:
            return
        with self._observing:
            if kind == "DELETED":
                self.state.fleet_map.forget(snap.key)
            else:
                self.state.fleet_map.remember(app)
            self._observe("stream", [(snap.key, None if kind == "DELETED" else snap)], self.clock())

    def on_stream_lost(self, reason: str) -> None:
        self.metrics.stream_reconnects.inc()
        self.log.warning("argocd_stream_lost", reason=reason)

    def tick(self) -> None:
        """Let grace periods and deadlines expire between observations, as of fresh data only: "still progressing"
        past the deadline is a fact about an app we can see, never about a snapshot from before Argo CD went
        away. While lists fail (or trickle in), the clock of the timers stops one list interval after the last."""
        fresh_until = self._fresh_until
        if fresh_until is None:
            return
        with self._observing:
            self._observe("tick", self.state.timed(), min(self.clock(), fresh_until))

    def watch_rollouts(self) -> int:
        """Read the resource trees of the apps whose new rollout is still under way (bounded: the post-deploy
        window, at most `rollout_max_apps` a round, newest deploys first, `rollout_concurrency` reads in flight,
        each within the client's deadline) and raise rollout_failing for a rollout whose new pods keep failing.
        A tree that cannot be read is logged and counted, never a failure. How many events recorded."""
        d = self.settings.detection
        now = self.clock()
        if d.rollout_window_seconds <= 0 or not self._listed:
            return 0  # unknown state (no list yet, or the last one failed): no verdict on what may be history
        if not self.state.recording.is_set():
            return 0  # a standby: the leader reads the trees (Argo CD serves each once per round, not per replica)
        due = self.state.rollouts_due(self.rollout_reads.rules.window, now)
        verdicts = self.rollout_reads.verdicts(due, d.rollout_max_apps, d.rollout_concurrency, now)
        if not verdicts:
            return 0
        with self._observing:
            return self._observe("rollout watch", self.state.lasts(verdicts), now, verdicts)

    def housekeeping(self) -> None:
        if not self.state.recording.is_set():
            return  # the leader's job
        days = self.settings.store.timeline_retention_days
        try:
            pruned = self.store.detection.prune_timeline(self.clock() - timedelta(days=days))
        except StoreUnavailable as exc:
            self._store_failed("housekeeping", exc)
            return
        self.log.info("timeline_pruned", rows=pruned, older_than_days=days)

    def _mark_success(self, source: str) -> None:
        self.metrics.last_success.labels(source).set(self.state.mark_success(source))

    # -- leadership ---------------------------------------------------------------------------------------
    def take_over(self) -> None:
        """Start recording, from what the previous leader stored: its trackers (so nothing it recorded is
        announced again, and nothing only this standby saw is taken as announced) and its open incidents."""
        with self._observing:
            self.state.reload(self.store.detection, trackers_too=self.recorder.moved_since_load)
            self.recorder.moved_since_load = False
            self.state.recording.set()

    def stand_by(self) -> None:
        """Stop recording: observe into memory only (warm trackers, clone and app map for a fast take-over)."""
        self.state.recording.clear()
