"""The watcher's cycle: observe (Argo CD, git) -> detect -> record -> publish (ledger counts, metrics, listeners).

Side effects of one observation, in this order: the store records trackers and events in one transaction;
only then does memory follow (trackers), and only what was stored is published, so a crash between the two
re-observes instead of announcing an event twice. A poll of many apps is observed in slices of OBSERVED_AT_ONCE
apps, each such a transaction: apps are independent, and a slice's events, rows and JSON are garbage before
the next slice makes its own (one transaction for a first poll of 10k apps peaked at +36 MB, and the heap kept
most of it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watcher.adapters.argocd import ArgoCDError, snapshot_from_app
from watcher.adapters.gitrepo import GitError
from watcher.core.detect import AppTracker, DetectionRules, observe, observe_rollout, rollout_to_watch
from watcher.core.ledger import CLOSING_KINDS, fold, ledger_of
from watcher.core.rollout import RolloutRules, RolloutVerdict, RolloutWatch, assess
from watcher.domain import (
    INCIDENT_KINDS,
    AppContext,
    AppSnapshot,
    Clock,
    Commit,
    Event,
    EventKind,
    StoreUnavailable,
    utcnow,
)
from watcher.logs import get_logger
from watcher.metrics.fleet import StateView
from watcher.metrics.registry import Metrics
from watcher.observe.apps_listing import (
    Known,
    Listing,
    confirm_batch,
    confirm_gone,
    is_suspect,
    list_snapshots,
    read_trees,
)
from watcher.observe.commit_lookup import CommitLookup
from watcher.observe.fleet_map import FleetMap
from watcher.observe.memory import gc_paused, release_free_memory
from watcher.ports import AppSource, FleetHealth, FleetStatus, WatchedRepo
from watcher.settings import DetectionSettings, Settings
from watcher.store import Observation, Store

# Besides incidents: events whose readers (metrics, Slack) want the commit and the onset of what they close.
ENRICHED_KINDS = frozenset({EventKind.DEPLOYED, EventKind.RECOVERED, EventKind.SYNC_FAILING})
OBSERVED_AT_ONCE = 500  # apps per store transaction (see the module's docstring)


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


def _core(s: AppSnapshot | None) -> tuple[object, ...] | None:
    """The part of a snapshot whose change is worth a timeline row (messages and trimming are not)."""
    if s is None:
        return None
    return (
        s.sync_status,
        s.sync_revision,
        s.health,
        s.phase,
        s.operation_revision,
        s.retry_count,
        tuple(c.type for c in s.conditions),
    )


def _has_timer(t: AppTracker) -> bool:
    """Only grace periods and deadlines change an app's verdict without new data."""
    return any((t.manifest_error_since, t.degraded_since, t.progressing_since))


def log_event(log: Any, e: Event) -> None:
    """The one line each event logs."""
    log = log.bind(app=e.app, revision=e.revision, kind=e.kind.value)
    if e.kind in INCIDENT_KINDS:
        # The revision Argo CD deployed is often the head of a push, not the culprit: say which it is. The
        # culprit is named once blame has run (the reverter's revert_decided line).
        log.warning("failure_detected", reason=e.reason, deployed_revision=_commit_line(e.evidence.get("commit")))
    elif e.kind in CLOSING_KINDS:
        log.info("app_recovered" if e.kind is EventKind.RECOVERED else "app_removed", reason=e.reason)
    elif e.kind is EventKind.DEPLOYED:
        log.info("deploy_finished")
    else:
        log.info(f"{e.kind.value}_seen", reason=e.reason)


def _commit_line(commit: object) -> str | None:
    if not isinstance(commit, dict):
        return None
    return f"{str(commit.get('sha', ''))[:12]} by {commit.get('author', '')}: {commit.get('subject', '')}"


def enriched(e: Event, commit: Commit | None, paths: tuple[str, ...], incident_onset: datetime | None) -> Event:
    """The event with what its readers want besides the detector's facts: the app's paths, the commit, and for
    a recovery the onset of the incidents it closes."""
    extra: dict[str, object] = {"paths": list(paths)}
    if incident_onset is not None:
        extra["incident_onset"] = incident_onset.isoformat()
    if commit:
        extra["commit"] = {
            "sha": commit.sha,
            "author": commit.author,
            "subject": commit.subject,
            "committed_at": commit.committed_at.isoformat(),
        }
    return Event(e.app, e.kind, e.revision, e.at, e.reason, e.evidence | extra)


