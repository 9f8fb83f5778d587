"""What the watcher knows of the fleet between observations: trackers, open incidents, poll health. One lock.

The cycle (observe/cycle.py) writes it; the reverter, the notifier, the HTTP views and the metrics collector read
it through ports.Fleet and StateView. The lock is held only to copy or swap, never across git or store I/O, so
/metrics and /api/apps answer while a fetch hangs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from watcher.core.detect import AppTracker, rollout_to_watch
from watcher.core.ledger import IncidentLedger, LedgerCounts, fold, ledger_of
from watcher.domain import AppContext, AppSnapshot, Event
from watcher.metrics.fleet import StateView
from watcher.observe.fleet_map import FleetMap
from watcher.ports import FleetHealth, FleetStatus
from watcher.store import Observation
from watcher.store.detection import DetectionRecords

OPEN_INCIDENTS_LOADED = 100_000
Seen = Sequence[tuple[str, AppSnapshot | None]]  # (app, snapshot; None: the app is gone)


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


def _has_timer(t: AppTracker) -> bool:
    """Only grace periods and deadlines change an app's verdict without new data."""
    return any((t.manifest_error_since, t.degraded_since, t.progressing_since))


class FleetState:
    """Trackers, the incident ledger, the app map and poll health; implements ports.Fleet."""

    def __init__(self, records: DetectionRecords, fleet_map: FleetMap):
        self._lock = threading.RLock()
        self.fleet_map = fleet_map
        self.trackers: dict[str, AppTracker] = records.load_trackers()
        self.ledger: IncidentLedger = ledger_of(records.incidents(open_only=True, limit=OPEN_INCIDENTS_LOADED))
        # Only the leader records (and so publishes); a standby's memory follows what it sees, unrecorded, and
        # is replaced by what the leader stored when it takes over. A watcher on its own records, as a replica
        # alone on its store does.
        self.recording = threading.Event()
        self.recording.set()
        self.head: str | None = None  # the first watched branch's head, as of the last git poll
        self.last_success: dict[str, float] = {}
        self.failing: dict[str, str] = {}  # "store" -> why its last write failed
        self.in_flight = InFlight()

    # -- what the cycle reads and writes ------------------------------------------------------------------
    def last(self, key: str) -> AppSnapshot | None:
        tracker = self.trackers.get(key)
        return tracker.last if tracker else None

    def held(self) -> dict[str, AppSnapshot]:
        with self._lock:
            return {k: t.last for k, t in self.trackers.items() if t.last is not None}

    def known(self) -> set[str]:
        with self._lock:
            return set(self.trackers)

    def changed(self, snapshots: dict[str, AppSnapshot]) -> list[tuple[str, AppSnapshot | None]]:
        """Unchanged apps cost one comparison; tick() lets their timers expire."""
        with self._lock:
            return [(k, s) for k, s in snapshots.items() if s != self.last(k)]

    def lasts(self, keys: Iterable[str]) -> list[tuple[str, AppSnapshot | None]]:
        with self._lock:
            return [(k, self.last(k)) for k in keys]

    def timed(self) -> list[tuple[str, AppSnapshot | None]]:
        """The apps a grace period or deadline may change without new data."""
        with self._lock:
            return [(k, t.last) for k, t in self.trackers.items() if t.last is not None and _has_timer(t)]

    def rollouts_due(self, window: timedelta, now: datetime) -> dict[str, tuple[tuple[str, datetime], AppSnapshot]]:
        """app -> ((revision, since), last snapshot) for each app whose new rollout is within the window."""
        with self._lock:
            return {
                k: (w, t.last) for k, t in self.trackers.items() if (w := rollout_to_watch(t, window, now)) and t.last
            }

    def befores(self, seen: Seen) -> list[tuple[str, AppSnapshot | None, AppTracker]]:
        with self._lock:
            return [(key, snap, self.trackers.get(key, AppTracker())) for key, snap in seen]

    def follow(self, batch: Iterable[Observation]) -> None:
        """Memory follows what was stored (or, on a standby, what was seen)."""
        with self._lock:
            for item in batch:
                if item.tracker is None:
                    self.trackers.pop(item.app, None)
                else:
                    self.trackers[item.app] = item.tracker

    def reload(self, records: DetectionRecords, trackers_too: bool) -> None:
        """Start from what the store holds: its open incidents, and (when memory moved apart) its trackers."""
        if trackers_too:
            trackers = records.load_trackers()
            with self._lock:
                self.trackers = trackers
        self.ledger = ledger_of(records.incidents(open_only=True, limit=OPEN_INCIDENTS_LOADED))

    def fold(self, e: Event) -> LedgerCounts:
        """Count a recorded event into the ledger; what the metrics count for it."""
        self.ledger, counts = fold(self.ledger, e)
        return counts

    def mark_success(self, source: str) -> float:
        now = time.time()
        self.last_success[source] = now
        return now

    # -- what others ask (ports.Fleet, the metrics collector) -----------------------------------------------
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

    def last_deploys(self) -> list[tuple[str, float]]:
        with self._lock:
            return [(k, t.deployed_at.timestamp()) for k, t in self.trackers.items() if t.deployed_at is not None]

    def view(self) -> StateView:
        """What Prometheus scrapes. Every replica is scraped: a standby exports no per-app series, or the fleet
        counts twice."""
        return StateView(
            lambda: self.snapshots() if self.recording.is_set() else [],
            lambda: self.ledger.open if self.recording.is_set() else {},
            self.environment,
            lambda: self.last_deploys() if self.recording.is_set() else [],
        )
