"""One app's page view (pure): its state now, its last incidents and reverts, DORA's figures over a window."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from watcher.core.dora import CHANGE_FAILURE_STAGE
from watcher.core.slack_message import Links
from watcher.domain import (
    Event,
    Incident,
    RevertRecord,
    Suspension,
)
from watcher.ports import FleetStatus
from watcher.run.fleet_view import AppRow, IncidentRow, RevertRow, app_row, incident_row, revert_row
from watcher.run.page_text import MESSAGE_MAX, NAME_MAX, as_mapping, as_text, aware, clean, safe_url

APP_HISTORY = 50


@dataclass(frozen=True, slots=True)
class Dora:
    deployments: int
    change_failures: int
    change_failure_rate: str
    lead_time: str
    time_to_restore: str


@dataclass(frozen=True, slots=True)
class AppPage:
    key: str
    environment: str
    row: AppRow | None
    paths: tuple[str, ...]
    incidents: tuple[IncidentRow, ...]
    reverts: tuple[RevertRow, ...]
    suspended: str | None
    dora: Dora
    argocd_link: str | None


def app_page(
    key: str,
    status: FleetStatus,
    environment: str,
    incidents: Sequence[Incident],
    reverts: Sequence[RevertRecord],
    deployed: Iterable[Event],
    suspension: Suspension | None,
    links: Links,
    now: datetime,
    since: datetime,
) -> AppPage:
    """One app: its state, its last incidents and reverts (newest first), and DORA's figures since `since`
    (`deployed`: its DEPLOYED events since then)."""
    t = status.trackers.get(key)
    open_kinds = tuple(sorted(k for (a, k), n in status.open_incidents.items() if a == key and n))
    return AppPage(
        key=clean(key, NAME_MAX * 2),
        environment=clean(environment, NAME_MAX),
        row=app_row(key, t, environment, open_kinds, now) if t is not None and t.last is not None else None,
        paths=tuple(clean(p, NAME_MAX * 2) for p in status.paths.get(key, ())),
        incidents=tuple(incident_row(i, now) for i in incidents[:APP_HISTORY]),
        reverts=tuple(revert_row(r, links, now) for r in reverts[:APP_HISTORY]),
        suspended=clean(suspension.reason, MESSAGE_MAX) if suspension else None,
        dora=dora(list(deployed), [i for i in incidents if aware(i.detected_at) >= since]),
        argocd_link=safe_url(links.app(key)),
    )


def dora(deployed: Sequence[Event], incidents: Sequence[Incident]) -> Dora:
    """Over the recorded history: deployments, failed changes (incidents a revision opened, as the metrics count
    them: core.dora.CHANGE_FAILURE_STAGE), their share of the attempts, and the mean lead and restore times."""
    failures = [i for i in incidents if i.kind in CHANGE_FAILURE_STAGE]
    never_deployed = sum(1 for i in failures if CHANGE_FAILURE_STAGE[i.kind] == "sync")
    attempts = len(deployed) + never_deployed
    leads = []
    for e in deployed:
        committed = as_text(as_mapping(e.evidence.get("commit")).get("committed_at"))
        finished = as_text(e.evidence.get("finished_at"))
        if committed and finished:
            leads.append(
                (aware(datetime.fromisoformat(finished)) - aware(datetime.fromisoformat(committed))).total_seconds()
            )
    restores = [(aware(i.resolved_at) - aware(i.onset)).total_seconds() for i in failures if i.resolved_at]
    return Dora(
        deployments=len(deployed),
        change_failures=len(failures),
        change_failure_rate=f"{100 * len(failures) / attempts:.0f} %" if attempts else "-",
        lead_time=_duration(sum(leads) / len(leads)) if leads else "-",
        time_to_restore=_duration(sum(restores) / len(restores)) if restores else "-",
    )


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
