"""Pure incident and deployment bookkeeping: what each detector event opens, closes and records.

The store writes what these functions say (`incident_change`, `deployment_of`, `stored_key`) instead of
deciding it itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from watcher.domain import INCIDENT_KINDS, Event, EventKind

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
    """The key that makes an event stored once; a recovery may repeat after a new failure, so it has its time."""
    return f"{e.dedup_key}|{e.at.isoformat()}" if e.kind is EventKind.RECOVERED else e.dedup_key


def _time(v: object) -> datetime | None:
    return datetime.fromisoformat(v) if isinstance(v, str) and v else None
