"""Detection records: each app's detector state, the timeline, events, deployments and incidents."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from watcher.core.codec import from_row, tracker_from_json, tracker_to_json
from watcher.core.detect import AppTracker
from watcher.core.ledger import deployment_of, incident_change, stored_key
from watcher.domain import AppSnapshot, Event, EventKind, Incident, StoreUnavailable
from watcher.store.schema import Statements, deployments, events, incident_row, incidents, timeline, trackers


@dataclass(frozen=True)
class Observation:
    """One app's new detector state and events, to be stored together."""

    app: str
    tracker: AppTracker | None  # None: the app is gone
    events: list[Event]
    changed: bool  # worth a timeline row


class DetectionRecords:
    def __init__(self, engine: Engine, statements: Statements):
        self.engine = engine
        self._sql = statements

    def load_trackers(self) -> dict[str, AppTracker]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(trackers.c.app, trackers.c.state)).all()
        return {row.app: tracker_from_json(row.state) for row in rows}

    def record_batch(self, batch: Iterable[Observation], now: datetime) -> list[Event]:
        """Save observations in one transaction; returns the events that were not recorded before. A failed
        write keeps nothing and raises StoreUnavailable: the caller observes the same again later."""
        try:
            return self._write(list(batch), now)
        except SQLAlchemyError as exc:  # the driver's words, never the statement's parameters
            raise StoreUnavailable(
                f"state store write failed: {getattr(exc, 'orig', None) or type(exc).__name__}"
            ) from None

    def _write(self, batch: list[Observation], now: datetime) -> list[Event]:
        recorded: list[Event] = []
        gone = [item.app for item in batch if item.tracker is None]
        kept = [item for item in batch if item.tracker is not None]
        with self.engine.begin() as conn:
            if gone:
                conn.execute(trackers.delete().where(trackers.c.app.in_(gone)))
            if kept:  # executemany with prebuilt statements: a 10k-app first cycle is one round of writes
                conn.execute(
                    self._sql.upsert_tracker,
                    [{"app": i.app, "state": tracker_to_json(i.tracker), "updated_at": now} for i in kept if i.tracker],
                )
            rows = [_timeline_row(i.tracker.last, now) for i in kept if i.changed and i.tracker and i.tracker.last]
            if rows:
                conn.execute(timeline.insert(), rows)
            for item in batch:
                for event in item.events:
                    # rowcount is unreliable with RETURNING on psycopg: ask for the row instead
                    if conn.execute(self._sql.insert_event, _event_row(event)).first() is not None:
                        recorded.append(replace(event, incident_id=self._apply(conn, event)))
        return recorded

    def record(
        self, app: str, tracker: AppTracker | None, new_events: Iterable[Event], changed: bool, now: datetime
    ) -> list[Event]:
        return self.record_batch([Observation(app, tracker, list(new_events), changed)], now)

    def _apply(self, conn: Connection, e: Event) -> int | None:
        """Write what the ledger says the event does (watcher.core.ledger decides; this only writes); the id of
        the incident it opened, if it opened one."""
        change = incident_change(e)
        opened = None
        if change.opens:
            row = incident_row(e.app, e.kind.value, e.revision, e.at, e.reason, e.evidence)
            key = conn.execute(incidents.insert(), row).inserted_primary_key
            opened = int(key[0]) if key else None
        if change.resolution is not None:
            conn.execute(
                incidents.update()
                .where(incidents.c.app == e.app, incidents.c.resolved_at.is_(None))
                .values(resolved_at=e.at, resolution=change.resolution)
            )
        deployment = deployment_of(e)
        if deployment is not None:
            conn.execute(
                self._sql.upsert_deployment,
                {
                    "app": deployment.app,
                    "revision": deployment.revision,
                    "started_at": deployment.started_at,
                    "finished_at": deployment.finished_at,
                    "result": deployment.result.value,
                },
            )
        return opened

    # -- incidents ------------------------------------------------------------------------------------------
    def incident(self, incident_id: int) -> Incident | None:
        found = self._incidents(sa.select(incidents).where(incidents.c.id == incident_id))
        return found[0] if found else None

    def find_incident(self, app: str, kind: EventKind, revision: str | None) -> Incident | None:
        q = sa.select(incidents).where(incidents.c.app == app, incidents.c.kind == kind.value)
        q = q.where(incidents.c.revision.is_(None) if revision is None else incidents.c.revision == revision)
        found = self._incidents(q.order_by(incidents.c.id.desc()).limit(1))
        return found[0] if found else None

    def resolve_incident(self, incident_id: int, at: datetime, resolution: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                incidents.update()
                .where(incidents.c.id == incident_id, incidents.c.resolved_at.is_(None))
                .values(resolved_at=at, resolution=resolution)
            )

    def incidents(
        self, open_only: bool = False, app: str | None = None, limit: int = 200, before: int | None = None
    ) -> list[Incident]:
        q = sa.select(incidents).order_by(incidents.c.id.desc()).limit(limit)
        if before is not None:
            q = q.where(incidents.c.id < before)
        if open_only:
            q = q.where(incidents.c.resolved_at.is_(None))
        if app:
            q = q.where(incidents.c.app == app)
        return self._incidents(q)

    def _incidents(self, q: Any) -> list[Incident]:
        with self.engine.connect() as conn:
            return [from_row(Incident, r) for r in conn.execute(q)]

    # -- display queries (CLI, tests): plain rows ---------------------------------------------------------
    def events(self, app: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(events).order_by(events.c.id).limit(limit)
        return self._rows(q.where(events.c.app == app) if app else q)

    def events_since(
        self, at: datetime, kinds: Iterable[EventKind] = (), limit: int = 10_000, app: str | None = None
    ) -> list[Event]:
        """Events (of `kinds`, or all; of one `app`, or every app) recorded at or after `at`, oldest first: what a
        new leader replays to Slack, what the pages tell."""
        cols = (events.c.app, events.c.kind, events.c.revision, events.c.at, events.c.reason, events.c.evidence)
        q = sa.select(*cols).where(events.c.at >= at)
        if kinds:
            q = q.where(events.c.kind.in_([k.value for k in kinds]))
        if app is not None:
            q = q.where(events.c.app == app)
        q = q.order_by(events.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [from_row(Event, row) for row in conn.execute(q)]

    def deployments(self, app: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(deployments).order_by(deployments.c.id).limit(limit)
        return self._rows(q.where(deployments.c.app == app) if app else q)

    def timeline(self, app: str, limit: int = 1000) -> list[dict[str, Any]]:
        return self._rows(sa.select(timeline).where(timeline.c.app == app).order_by(timeline.c.id).limit(limit))

    def _rows(self, q: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def prune_timeline(self, before: datetime) -> int:
        try:
            with self.engine.begin() as conn:
                return conn.execute(timeline.delete().where(timeline.c.observed_at < before)).rowcount or 0
        except SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"state store write failed: {getattr(exc, 'orig', None) or type(exc).__name__}"
            ) from None


def _event_row(e: Event) -> dict[str, Any]:
    return {
        "app": e.app,
        "kind": e.kind.value,
        "revision": e.revision,
        "at": e.at,
        "reason": e.reason,
        "evidence": e.evidence,
        "dedup_key": stored_key(e),
    }


def _timeline_row(s: AppSnapshot, now: datetime) -> dict[str, Any]:
    return {
        "app": s.key,
        "observed_at": now,
        "sync_status": s.sync_status.value if s.sync_status else None,
        "sync_revision": s.sync_revision,
        "health": s.health.value if s.health else None,
        "phase": s.phase.value if s.phase else None,
        "operation_revision": s.operation_revision,
        "retry_count": s.retry_count,
        "conditions": [c.type for c in s.conditions],
    }
