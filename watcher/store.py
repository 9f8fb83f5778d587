"""Persistence behind one small interface: SQLite (WAL) by default, PostgreSQL by URL (SQLAlchemy Core)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from watcher.detect import AppTracker
from watcher.domain import (
    INCIDENT_KINDS,
    AppSnapshot,
    Condition,
    Event,
    EventKind,
    Health,
    Incident,
    Phase,
    SyncStatus,
)

meta = sa.MetaData()
TZ = sa.DateTime(timezone=True)

schema_version = sa.Table("schema_version", meta, sa.Column("version", sa.Integer, nullable=False))
trackers = sa.Table(
    "trackers",
    meta,
    sa.Column("app", sa.String(253), primary_key=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)
timeline = sa.Table(
    "timeline",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(253), nullable=False, index=True),
    sa.Column("observed_at", TZ, nullable=False, index=True),
    sa.Column("sync_status", sa.String(16)),
    sa.Column("sync_revision", sa.String(64)),
    sa.Column("health", sa.String(16)),
    sa.Column("phase", sa.String(16)),
    sa.Column("operation_revision", sa.String(64)),
    sa.Column("retry_count", sa.Integer, nullable=False, default=0),
    sa.Column("conditions", sa.JSON, nullable=False),
)
events = sa.Table(
    "events",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(253), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("revision", sa.String(64)),
    sa.Column("at", TZ, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("dedup_key", sa.String(400), nullable=False, unique=True),
)
deployments = sa.Table(
    "deployments",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(253), nullable=False, index=True),
    sa.Column("revision", sa.String(64), nullable=False),
    sa.Column("started_at", TZ),
    sa.Column("finished_at", TZ),
    sa.Column("result", sa.String(16), nullable=False),
    sa.UniqueConstraint("app", "revision", name="uq_deployment_app_revision"),
)
incidents = sa.Table(
    "incidents",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(253), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("revision", sa.String(64)),
    sa.Column("detected_at", TZ, nullable=False),
    sa.Column("resolved_at", TZ),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("resolution", sa.Text, nullable=False, default=""),
)

# -- auto-revert (schema version 2) -------------------------------------------------------------------------
decisions = sa.Table(
    "decisions",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, index=True),
    sa.Column("app", sa.String(253), nullable=False, index=True),
    sa.Column("at", TZ, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
)
reverts = sa.Table(
    "reverts",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, nullable=False, index=True),
    sa.Column("app", sa.String(253), nullable=False, index=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("culprits", sa.JSON, nullable=False),
    # started (intent recorded, outcome unknown) -> pushed | pull_request_opened | dry_run | conflict |
    # push_failed | already_undone | failed | not_pushed (found unfinished after a crash, not in git)
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("started_at", TZ, nullable=False),
    sa.Column("finished_at", TZ),
    sa.Column("revert_sha", sa.String(64)),
    sa.Column("base_sha", sa.String(64)),
    sa.Column("url", sa.Text),
    sa.Column("verify_deadline", TZ),
    sa.Column("verified_at", TZ),
    sa.Column("verify_result", sa.String(16), nullable=False, default=""),  # healed | not_healed
    sa.Column("detail", sa.JSON, nullable=False),
)
suspensions = sa.Table(
    "suspensions",
    meta,
    sa.Column("app", sa.String(253), primary_key=True),
    sa.Column("since", TZ, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("incident_id", sa.Integer),
)
controls = sa.Table(
    "controls",
    meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)
# -- Slack (schema version 3) ------------------------------------------------------------------------------
notifications = sa.Table(  # delivered notices, so a restart never posts the same (app, revision, kind) twice
    "notifications",
    meta,
    sa.Column("dedup_key", sa.String(400), primary_key=True),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("ts", sa.String(32)),
    sa.Column("sent_at", TZ, nullable=False),
)
slack_threads = sa.Table(  # an incident's thread: its parent message and what to redraw it from when resolved
    "slack_threads",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(253), nullable=False, index=True),
    sa.Column("revision", sa.String(64)),
    sa.Column("incident_id", sa.Integer, index=True),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("parent", sa.JSON, nullable=False),
    sa.Column("started_at", TZ, nullable=False),
    sa.Column("resolved_at", TZ),
)
# Revert states whose commit is (or may be) in git: the commit counts as reverted, never again.
REVERTED_STATES = ("started", "pushed", "pull_request_opened")
ACTIVE_REVERT_STATES = ("pushed", "pull_request_opened")


@dataclass(frozen=True)
class Observation:
    """One app's new detector state and events, to be stored together."""

    app: str
    tracker: AppTracker | None  # None: the app is gone
    events: list[Event]
    changed: bool  # worth a timeline row