class InFlight:
    """The polls under way and since when: what /healthz reads to tell a stuck poll from a slow one."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    @contextmanager
    def track(self, source: str) -> Iterator[None]:
        self._started[source] = time.monotonic()
        try:
            yield
        finally:
            self._started.pop(source, None)

    def ages(self, now: float) -> dict[str, float]:
        return {source: now - started for source, started in list(self._started.items())}


class Watcher:
    """Observe -> record -> publish; implements ports.Fleet for the reverter, the notifier and the HTTP views."""

    def __init__(self, settings: Settings, argocd: AppSource, repo: WatchedRepo, store: Store, clock: Clock = utcnow):
        self.settings = settings
        self.argocd = argocd
        self.repo = repo
        self.store = store
        self.clock = clock
        self.rules = rules_from(settings.detection)
        self.rollout_rules = rollout_rules_from(settings.detection)
        self.rollouts: dict[str, RolloutWatch] = {}  # apps whose tree is read: since when which pod fails
        self._verdicts: dict[str, RolloutVerdict] = {}  # handed from watch_rollouts to _observe_slice
        self.log = get_logger()
        # Two locks: observers (polls, the stream, the tick) take turns under `_observing`, which may be held
        # across git and store I/O; `_lock` guards the state the HTTP views and the reverter read, and is held
        # only to copy or swap it, so /metrics and /api/apps answer while a fetch hangs.
        self._observing = threading.RLock()
        self._lock = threading.RLock()
        self.in_flight = InFlight()
        self.failing: dict[str, str] = {}  # "store" -> why its last write failed
        self.stopped = threading.Event()  # set at shutdown: nothing more is observed or written
        # Only the leader records (and so publishes); a standby's memory follows what it sees, unrecorded, and
        # is replaced by what the leader stored when it takes over. `leading` is the lease (ports.Fence). A
        # watcher on its own records, as a replica alone on its store does.
        self.recording = threading.Event()
        self.recording.set()
        self.leading: Callable[[], bool] = lambda: True
        self._moved_since_load = False  # memory differs from the store's trackers: reload on taking over
        # Deadlines pass only on fresh data: up to one list interval after the last complete list.
        self._fresh_until: datetime | None = None
        self._listed = False  # the last list poll succeeded (the rollout watch reads trees only then)
        self.trackers: dict[str, AppTracker] = store.detection.load_trackers()
        self.fleet_map = FleetMap(repo, settings.git.url)
        self.head: str | None = None
        self.last_success: dict[str, float] = {}
        self.ledger = ledger_of(store.detection.incidents(open_only=True, limit=100_000))
        # Prometheus scrapes every replica: a standby exports no per-app series, or the fleet counts twice.
        self.metrics = Metrics(
            StateView(
                lambda: self.snapshots() if self.recording.is_set() else [],
                lambda: self.ledger.open if self.recording.is_set() else {},
                self.environment,
                lambda: self._last_deploys() if self.recording.is_set() else [],
            )
        )
        self._commit = CommitLookup(repo)  # no git network call inside detection
        self._confirm_polls = 0  # turns through the apps missing from lists (apps_listing.confirm_batch)
        self.listeners: list[Callable[[Event], None]] = []

    # -- observe ----------------------------------------------------------------------------------------
    def poll_git(self) -> PollSummary:
        with self.in_flight.track("git"):
            return self._poll_git()

    def _poll_git(self) -> PollSummary:
        started = time.perf_counter()
        try:
            head = self.repo.sync()
        except GitError as exc:
            self.metrics.poll_errors.labels("git", type(exc).__name__).inc()
            self.log.warning("git_poll_failed", error=str(exc))
            return PollSummary("git poll", f"{type(exc).__name__}: {exc}", failed=True)
        finally:
            self.metrics.poll_duration.labels("git").observe(time.perf_counter() - started)
        previous = self.head
        if head != previous:
            self.log.info("git_head_moved", previous=previous, head=head)
            self.head = head
        self._mark_success("git")
        self._commit.after_fetch()
        self.fleet_map.remap(head)
        moved = "first look" if previous is None else "unchanged" if head == previous else f"moved from {previous[:12]}"
        return PollSummary("git poll", f"head {head[:12]} ({moved})")

    def poll_apps(self) -> PollSummary:
        with self.in_flight.track("argocd"):
            return self._poll_apps()

    def _poll_apps(self) -> PollSummary:
        """The safety net: a complete list, a full GET of the apps that look wrong, detection for all."""
        started = time.perf_counter()
        with self._lock:
            held = {k: t.last for k, t in self.trackers.items() if t.last is not None}
        try:
            with gc_paused():
                listing = list_snapshots(
                    self.argocd,
                    Known(held, self.fleet_map.specs()),
                    self.settings.argocd.concurrent_gets,
                    self.settings.git.url,
                )
        except ArgoCDError as exc:
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
            self.fleet_map.update(listing.specs)
            with self._lock:
                # Unchanged apps cost one comparison; tick() lets their timers expire.
                changed = [(k, s) for k, s in listing.snapshots.items() if s != self._last(k)]
            try:
                recorded = self._observe([*((k, None) for k in gone), *changed], self.clock())
            except StoreUnavailable as exc:
                return self._store_failed("apps poll", exc)
        self._mark_success("argocd")  # after the write: a poll whose facts were not kept did not succeed
        self._fresh_until = listed_at + timedelta(seconds=self.settings.argocd.list_interval_seconds)
        self._listed = True
        self.fleet_map.remap(self.head)
        release_free_memory()
        seen = f"{len(listing.snapshots)} apps listed, {len(gone)} gone"
        if listing.unreadable:
            seen += f", {len(listing.unreadable)} unreadable"
        return PollSummary("apps poll", seen, events=recorded)

    def _confirmed_gone(self, listing: Listing) -> list[str]:
        """Apps missing from the list that Argo CD confirms deleted, one GET each, a bounded batch per poll in
        turn. A suspect list removes nothing by itself (it is counted and logged), but its missing apps are
        asked about all the same: a thousand apps really deleted at once must leave, one answer at a time."""
        with self._lock:
            known = set(self.trackers)
        missing = sorted(known - set(listing.snapshots) - set(listing.unreadable))
        if is_suspect(len(missing), len(known)):
            self.metrics.suspect_lists.inc()
            self.log.warning("argocd_list_suspect", missing=len(missing), known=len(known))
        self._confirm_polls += 1
        batch = confirm_batch(missing, self._confirm_polls)
        refs = [(key, *self.fleet_map.ref(key), self.fleet_map.project(key)) for key in batch]
        return confirm_gone(self.argocd, refs, self.log)

    def _store_failed(self, step: str, exc: StoreUnavailable) -> PollSummary:
        """Loud: counted, logged, and /readyz fails until a write succeeds. Nothing observed is lost: memory
        did not follow the failed write, so the next poll observes (and records) the same again."""
        self.metrics.store_errors.inc()
        self.failing["store"] = str(exc)
        self.log.error("store_write_failed", error=str(exc))
        return PollSummary(step, str(exc), failed=True)

    def on_stream_event(self, kind: str, app: dict[str, Any]) -> None:
        self.metrics.stream_events.labels(kind).inc()
        snap = snapshot_from_app(app, complete=True, watched_repo=self.settings.git.url)
        if not snap.name:
            return
        with self._observing:
            if kind == "DELETED":
                self.fleet_map.forget(snap.key)
            else:
                self.fleet_map.remember(app)
            try:
                self._observe([(snap.key, None if kind == "DELETED" else snap)], self.clock())
            except StoreUnavailable as exc:
                self._store_failed("stream", exc)

    def on_stream_lost(self, reason: str) -> None:
        self.metrics.stream_reconnects.inc()
        self.log.warning("argocd_stream_lost", reason=reason)

    def _last(self, key: str) -> AppSnapshot | None:
        tracker = self.trackers.get(key)
        return tracker.last if tracker else None

    def tick(self) -> None:
        """Let grace periods and deadlines expire between observations, as of fresh data only: "still progressing"
        past the deadline is a fact about an app we can see, never about a snapshot from before Argo CD went
        away. While lists fail (or trickle in), the clock of the timers stops one list interval after the last."""
        fresh_until = self._fresh_until
        if fresh_until is None:
            return
        with self._observing:
            with self._lock:
                timed = [(k, t.last) for k, t in self.trackers.items() if t.last is not None and _has_timer(t)]
            try:
                self._observe(timed, min(self.clock(), fresh_until))
            except StoreUnavailable as exc:
                self._store_failed("tick", exc)

    def watch_rollouts(self) -> int:
        """Read the resource trees of the apps whose new rollout is still under way (bounded: the post-deploy
        window, at most `rollout_max_apps` a round, newest deploys first, `rollout_concurrency` reads in flight,
        each within the client's deadline) and raise rollout_failing for a rollout whose new pods keep failing.
        A tree that cannot be read is logged and counted, never a failure. How many events recorded."""
        d = self.settings.detection
        now = self.clock()
        if d.rollout_window_seconds <= 0 or not self._listed:
            return 0  # unknown state (no list yet, or the last one failed): no verdict on what may be history
        if not self.recording.is_set():
            return 0  # a standby: the leader reads the trees (Argo CD serves each once per round, not per replica)
        with self._lock:
            due = {
                k: (w, t.last)
                for k, t in self.trackers.items()
                if (w := rollout_to_watch(t, self.rollout_rules.window, now)) and t.last
            }
        self.rollouts = {k: w for k, w in self.rollouts.items() if k in due}
        chosen = sorted(due, key=lambda k: due[k][0][1], reverse=True)[: d.rollout_max_apps]
        refs = [(k, due[k][1].name, due[k][1].namespace) for k in chosen]
        verdicts: dict[str, RolloutVerdict] = {}
        for key, tree in read_trees(self.argocd, refs, d.rollout_concurrency):
            if isinstance(tree, Exception):
                self.metrics.rollout_reads.labels("failed").inc()
                self.log.warning("resource_tree_unreadable", app=key, error=str(tree), error_type=type(tree).__name__)
                continue
            self.metrics.rollout_reads.labels("read").inc()
            (revision, started), _ = due[key]
            watch, verdict = assess(
                self.rollouts.get(key, RolloutWatch()), tree, revision, started, now, self.rollout_rules
            )
            self.rollouts[key] = watch
            if verdict is not None:
                verdicts[key] = verdict
        if not verdicts:
            return 0
        with self._observing:
            with self._lock:
                seen = [(k, self._last(k)) for k in verdicts]
            self._verdicts = verdicts
            try:
                return self._observe(seen, now)
            except StoreUnavailable as exc:
                self._store_failed("rollout watch", exc)
                return 0
            finally:
                self._verdicts = {}

    def housekeeping(self) -> None:
        if not self.recording.is_set():
            return  # the leader's job
        days = self.settings.store.timeline_retention_days
        try:
            pruned = self.store.detection.prune_timeline(self.clock() - timedelta(days=days))
        except StoreUnavailable as exc:
            self._store_failed("housekeeping", exc)
            return
        self.log.info("timeline_pruned", rows=pruned, older_than_days=days)

    # -- detect -> record -> publish --------------------------------------------------------------------
    def _observe(self, seen: Sequence[tuple[str, AppSnapshot | None]], now: datetime) -> int:
        """Detect, record, publish, a slice of apps at a time, in the order given; how many events recorded."""
        return sum(
            self._observe_slice(seen[i : i + OBSERVED_AT_ONCE], now) for i in range(0, len(seen), OBSERVED_AT_ONCE)
        )

    def _observe_slice(self, seen: Sequence[tuple[str, AppSnapshot | None]], now: datetime) -> int:
        """Detect on each (app, snapshot), record everything in one transaction, then publish; how many recorded."""
        if self.stopped.is_set():
            return 0
        with self._lock:
            befores = [(key, snap, self.trackers.get(key, AppTracker())) for key, snap in seen]
        batch: list[Observation] = []
        for key, snap, before in befores:
            after, events = observe(before, snap, now, self.rules, app=key)
            verdict = self._verdicts.get(key)
            if verdict is not None and snap is not None:
                after, more = observe_rollout(after, verdict, now, app=key)
                events += more
            if after == before and not events:
                continue
            keep = after if snap is not None else None
            batch.append(Observation(key, keep, [self._enrich(e) for e in events], _core(snap) != _core(before.last)))
        if not batch:
            return 0
        recorded: list[Event] = []
        if self.recording.is_set():
            if not self.leading():
                return 0  # the lease ran out: keep nothing, observe it again once confirmed (or as a standby)
            recorded = self.store.detection.record_batch(batch, now)  # memory follows only what was stored
            self.failing.pop("store", None)
        else:
            self._moved_since_load = True  # a standby: memory follows what it sees, nothing is stored
        with self._lock:
            for item in batch:
                if item.tracker is None:
                    self.trackers.pop(item.app, None)
                else:
                    self.trackers[item.app] = item.tracker
        for event in recorded:
            self._publish(event)
        return len(recorded)

    def _enrich(self, e: Event) -> Event:
        if not e.revision or (e.kind not in INCIDENT_KINDS and e.kind not in ENRICHED_KINDS):
            return e
        commit = self._commit(e.revision)
        if not self.fleet_map.has_paths(e.app):
            self.fleet_map.remap(self.head)  # an app seen on the stream before the first full mapping
        closes = self.ledger.since.get(e.app) if e.kind is EventKind.RECOVERED else None
        return enriched(e, commit, self.fleet_map.paths_of(e.app), closes)

    def _publish(self, e: Event) -> None:
        """Count the event (the ledger says what), log it, hand it to the listeners (reverter, Slack)."""
        self.metrics.events.labels(e.kind.value).inc()
        self.ledger, counts = fold(self.ledger, e)
        self.metrics.count(e.app, self.environment(e.app), counts)
        log_event(self.log, e)
        for listener in self.listeners:
            listener(e)

    def _mark_success(self, source: str) -> None:
        now = time.time()
        self.last_success[source] = now
        self.metrics.last_success.labels(source).set(now)

    # -- leadership ---------------------------------------------------------------------------------------
    def take_over(self) -> None:
        """Start recording, from what the previous leader stored: its trackers (so nothing it recorded is
        announced again, and nothing only this standby saw is taken as announced) and its open incidents."""
        with self._observing:
            if self._moved_since_load:
                trackers = self.store.detection.load_trackers()
                with self._lock:
                    self.trackers = trackers
                self._moved_since_load = False
            self.ledger = ledger_of(self.store.detection.incidents(open_only=True, limit=100_000))
            self.recording.set()

    def stand_by(self) -> None:
        """Stop recording: observe into memory only (warm trackers, clone and app map for a fast take-over)."""
        self.recording.clear()

    # -- what others ask (ports.Fleet) --------------------------------------------------------------------
    def app_context(self, key: str) -> AppContext:
        """A consistent copy of what is known about one app, with every app's mapping fields and paths."""
        with self._lock:
            tracker = self.trackers.get(key)
        return self.fleet_map.context(key, tracker.last if tracker else None, tracker.good_revisions if tracker else ())

    def environment(self, key: str) -> str:
        return self.fleet_map.environment(key)

    def status(self) -> FleetStatus:
        with self._lock:
            trackers = dict(self.trackers)
        return FleetStatus(trackers, self.ledger.open, self.fleet_map.copies()[1], dict(self.last_success))

    def health(self) -> FleetHealth:
        return FleetHealth(dict(self.last_success), dict(self.failing), self.in_flight.ages(time.monotonic()))

    def snapshots(self) -> list[AppSnapshot]:
        with self._lock:
            return [t.last for t in self.trackers.values() if t.last is not None]

    def _last_deploys(self) -> list[tuple[str, float]]:
        with self._lock:
            return [(k, t.deployed_at.timestamp()) for k, t in self.trackers.items() if t.deployed_at is not None]
