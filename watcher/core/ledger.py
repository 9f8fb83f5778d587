"""Pure incident and deployment bookkeeping: what each detector event opens, closes, records and counts.

The store writes what these functions say (`incident_change`, `deployment_of`, `stored_key`) instead of
deciding it itself; the watcher keeps an `IncidentLedger` and applies what `fold` counts to its metrics.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from watcher.core.dora import CHANGE_FAILURE_STAGE
from watcher.domain import INCIDENT_KINDS, Event, EventKind, Incident

CLOSING_KINDS = frozenset({EventKind.RECOVERED, EventKind.APP_REMOVED})


class DeployResult(enum.StrEnum):
    """A deployment row's result, in Argo CD's operation phase words."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


DEPLOY_RESULT_OF = {
    EventKind.DEPLOY_STARTED: DeployResult.RUNNING,
    EventKind.DEPLOYED: DeployResult.SUCCEEDED,
    EventKind.SYNC_FAILED: DeployResult.FAILED,
}


@dataclass(frozen=True, slots=True)
class IncidentChange:
    opens: bool = False  # the event opens an incident of its own kind
    resolution: str | None = None  # not None: every open incident of the app closes with these words


@dataclass(frozen=True, slots=True)
class Deployment:
    app: str
    revision: str
    result: DeployResult
    started_at: datetime | None
    finished_at: datetime | None


def incident_change(e: Event) -> IncidentChange:
    if e.kind in INCIDENT_KINDS:
        return IncidentChange(opens=True)
    if e.kind is EventKind.RECOVERED:
        return IncidentChange(resolution=f"recovered at {(e.revision or '')[:12]}")
    if e.kind is EventKind.APP_REMOVED:
        return IncidentChange(resolution="application removed")
    return IncidentChange()


def deployment_of(e: Event) -> Deployment | None:
    """The deployment row an event starts, finishes or fails (keyed by app and revision), if any."""
    result = DEPLOY_RESULT_OF.get(e.kind)
    if result is None or not e.revision:
        return None
    started = _time(e.evidence.get("started_at"))
    if result is DeployResult.RUNNING:
        return Deployment(e.app, e.revision, result, started or e.at, None)
    return Deployment(e.app, e.revision, result, started, _time(e.evidence.get("finished_at")) or e.at)


def stored_key(e: Event) -> str:
    """The key that makes an event stored once; a recovery may repeat after a new failure, so it has its time,
    and so does a render error at no commit (Argo CD's sync.revision "main" or empty): its onset tells them apart."""
    if e.kind is EventKind.RECOVERED:
        return f"{e.dedup_key}|{e.at.isoformat()}"
    if e.evidence.get("unresolved_revision"):
        return f"{e.dedup_key}|{e.onset.isoformat()}"
    return e.dedup_key


def _time(v: object) -> datetime | None:
    return datetime.fromisoformat(v) if isinstance(v, str) and v else None


# -- the watcher's incident ledger: what is open now, and what each event adds to the failure and DORA counts --
@dataclass(frozen=True, slots=True)
class IncidentLedger:
    """Open incidents as the watcher holds them between events; replaced whole, never changed in place."""

    open: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (app, kind) -> open incidents
    since: Mapping[str, datetime] = field(default_factory=dict)  # app -> onset of its oldest open incident
    last_failed_change: Mapping[str, str] = field(default_factory=dict)  # app -> revision counted as failed

    def open_kinds(self, app: str) -> list[str]:
        return sorted(kind for (a, kind), n in self.open.items() if a == app and n)


@dataclass(frozen=True, slots=True)
class LedgerCounts:
    """What one event adds to the counters; the watcher applies it to its metrics and decides nothing."""

    failure: EventKind | None = None  # an incident of this kind opened
    detect_seconds: float | None = None  # its onset to its detection
    change_failure_stage: str | None = None  # DORA: the revision became a failed change at this stage
    deployed: bool = False  # DORA: a deployment
    lead_seconds: float | None = None  # its commit to its finished sync, when both are known
    restore_seconds: float | None = None  # DORA: the oldest open incident's onset to the recovery


def ledger_of(open_incidents: Iterable[Incident]) -> IncidentLedger:
    """The ledger a restarted watcher resumes from: the store's open incidents."""
    counts: dict[tuple[str, str], int] = {}
    since: dict[str, datetime] = {}
    for i in open_incidents:
        counts[(i.app, i.kind.value)] = counts.get((i.app, i.kind.value), 0) + 1
        since[i.app] = min(i.onset, since.get(i.app, i.onset))
    return IncidentLedger(counts, since)


def fold(ledger: IncidentLedger, e: Event) -> tuple[IncidentLedger, LedgerCounts]:
    """One recorded event into the ledger, and what it counts."""
    if e.kind in INCIDENT_KINDS:
        return _opened(ledger, e)
    if e.kind in CLOSING_KINDS:
        return _closed(ledger, e)
    if e.kind is EventKind.DEPLOYED:
        return ledger, LedgerCounts(deployed=True, lead_seconds=_lead_seconds(e))
    return ledger, LedgerCounts()


def _opened(ledger: IncidentLedger, e: Event) -> tuple[IncidentLedger, LedgerCounts]:
    key = (e.app, e.kind.value)
    onset = e.onset
    # The first open incident's onset stands until the app recovers: time to restore runs from it.
    since = ledger.since if e.app in ledger.since else {**ledger.since, e.app: onset}
    stage = CHANGE_FAILURE_STAGE.get(e.kind)
    # A revision that opened an incident is one failed change, however many incidents it opened.
    if stage is None or not e.revision or ledger.last_failed_change.get(e.app) == e.revision:
        stage, failed = None, ledger.last_failed_change
    else:
        failed = {**ledger.last_failed_change, e.app: e.revision}
    after = IncidentLedger({**ledger.open, key: ledger.open.get(key, 0) + 1}, since, failed)
    return after, LedgerCounts(failure=e.kind, detect_seconds=_seconds(onset, e.at), change_failure_stage=stage)


def _closed(ledger: IncidentLedger, e: Event) -> tuple[IncidentLedger, LedgerCounts]:
    """A recovery or a removal closes every open incident of the app; only a recovery restores service."""
    opened = ledger.since.get(e.app)
    after = IncidentLedger(
        {k: n for k, n in ledger.open.items() if k[0] != e.app},
        {app: t for app, t in ledger.since.items() if app != e.app},
        ledger.last_failed_change,
    )
    restore = _seconds(opened, e.at) if e.kind is EventKind.RECOVERED and opened is not None else None
    return after, LedgerCounts(restore_seconds=restore)


def _lead_seconds(e: Event) -> float | None:
    commit = e.evidence.get("commit")
    finished = _time(e.evidence.get("finished_at"))
    if not isinstance(commit, dict) or finished is None:
        return None
    return _seconds(datetime.fromisoformat(str(commit["committed_at"])), finished)


def _seconds(start: datetime, end: datetime) -> float:
    """Clocks disagree by a little: a negative duration is zero."""
    return max((end - start).total_seconds(), 0.0)