Migration = Callable[[Connection], None]
# Append only: each entry moves the schema one version up; a started daemon runs the ones it has not.
MIGRATIONS: list[Migration] = [
    lambda conn: meta.create_all(conn, tables=[trackers, timeline, events, deployments, incidents]),
    lambda conn: meta.create_all(conn, tables=[decisions, reverts, suspensions, controls]),
    lambda conn: meta.create_all(conn, tables=[notifications, slack_threads]),
]


class Statements:
    """Statements built once per dialect; executing them with plain parameters skips SQLAlchemy's coercion."""

    def __init__(self, dialect: str):
        from sqlalchemy.dialects import postgresql, sqlite

        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        t = insert(trackers)
        self.upsert_tracker = t.on_conflict_do_update(
            index_elements=["app"], set_={"state": t.excluded.state, "updated_at": t.excluded.updated_at}
        )
        self.insert_event = insert(events).on_conflict_do_nothing().returning(events.c.id)
        d = insert(deployments)
        self.upsert_deployment = d.on_conflict_do_update(
            index_elements=["app", "revision"],
            set_={
                "result": d.excluded.result,
                "started_at": sa.func.coalesce(deployments.c.started_at, d.excluded.started_at),
                "finished_at": sa.func.coalesce(d.excluded.finished_at, deployments.c.finished_at),
            },
        )


