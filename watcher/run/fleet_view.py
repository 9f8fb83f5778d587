"""The fleet page's view (pure): open and recent incidents, suspended apps and the circuit, the last reverts, and
one page of the apps, filtered by environment, namespace and project, those with an open incident first."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from watcher.core.slack_message import Links
from watcher.domain import (
    Incident,
    RevertRecord,
    RevertState,
    Suspension,
    app_key,
)
from watcher.ports import FleetStatus
from watcher.run.page_text import MESSAGE_MAX, NAME_MAX, Sha, When, clean, safe_url, sha_of, when

PAGE_SIZE = 100
LAST_REVERTS = 10
RECENT_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Filters:
    environment: str = ""
    namespace: str = ""
    project: str = ""
    page: int = 1

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        """From the query string: unknown keys are ignored, a bad page is page 1 (a page only reads)."""
        page = query.get("page", "1")
        return cls(
            clean(query.get("environment", ""), NAME_MAX),
            clean(query.get("namespace", ""), NAME_MAX),
            clean(query.get("project", ""), NAME_MAX),
            int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1,
        )

    def query(self, page: int) -> str:
        """The query string of `page` with the same filters."""
        kept = {"environment": self.environment, "namespace": self.namespace, "project": self.project}
        return urlencode({k: v for k, v in kept.items() if v} | {"page": page})


@dataclass(frozen=True, slots=True)
class AppRow:
    key: str
    name: str
    namespace: str
    project: str
    environment: str
    sync: str
    health: str
    phase: str
    revision: Sha | None
    deployed: When | None
    open_incidents: tuple[str, ...]
    link: str


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: int
    app: str
    app_link: str
    kind: str
    revision: Sha | None
    detected: When | None
    resolved: When | None
    reason: str


@dataclass(frozen=True, slots=True)
class RevertRow:
    id: int
    incident_id: int
    app: str
    state: str
    tone: str
    mode: str
    culprits: tuple[Sha, ...]
    revert: Sha | None
    revert_link: str | None
    pull_request: str | None
    verify: str
    at: When | None
    message: str = ""  # the revert commit's message (what it says it undid, and why)
    diffstat: str = ""


@dataclass(frozen=True, slots=True)
class FleetPage:
    filters: Filters
    apps: list[AppRow]
    total_apps: int
    matching: int
    page: int
    pages: int
    choices: Mapping[str, list[str]]  # filter -> the values seen in the fleet
    incidents: list[IncidentRow]
    recent: list[IncidentRow]  # the last resolved ones: a Slack reader often arrives after the fix
    suspended: list[tuple[str, str, When | None]]
    circuit: str | None
    reverts: list[RevertRow]


def app_link(key: str) -> str:
    """/ui/apps/<namespace>/<name>: an app in Argo CD's own namespace is stored by name alone."""
    namespace, _, name = key.rpartition("/")
    return f"/ui/apps/{quote(namespace or 'argocd', safe='')}/{quote(name, safe='')}"


def key_of(namespace: str, name: str) -> str:
    return app_key(name, namespace)


