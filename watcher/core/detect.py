"""Pure failure detection: the previous tracker state + a new snapshot + now -> new state and events."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from watcher.core.rollout import RolloutVerdict
from watcher.domain import (
    FINAL_FAILURE_PHASES,
    INCIDENT_KINDS,
    MANIFEST_ERROR_CONDITIONS,
    AppSnapshot,
    Event,
    EventKind,
    Health,
    Phase,
    SyncStatus,
)

# Argo CD's controller appends "Retrying attempt #N at <time>." to the operation message while it backs off.
RETRY_MESSAGE = re.compile(r"Retrying attempt #(\d+)")
# What the controller writes when someone (a human, or sync-watcher after pushing a revert) ends an operation.
TERMINATED_MESSAGE = "Operation terminated"
# A git commit id (SHA-1, or SHA-256 repos). Anything else Argo CD shows as a revision was never resolved: a render
# error leaves sync.revision at the targetRevision text ("main", Argo CD 3.2+) or empty (before; multi-source).
COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
EMITTED_KEYS_KEPT = 500
GOOD_REVISIONS_KEPT = 5
# Later verdicts on the same failure: once the rollout watch named R's failing pods (or hook), Argo CD's own
# Degraded, progress deadline or failed sync (the hook's backoff ran out) for R is the same failure seen late,
# folded into the open incident (no second alert or revert decision for one bad deploy).
FOLDED_INTO_ROLLOUT = frozenset({EventKind.DEGRADED, EventKind.STUCK_PROGRESSING, EventKind.SYNC_FAILED})


@dataclass(frozen=True, slots=True)
class DetectionRules:
    comparison_error_grace: timedelta = timedelta(minutes=2)
    degraded_grace: timedelta = timedelta(minutes=2)
    progress_deadline: timedelta = timedelta(minutes=10)
    attribution_window: timedelta = timedelta(hours=1)
    failed_after_retries: int = 0  # 0: wait for Argo CD's own final Failed/Error


@dataclass(frozen=True, slots=True)
class AppTracker:
    """Everything the detector remembers about one app between observations (persisted as JSON)."""

    last: AppSnapshot | None = None
    deployed_revision: str | None = None
    deployed_at: datetime | None = None
    manifest_error_revision: str | None = None
    manifest_error_since: datetime | None = None
    degraded_since: datetime | None = None
    progressing_since: datetime | None = None
    open_failures: tuple[tuple[str, str], ...] = ()  # (kind, revision) not yet recovered
    good_revisions: tuple[str, ...] = ()  # revisions seen Synced and Healthy, newest last (blame's start)
    emitted: tuple[str, ...] = field(default=())  # dedup keys, newest last


def observe(
    tracker: AppTracker, snap: AppSnapshot | None, now: datetime, rules: DetectionRules, app: str
) -> tuple[AppTracker, list[Event]]:
    """Fold one observation into the tracker. `snap=None` means a complete list no longer has the app."""
    if snap is None:
        if tracker.last is None:
            return tracker, []
        gone = Event(app, EventKind.APP_REMOVED, tracker.deployed_revision, now, "application no longer listed")
        return AppTracker(emitted=tracker.emitted), [gone]
    run = _Run(tracker, snap, now, rules)
    run.operation()
    if snap.complete:
        run.manifest_errors()
    run.health()
    run.recovery()
    return run.tracker, run.events


class _Run:
    """One observe() call; a class only so the rule methods share the tracker being built."""

    def __init__(self, tracker: AppTracker, snap: AppSnapshot, now: datetime, rules: DetectionRules):
        self.tracker = replace(tracker, last=snap)
        self.snap = snap
        self.now = now
        self.rules = rules
        self.events: list[Event] = []

    def emit(self, kind: EventKind, revision: str | None, reason: str, **evidence: object) -> None:
        event = Event(self.snap.key, kind, revision, self.now, reason, _evidence(self.snap) | evidence)
        if event.dedup_key in self.tracker.emitted:
            return
        if (
            kind in FOLDED_INTO_ROLLOUT
            and (EventKind.ROLLOUT_FAILING.value, revision or "") in self.tracker.open_failures
        ):
            return
        emitted = (*self.tracker.emitted, event.dedup_key)[-EMITTED_KEYS_KEPT:]
        opened = self.tracker.open_failures
        if kind in INCIDENT_KINDS:
            opened = (*opened, (kind.value, revision or ""))
        self.tracker = replace(self.tracker, emitted=emitted, open_failures=opened)
        self.events.append(event)

    def operation(self) -> None:
        s = self.snap
        rev = s.operation_revision
        if rev is None or s.phase is None:
            return  # no attribution possible: unknown never becomes a failure
        if s.phase is Phase.RUNNING:
            self.emit(EventKind.DEPLOY_STARTED, rev, "sync operation running", started_at=_iso(s.operation_started_at))
            attempt = RETRY_MESSAGE.search(s.operation_message)
            if s.retry_count > 0 and attempt:
                self.emit(EventKind.SYNC_FAILING, rev, f"sync failing, Argo CD retrying (attempt {s.retry_count})")
                limit = self.rules.failed_after_retries
                if limit and s.retry_count >= limit:
                    self.emit(
                        EventKind.SYNC_FAILED,
                        rev,
                        f"sync still failing after {s.retry_count} attempts (limit {limit})",
                        onset=_iso(s.operation_started_at),
                    )
        elif s.phase is Phase.SUCCEEDED and s.operation_finished_at is not None:
            t = self.tracker
            if rev == t.deployed_revision and rev in t.good_revisions:
                return  # a self-heal or re-sync of a revision that already ran healthy is not a new deploy
            if (t.deployed_revision, t.deployed_at) != (rev, s.operation_finished_at):
                self.tracker = replace(self.tracker, deployed_revision=rev, deployed_at=s.operation_finished_at)
                self.emit(EventKind.DEPLOYED, rev, "sync succeeded", finished_at=_iso(s.operation_finished_at))
        elif s.phase in FINAL_FAILURE_PHASES and s.operation_finished_at is not None:
            if s.operation_message.startswith(TERMINATED_MESSAGE):
                return  # ended on purpose, not by the content: the revision's own verdict is already known
            if superseded(s):
                return  # the failed operation is history: the app is Synced on a later revision
            self.emit(EventKind.SYNC_FAILED, rev, f"sync {s.phase.value.lower()}", onset=_iso(s.operation_finished_at))

    def manifest_errors(self) -> None:
        """A render error, at the commit Argo CD shows, or at none: when it could not resolve one (sync.revision
        "main" or empty) the event keeps what Argo CD showed and says so; the reverter blames the commits since
        the last good revision up to the branch head (revert/reads.py)."""
        s, t = self.snap, self.tracker
        errors = [c for c in s.conditions if c.type in MANIFEST_ERROR_CONDITIONS]
        if not errors:
            # An unresolved revision ("main") names no commit: the next render error at it is a new failure.
            emitted = tuple(k for k in t.emitted if not _unresolved_manifest_error(k))
            self.tracker = replace(t, manifest_error_revision=None, manifest_error_since=None, emitted=emitted)
            return
        shown = s.sync_revision or ""
        since = t.manifest_error_since if t.manifest_error_revision == shown else None
        since = since or self.now
        self.tracker = replace(t, manifest_error_revision=shown, manifest_error_since=since)
        if self.now - since >= self.rules.comparison_error_grace:
            unresolved = not is_commit(shown)
            self.emit(
                EventKind.MANIFEST_ERROR,
                shown or None,
                f"manifests cannot be generated ({errors[0].type})"
                + (f", Argo CD resolved no commit (revision {shown!r})" if unresolved else ""),
                onset=_iso(since),
                unresolved_revision=unresolved,
            )

    def health(self) -> None:
        s, t = self.snap, self.tracker
        degraded_since = (t.degraded_since or self.now) if s.health is Health.DEGRADED else None
        progressing_since = (t.progressing_since or self.now) if s.health is Health.PROGRESSING else None
        self.tracker = replace(t, degraded_since=degraded_since, progressing_since=progressing_since)
        deployed_rev, deployed_at = t.deployed_revision, t.deployed_at
        if degraded_since is not None:
            self._degraded(degraded_since, deployed_rev, deployed_at)
        if progressing_since is not None and deployed_rev and deployed_at:
            if s.phase is Phase.RUNNING:
                return
            if progressing_since - deployed_at > self.rules.attribution_window:
                return
            start = max(progressing_since, deployed_at)
            if self.now - start >= self.rules.progress_deadline:
                self.emit(
                    EventKind.STUCK_PROGRESSING,
                    deployed_rev,
                    f"still progressing {int((self.now - start).total_seconds())}s after deploy",
                    onset=_iso(start),
                    deployed_at=_iso(deployed_at),
                )

    def _degraded(self, since: datetime, deployed_rev: str | None, deployed_at: datetime | None) -> None:
        s, rules = self.snap, self.rules
        if deployed_rev is None or deployed_at is None:
            if self.now - since >= rules.degraded_grace:
                self.emit(
                    EventKind.DEGRADED_UNATTRIBUTED, s.sync_revision, "degraded, no deploy seen", onset=_iso(since)
                )
        elif s.phase is Phase.RUNNING:
            return  # a newer sync is under way: its outcome, not the old deploy, decides
        elif since - deployed_at > rules.attribution_window:
            if self.now - since >= rules.degraded_grace:
                self.emit(
                    EventKind.DEGRADED_UNATTRIBUTED,
                    deployed_rev,
                    "degraded, not caused by a commit (long after the last deploy)",
                    onset=_iso(since),
                    deployed_at=_iso(deployed_at),
                )
        elif self.now - deployed_at >= rules.degraded_grace:
            untouched = untouched_by_the_sync(s, deployed_rev)
            if untouched:
                self.emit(
                    EventKind.DEGRADED_UNATTRIBUTED,
                    deployed_rev,
                    f"degraded, but the last sync did not change {', '.join(untouched[:3])}",
                    onset=_iso(since),
                    deployed_at=_iso(deployed_at),
                )
                return
            # The grace period starts when the sync finished: pods restart during every rollout.
            self.emit(
                EventKind.DEGRADED,
                deployed_rev,
                "degraded after deploy",
                onset=_iso(max(since, deployed_at)),
                deployed_at=_iso(deployed_at),
            )

    def recovery(self) -> None:
        s, t = self.snap, self.tracker
        if s.sync_status is not SyncStatus.SYNCED or s.health is not Health.HEALTHY or not s.sync_revision:
            return
        if s.phase is Phase.RUNNING or s.phase is Phase.TERMINATING:
            return
        failing_revisions = {rev for _, rev in t.open_failures}
        # Healthy again on the failed revision itself only counts once its own sync succeeded.
        if s.sync_revision in failing_revisions and not (
            s.phase is Phase.SUCCEEDED and s.operation_revision == s.sync_revision
        ):
            return
        if not t.good_revisions or t.good_revisions[-1] != s.sync_revision:
            good = (*[r for r in t.good_revisions if r != s.sync_revision], s.sync_revision)[-GOOD_REVISIONS_KEPT:]
            t = self.tracker = replace(t, good_revisions=good)
        if not t.open_failures:
            return
        recovered = [f"{kind}@{rev[:12]}" for kind, rev in t.open_failures]
        self.tracker = replace(t, open_failures=())
        event = Event(
            s.key, EventKind.RECOVERED, s.sync_revision, self.now, "synced and healthy", {"recovered": recovered}
        )
        self.events.append(event)


def rollout_to_watch(t: AppTracker, window: timedelta, now: datetime) -> tuple[str, datetime] | None:
    """(R, when its sync started) when the app's resource tree is worth reading: a sync of R finished within
    `window` and the app is still Progressing (or Degraded, before the grace that makes it an incident), or a sync
    of R is running (its hooks); and no failure of R is open yet. None otherwise: most apps, most of the time."""
    s = t.last
    if s is None or any(rev == (s.operation_revision or "") for _, rev in t.open_failures):
        return None
    if s.phase is Phase.RUNNING:
        started = s.operation_started_at
        # A sync under way: its hooks (and waves) run pods before the sync can finish, and when a hook fails
        # Argo CD retries the whole sync with back-off (recreating the Job) before saying Failed.
        if s.operation_revision and started and now - started <= window:
            return s.operation_revision, started
        return None
    rev, finished = t.deployed_revision, t.deployed_at
    if not rev or finished is None or now - finished > window or s.operation_revision != rev:
        return None
    if s.health not in (Health.PROGRESSING, Health.DEGRADED) or s.phase is not Phase.SUCCEEDED:
        return None
    return rev, s.operation_started_at or finished


def observe_rollout(
    tracker: AppTracker, verdict: RolloutVerdict, now: datetime, app: str
) -> tuple[AppTracker, list[Event]]:
    """The rollout watch's verdict on the app's last snapshot as an event, deduplicated like any other."""
    if tracker.last is None:
        return tracker, []
    run = _Run(tracker, tracker.last, now, DetectionRules())
    if any(rev == verdict.revision for _, rev in tracker.open_failures):
        return tracker, []  # R already has an open failure (sync failed, degraded): the same bad deploy
    run.emit(
        EventKind.ROLLOUT_FAILING,
        verdict.revision,
        verdict.reason(),
        deployed_at=_iso(tracker.deployed_at),
        **verdict.evidence(),
    )
    return run.tracker, run.events


def superseded(s: AppSnapshot) -> bool:
    """A failed operation that Argo CD still shows while the app is Synced on another revision: a revert (or a
    fix) whose manifests are already live needs no new sync, so the bad revision's operation stays in place."""
    return (
        s.sync_status is SyncStatus.SYNCED
        and s.sync_revision is not None
        and s.operation_revision is not None
        and s.sync_revision != s.operation_revision
    )