class Store:
    def __init__(self, url: str):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sql = Statements(self.engine.dialect.name)
        self.migrate()

    def migrate(self) -> int:
        with self.engine.begin() as conn:
            schema_version.create(conn, checkfirst=True)
            current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
            for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
                step(conn)
                conn.execute(schema_version.insert().values(version=version))
        return len(MIGRATIONS)

    def close(self) -> None:
        self.engine.dispose()

    # -- trackers ---------------------------------------------------------------------------------------
    def load_trackers(self) -> dict[str, AppTracker]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(trackers.c.app, trackers.c.state)).all()
        return {row.app: tracker_from_json(row.state) for row in rows}

    def record_batch(self, batch: Iterable[Observation], now: datetime) -> list[Event]:
        """Save observations in one transaction; returns the events that were not recorded before."""
        batch = list(batch)
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
                        recorded.append(event)
                        self._apply(conn, event)
        return recorded

    def record(
        self, app: str, tracker: AppTracker | None, new_events: Iterable[Event], changed: bool, now: datetime
    ) -> list[Event]:
        return self.record_batch([Observation(app, tracker, list(new_events), changed)], now)

    def _apply(self, conn: Connection, e: Event) -> None:
        if e.kind in INCIDENT_KINDS:
            conn.execute(
                incidents.insert(),
                {
                    "app": e.app,
                    "kind": e.kind.value,
                    "revision": e.revision,
                    "detected_at": e.at,
                    "reason": e.reason,
                    "evidence": e.evidence,
                    "resolution": "",
                },
            )
        elif e.kind in (EventKind.RECOVERED, EventKind.APP_REMOVED):
            how = f"recovered at {(e.revision or '')[:12]}" if e.kind is EventKind.RECOVERED else "application removed"
            conn.execute(
                incidents.update()
                .where(incidents.c.app == e.app, incidents.c.resolved_at.is_(None))
                .values(resolved_at=e.at, resolution=how)
            )
        if e.revision and e.kind in (EventKind.DEPLOY_STARTED, EventKind.DEPLOYED, EventKind.SYNC_FAILED):
            result = {EventKind.DEPLOY_STARTED: "Running", EventKind.DEPLOYED: "Succeeded"}.get(e.kind, "Failed")
            started = _parse_time(e.evidence.get("started_at"))
            if started is None and e.kind is EventKind.DEPLOY_STARTED:
                started = e.at
            finished = None
            if e.kind is not EventKind.DEPLOY_STARTED:
                finished = _parse_time(e.evidence.get("finished_at")) or e.at
            conn.execute(
                self._sql.upsert_deployment,
                {
                    "app": e.app,
                    "revision": e.revision,
                    "started_at": started,
                    "finished_at": finished,
                    "result": result,
                },
            )

    # -- auto-revert: decisions, reverts, suspensions, the circuit -------------------------------------------
    def incident(self, incident_id: int) -> Incident | None:
        found = self._incidents(sa.select(incidents).where(incidents.c.id == incident_id))
        return found[0] if found else None

    def find_incident(self, app: str, kind: str, revision: str | None) -> Incident | None:
        q = sa.select(incidents).where(incidents.c.app == app, incidents.c.kind == kind)
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

    def record_decision(
        self,
        incident_id: int | None,
        app: str,
        at: datetime,
        action: str,
        rule: str,
        reason: str,
        mode: str,
        evidence: dict[str, Any],
    ) -> int:
        row: dict[str, Any] = {"incident_id": incident_id, "app": app, "at": at, "action": action, "rule": rule}
        row |= {"reason": reason, "mode": mode, "evidence": evidence}
        with self.engine.begin() as conn:
            return int(conn.execute(decisions.insert().returning(decisions.c.id), row).scalar_one())

    def decisions(
        self, app: str | None = None, incident_id: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        q = sa.select(decisions).order_by(decisions.c.id.desc()).limit(limit)
        if app:
            q = q.where(decisions.c.app == app)
        if incident_id is not None:
            q = q.where(decisions.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def open_incidents_undecided(self, waiting: str) -> list[int]:
        """Open incidents with no decision other than `waiting` on record: a restart decides them again."""
        decided = sa.select(decisions.c.incident_id).where(
            decisions.c.action != waiting, decisions.c.incident_id.is_not(None)
        )
        q = sa.select(incidents.c.id).where(incidents.c.resolved_at.is_(None), incidents.c.id.not_in(decided))
        with self.engine.connect() as conn:
            return [row.id for row in conn.execute(q.order_by(incidents.c.id))]

    def start_revert(self, incident_id: int, app: str, mode: str, culprits: list[str], at: datetime) -> int:
        """Record the intent before touching git: a crash after this is reconciled against git on start."""
        row = {"incident_id": incident_id, "app": app, "mode": mode, "culprits": culprits, "state": "started"}
        row |= {"started_at": at, "verify_result": "", "detail": {}}
        with self.engine.begin() as conn:
            return int(conn.execute(reverts.insert().returning(reverts.c.id), row).scalar_one())

    def finish_revert(self, revert_id: int, state: str, at: datetime, **fields: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                reverts.update().where(reverts.c.id == revert_id).values(state=state, finished_at=at, **fields)
            )

    def verify_revert(self, revert_id: int, result: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(reverts.update().where(reverts.c.id == revert_id).values(verify_result=result, verified_at=at))

    def reverts(
        self, app: str | None = None, incident_id: int | None = None, states: tuple[str, ...] = (), limit: int = 200
    ) -> list[dict[str, Any]]:
        q = sa.select(reverts).order_by(reverts.c.id.desc()).limit(limit)
        if app:
            q = q.where(reverts.c.app == app)
        if incident_id is not None:
            q = q.where(reverts.c.incident_id == incident_id)
        if states:
            q = q.where(reverts.c.state.in_(states))
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def reverted_commits(self) -> dict[str, str]:
        """culprit sha -> 'revert #id (state)' for every revert that is or may be in git."""
        q = sa.select(reverts.c.id, reverts.c.state, reverts.c.culprits).where(reverts.c.state.in_(REVERTED_STATES))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return {sha: f"revert #{r.id} {r.state}" for r in rows for sha in r.culprits}

    def reverts_since(self, since: datetime, app: str | None = None) -> list[datetime]:
        q = sa.select(reverts.c.finished_at).where(
            reverts.c.state.in_(ACTIVE_REVERT_STATES), reverts.c.finished_at >= since
        )
        if app:
            q = q.where(reverts.c.app == app)
        with self.engine.connect() as conn:
            return sorted(_utc(t) for (t,) in conn.execute(q) if t is not None)

    def suspend(self, app: str, reason: str, incident_id: int | None, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(suspensions.delete().where(suspensions.c.app == app))
            conn.execute(suspensions.insert(), {"app": app, "since": at, "reason": reason, "incident_id": incident_id})

    def resume(self, app: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(suspensions.delete().where(suspensions.c.app == app)).rowcount)

    def suspended(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r.app: _row(r) for r in conn.execute(sa.select(suspensions))}

    def control(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(controls.c.value).where(controls.c.key == key)).scalar()
        return dict(value) if value else None

    def set_control(self, key: str, value: dict[str, Any] | None, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(controls.delete().where(controls.c.key == key))
            if value is not None:
                conn.execute(controls.insert(), {"key": key, "value": value, "updated_at": at})

    # -- Slack ----------------------------------------------------------------------------------------------
    def notification_sent(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(sa.select(notifications.c.dedup_key).where(notifications.c.dedup_key == key)).first()
                is not None
            )

    def record_notification(self, key: str, channel: str, ts: str | None, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(notifications.delete().where(notifications.c.dedup_key == key))
            conn.execute(notifications.insert(), {"dedup_key": key, "channel": channel, "ts": ts, "sent_at": at})

    def slack_thread(self, app: str, incident_id: int | None, revision: str | None) -> dict[str, Any] | None:
        """The open thread of this incident, else one opened for the same app and revision (a failing sync)."""
        base = sa.select(slack_threads).where(slack_threads.c.app == app, slack_threads.c.resolved_at.is_(None))
        queries = []
        if incident_id is not None:
            queries.append(base.where(slack_threads.c.incident_id == incident_id))
        if revision is not None:
            queries.append(base.where(slack_threads.c.revision == revision))
        with self.engine.connect() as conn:
            for q in queries:
                row = conn.execute(q.order_by(slack_threads.c.id.desc()).limit(1)).first()
                if row is not None:
                    return _row(row)
        return None

    def save_slack_thread(
        self,
        channel: str,
        ts: str,
        app: str,
        revision: str | None,
        incident_id: int | None,
        parent: dict[str, Any],
        at: datetime,
    ) -> None:
        row = {"channel": channel, "ts": ts, "app": app, "revision": revision, "incident_id": incident_id}
        with self.engine.begin() as conn:
            conn.execute(slack_threads.insert(), row | {"parent": parent, "started_at": at})

    def attach_slack_thread(self, thread_id: int, incident_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                slack_threads.update()
                .where(slack_threads.c.id == thread_id, slack_threads.c.incident_id.is_(None))
                .values(incident_id=incident_id)
            )

    def open_slack_threads(self, app: str) -> list[dict[str, Any]]:
        q = sa.select(slack_threads).where(slack_threads.c.app == app, slack_threads.c.resolved_at.is_(None))
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q.order_by(slack_threads.c.id))]

    def resolve_slack_thread(self, thread_id: int, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(slack_threads.update().where(slack_threads.c.id == thread_id).values(resolved_at=at))

    # -- queries ----------------------------------------------------------------------------------------
    def incidents(self, open_only: bool = False, app: str | None = None, limit: int = 200) -> list[Incident]:
        q = sa.select(incidents).order_by(incidents.c.id.desc()).limit(limit)
        if open_only:
            q = q.where(incidents.c.resolved_at.is_(None))
        if app:
            q = q.where(incidents.c.app == app)
        return self._incidents(q)

    def _incidents(self, q: Any) -> list[Incident]:
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            Incident(
                r.id,
                r.app,
                EventKind(r.kind),
                r.revision,
                _utc(r.detected_at),
                _utc(r.resolved_at) if r.resolved_at else None,
                r.reason,
                dict(r.evidence or {}),
                r.resolution or "",
            )
            for r in rows
        ]

    def events(self, app: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(events).order_by(events.c.id).limit(limit)
        if app:
            q = q.where(events.c.app == app)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def deployments(self, app: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(deployments).order_by(deployments.c.id).limit(limit)
        if app:
            q = q.where(deployments.c.app == app)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def timeline(self, app: str, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(timeline).where(timeline.c.app == app).order_by(timeline.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def prune_timeline(self, before: datetime) -> int:
        with self.engine.begin() as conn:
            return conn.execute(timeline.delete().where(timeline.c.observed_at < before)).rowcount or 0


def _row(r: Any) -> dict[str, Any]:
    return {k: (_utc(v) if isinstance(v, datetime) else v) for k, v in r._mapping.items()}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _event_row(e: Event) -> dict[str, Any]:
    key = e.dedup_key
    if e.kind is EventKind.RECOVERED:
        key = f"{key}|{e.at.isoformat()}"  # recovery may repeat after a new failure
    return {
        "app": e.app,
        "kind": e.kind.value,
        "revision": e.revision,
        "at": e.at,
        "reason": e.reason,
        "evidence": e.evidence,
        "dedup_key": key,
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


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _parse_time(v: Any) -> datetime | None:
    return datetime.fromisoformat(v) if isinstance(v, str) and v else None


# -- JSON codec for trackers (plain data in, plain data out) -----------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, datetime):
        return v.isoformat()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def snapshot_to_json(s: AppSnapshot) -> dict[str, Any]:
    return {f.name: _plain(getattr(s, f.name)) for f in dataclasses.fields(s)}


def snapshot_from_json(d: dict[str, Any]) -> AppSnapshot:
    def enum_of(cls: Any, v: Any) -> Any:
        return cls(v) if v else None

    return AppSnapshot(
        name=d["name"],
        namespace=d.get("namespace", ""),
        project=d.get("project", ""),
        sync_status=enum_of(SyncStatus, d.get("sync_status")),
        sync_revision=d.get("sync_revision"),
        health=enum_of(Health, d.get("health")),
        health_message=d.get("health_message", ""),
        phase=enum_of(Phase, d.get("phase")),
        operation_revision=d.get("operation_revision"),
        operation_started_at=_parse_time(d.get("operation_started_at")),
        operation_finished_at=_parse_time(d.get("operation_finished_at")),
        operation_message=d.get("operation_message", ""),
        retry_count=int(d.get("retry_count", 0)),
        conditions=tuple(Condition(c["type"], c.get("message", "")) for c in d.get("conditions", [])),
        history_revisions=tuple(d.get("history_revisions", [])),
        complete=bool(d.get("complete", True)),
    )


def tracker_to_json(t: AppTracker) -> dict[str, Any]:
    out = {f.name: _plain(getattr(t, f.name)) for f in dataclasses.fields(t) if f.name != "last"}
    out["last"] = snapshot_to_json(t.last) if t.last else None
    return out


def tracker_from_json(d: dict[str, Any]) -> AppTracker:
    return AppTracker(
        last=snapshot_from_json(d["last"]) if d.get("last") else None,
        deployed_revision=d.get("deployed_revision"),
        deployed_at=_parse_time(d.get("deployed_at")),
        manifest_error_revision=d.get("manifest_error_revision"),
        manifest_error_since=_parse_time(d.get("manifest_error_since")),
        degraded_since=_parse_time(d.get("degraded_since")),
        progressing_since=_parse_time(d.get("progressing_since")),
        open_failures=tuple((k, r) for k, r in d.get("open_failures", [])),
        good_revisions=tuple(d.get("good_revisions", [])),
        emitted=tuple(d.get("emitted", [])),
    )