def fleet_page(
    status: FleetStatus,
    environment_of: Callable[[str], str],
    filters: Filters,
    open_incidents: Sequence[Incident],
    recent_incidents: Sequence[Incident],
    suspended: Mapping[str, Suspension],
    circuit: str | None,
    reverts: Sequence[RevertRecord],
    links: Links,
    now: datetime,
) -> FleetPage:
    """Open incidents first, then the apps (those with an open incident first, then by name), one page of them."""
    open_kinds: dict[str, list[str]] = {}
    for (app, kind), n in status.open_incidents.items():
        if n:
            open_kinds.setdefault(app, []).append(kind)
    rows: list[tuple[bool, str, Any, str]] = []
    choices: dict[str, set[str]] = {"environment": set(), "namespace": set(), "project": set()}
    for key, t in status.trackers.items():
        s = t.last
        if s is None:
            continue
        env = environment_of(key)
        choices["environment"].add(env)
        choices["namespace"].add(s.namespace)
        choices["project"].add(s.project)
        if filters.environment and env != filters.environment:
            continue
        if filters.namespace and s.namespace != filters.namespace:
            continue
        if filters.project and s.project != filters.project:
            continue
        rows.append((key not in open_kinds, key, t, env))
    rows.sort(key=lambda r: (r[0], r[1]))
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(filters.page, pages)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return FleetPage(
        filters=filters,
        apps=[app_row(key, t, env, tuple(sorted(open_kinds.get(key, ()))), now) for _, key, t, env in shown],
        total_apps=sum(1 for t in status.trackers.values() if t.last is not None),
        matching=len(rows),
        page=page,
        pages=pages,
        choices={k: sorted(clean(v, NAME_MAX) for v in vs if v) for k, vs in choices.items()},
        incidents=[incident_row(i, now) for i in open_incidents],
        recent=[incident_row(i, now) for i in recent_incidents if i.resolved_at is not None][:RECENT_SHOWN],
        suspended=[
            (clean(a, NAME_MAX), clean(s.reason, MESSAGE_MAX), when(s.since, now)) for a, s in sorted(suspended.items())
        ],
        circuit=clean(circuit, MESSAGE_MAX) if circuit else None,
        reverts=[revert_row(r, links, now) for r in reverts[:LAST_REVERTS]],
    )


def app_row(key: str, t: Any, env: str, open_kinds: tuple[str, ...], now: datetime) -> AppRow:
    s = t.last
    return AppRow(
        key=clean(key, NAME_MAX * 2),
        name=clean(s.name, NAME_MAX),
        namespace=clean(s.namespace, NAME_MAX),
        project=clean(s.project, NAME_MAX),
        environment=clean(env, NAME_MAX),
        sync=s.sync_status.value if s.sync_status else "Unknown",
        health=s.health.value if s.health else "Unknown",
        phase=s.phase.value if s.phase else "",
        revision=sha_of(s.sync_revision),
        deployed=when(t.deployed_at, now),
        open_incidents=open_kinds,
        link=app_link(key),
    )


def incident_row(i: Incident, now: datetime) -> IncidentRow:
    return IncidentRow(
        id=i.id,
        app=clean(i.app, NAME_MAX * 2),
        app_link=app_link(i.app),
        kind=i.kind.value,
        revision=sha_of(i.revision),
        detected=when(i.detected_at, now),
        resolved=when(i.resolved_at, now),
        reason=clean(i.reason, MESSAGE_MAX),
    )


REVERT_TONES = {
    RevertState.PUSHED: "good",
    RevertState.PULL_REQUEST_OPENED: "good",
    RevertState.DRY_RUN: "neutral",
    RevertState.ALREADY_UNDONE: "neutral",
    RevertState.STARTED: "running",
    RevertState.NOT_PUSHED: "warning",
}


def revert_row(r: RevertRecord, links: Links, now: datetime) -> RevertRow:
    return RevertRow(
        id=r.id,
        incident_id=r.incident_id,
        app=clean(r.app, NAME_MAX * 2),
        state=r.state.value,
        tone=REVERT_TONES.get(r.state, "bad"),
        mode=r.mode.value,
        culprits=tuple(Sha(clean(c, 64)) for c in r.culprits),
        revert=sha_of(r.revert_sha),
        revert_link=safe_url(links.commit(r.revert_sha)) if r.revert_sha else None,
        pull_request=safe_url(r.url),
        verify=r.verify_result.value
        or ("pending" if r.state in (RevertState.PUSHED, RevertState.PULL_REQUEST_OPENED) else ""),
        at=when(r.finished_at or r.started_at, now),
        message=clean(r.detail.get("message") or "", MESSAGE_MAX),
        diffstat=clean(r.detail.get("diffstat") or "", MESSAGE_MAX),
    )