def untouched_by_the_sync(s: AppSnapshot, deployed: str) -> list[str]:
    """The degraded resources, when Argo CD says which resources the sync that deployed `deployed` changed and
    none of them is among those (a node failure, a quota, an expired certificate): not the deploy's doing.
    Empty otherwise, also when the last operation is another one (a later failed sync says nothing of it)."""
    if not s.degraded_resources or s.changed_resources is None:
        return []
    if s.phase is not Phase.SUCCEEDED or s.operation_revision != deployed:
        return []
    if set(s.degraded_resources) & set(s.changed_resources):
        return []
    return list(s.degraded_resources)


def is_commit(revision: str | None) -> bool:
    """Whether Argo CD's revision is a commit id, not a branch name or nothing (see COMMIT)."""
    return bool(revision) and COMMIT.fullmatch(str(revision)) is not None


def _unresolved_manifest_error(key: str) -> bool:
    """A dedup key (Event.dedup_key: app|revision|kind) of a render error at no commit."""
    _, revision, kind = key.rsplit("|", 2)
    return kind == EventKind.MANIFEST_ERROR.value and not is_commit(revision)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _evidence(s: AppSnapshot) -> dict[str, object]:
    return {
        "sync_status": s.sync_status.value if s.sync_status else None,
        "sync_revision": s.sync_revision,
        "health": s.health.value if s.health else None,
        "health_message": s.health_message[:500],
        "phase": s.phase.value if s.phase else None,
        "operation_revision": s.operation_revision,
        "retry_count": s.retry_count,
        "message": s.operation_message[:1000],
        "conditions": [{"type": c.type, "message": c.message[:500]} for c in s.conditions],
    }
