"""One observation of some apps: detect (pure) -> look up the commits -> record -> publish.

Side effects, in this order: git is read (the commits the events name, fetching once when Argo CD saw a revision
before our last fetch) before anything is written, so no git I/O happens inside the record step; the store records
trackers and events in one transaction; only then does memory follow (trackers), and only what was stored is
published, so a crash between the two re-observes instead of announcing an event twice. A poll of many apps is
observed in slices of OBSERVED_AT_ONCE apps, each such a transaction: apps are independent, and a slice's events,
rows and JSON are garbage before the next slice makes its own (one transaction for a first poll of 10k apps peaked
at +36 MB, and the heap kept most of it).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.core.detect import AppTracker, DetectionRules, observe, observe_rollout
from watcher.core.lease import ALONE_FENCE
from watcher.core.ledger import CLOSING_KINDS
from watcher.core.rollout import RolloutVerdict
from watcher.domain import INCIDENT_KINDS, AppSnapshot, Commit, Event, EventKind
from watcher.logs import get_logger
from watcher.metrics.registry import Metrics
from watcher.observe.commit_lookup import CommitLookup
from watcher.observe.fleet_state import FleetState, Seen
from watcher.ports import Fence, Listener, WatchedRepo
from watcher.store import Observation
from watcher.store.detection import DetectionRecords

# Besides incidents: events whose readers (metrics, Slack) want the commit and the onset of what they close.
ENRICHED_KINDS = frozenset({EventKind.DEPLOYED, EventKind.RECOVERED, EventKind.SYNC_FAILING})
OBSERVED_AT_ONCE = 500  # apps per store transaction (see the module's docstring)


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


def _wants_commit(e: Event) -> bool:
    return bool(e.revision) and (e.kind in INCIDENT_KINDS or e.kind in ENRICHED_KINDS)


class Recorder:
    """Detect, look up, record, publish: the one path by which anything observed becomes an event."""

    def __init__(
        self,
        state: FleetState,
        records: DetectionRecords,
        repo: WatchedRepo,
        rules: DetectionRules,
        metrics: Metrics,
        fence: Fence = ALONE_FENCE,
        listeners: Sequence[Listener] = (),
    ):
        self.state = state
        self.records = records
        self.rules = rules
        self.metrics = metrics
        self.fence = fence  # only the leader records
        self.listeners = tuple(listeners)  # wired by the daemon: the reverter, Slack, what a caller passes in
        self.log = get_logger()
        self.stopped = threading.Event()  # set at shutdown: nothing more is observed or written
        self.moved_since_load = False  # memory differs from the store's trackers: reload on taking over
        self._commit = CommitLookup(repo)  # no git network call inside detection

    def fetch_missing_commits(self) -> None:
        """At the git poll, after its fetch: the commits detection could not name, in one bounded fetch."""
        self._commit.after_fetch()

    def observe(self, seen: Seen, now: datetime, verdicts: Mapping[str, RolloutVerdict] | None = None) -> int:
        """Detect, record, publish, a slice of apps at a time, in the order given; how many events recorded.
        `verdicts`: the rollout watch's verdicts on some of these apps (observe_rollout folds them in)."""
        return sum(
            self._slice(seen[i : i + OBSERVED_AT_ONCE], now, verdicts or {})
            for i in range(0, len(seen), OBSERVED_AT_ONCE)
        )

    def _slice(self, seen: Seen, now: datetime, verdicts: Mapping[str, RolloutVerdict]) -> int:
        if self.stopped.is_set():
            return 0
        detected = self._detect(seen, now, verdicts)
        if not detected:
            return 0
        batch = self._looked_up(detected)
        return self._record(batch, now)

    def _detect(self, seen: Seen, now: datetime, verdicts: Mapping[str, RolloutVerdict]) -> list[Observation]:
        """Pure: each app's new tracker and events, for the apps whose tracker or events changed."""
        found: list[Observation] = []
        for key, snap, before in self.state.befores(seen):
            after, events = observe(before, snap, now, self.rules, app=key)
            verdict = verdicts.get(key)
            if verdict is not None and snap is not None:
                after, more = observe_rollout(after, verdict, now, app=key)
                events += more
            if after == before and not events:
                continue
            keep: AppTracker | None = after if snap is not None else None
            found.append(Observation(key, keep, events, _core(snap) != _core(before.last)))
        return found

    def _looked_up(self, detected: list[Observation]) -> list[Observation]:
        """The events with their commits and paths: every git read of the step, done before the write."""
        fleet_map = self.state.fleet_map
        events = [e for o in detected for e in o.events if _wants_commit(e)]
        # A render error at Argo CD's unresolved revision ("main") names a branch, not a commit git would find.
        named = {e.revision or "" for e in events if not e.evidence.get("unresolved_revision")}
        commits = {sha: self._commit(sha) for sha in sorted(named)}
        if any(not fleet_map.has_paths(e.app) for e in events):
            fleet_map.remap(self.state.head)  # an app seen on the stream before the first full mapping
        ledger = self.state.ledger

        def enrich(e: Event) -> Event:
            if not _wants_commit(e):
                return e
            closes = ledger.since.get(e.app) if e.kind is EventKind.RECOVERED else None
            return enriched(e, commits.get(e.revision or ""), fleet_map.paths_of(e.app), closes)

        return [Observation(o.app, o.tracker, [enrich(e) for e in o.events], o.changed) for o in detected]

    def _record(self, batch: list[Observation], now: datetime) -> int:
        recorded: list[Event] = []
        if self.state.recording.is_set():
            if not self.fence.leading():
                return 0  # the lease ran out: keep nothing, observe it again once confirmed (or as a standby)
            recorded = self.records.record_batch(batch, now)  # memory follows only what was stored
            self.state.failing.pop("store", None)
        else:
            self.moved_since_load = True  # a standby: memory follows what it sees, nothing is stored
        self.state.follow(batch)
        for event in recorded:
            self._publish(event)
        return len(recorded)

    def _publish(self, e: Event) -> None:
        """Count the event (the ledger says what), log it, hand it to the listeners (reverter, Slack)."""
        self.metrics.events.labels(e.kind.value).inc()
        counts = self.state.fold(e)
        self.metrics.count(e.app, self.state.environment(e.app), counts)
        log_event(self.log, e)
        for listener in self.listeners:
            listener.on_event(e)
