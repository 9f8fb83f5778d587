"""The schema (append-only migrations) and the statements prebuilt once per dialect."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

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
    sa.Column("uid", sa.String(32)),  # schema version 4: domain.Incident.uid
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
    # domain.RevertState: started (intent recorded, outcome unknown) -> one final state
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("started_at", TZ, nullable=False),
    sa.Column("finished_at", TZ),
    sa.Column("revert_sha", sa.String(64)),
    sa.Column("base_sha", sa.String(64)),
    sa.Column("url", sa.Text),
    sa.Column("verify_deadline", TZ),
    sa.Column("verified_at", TZ),
    sa.Column("verify_result", sa.String(16), nullable=False, default=""),  # domain.VerifyResult
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
# -- pre-flight (schema version 4) --------------------------------------------------------------------------
preflight_verdicts = sa.Table(  # one verdict per (app, commit): Argo CD is asked once, and the verdict kept
    "preflight_verdicts",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(253), nullable=False, index=True),
    sa.Column("commit_sha", sa.String(64), nullable=False),
    sa.Column("synced_revision", sa.String(64)),
    sa.Column("verdict", sa.String(32), nullable=False),  # core.preflight.Verdict
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("seen_at", TZ, nullable=False),  # when the watcher saw the commit
    sa.Column("judged_at", TZ, nullable=False),
    sa.Column("action", sa.String(32), nullable=False, default=""),  # "reverted", "warned", "" (recorded only)
    sa.Column("argocd_said", sa.String(32)),  # core.preflight.ArgoSaid, once Argo CD's own verdict arrived
    sa.Column("agreed", sa.Boolean),
    sa.UniqueConstraint("app", "commit_sha", name="uq_preflight_app_commit"),
)
preflight_paused = sa.Table(  # apps whose local schema checks stopped after Argo CD disagreed, until reset
    "preflight_paused",
    meta,
    sa.Column("app", sa.String(253), primary_key=True),
    sa.Column("since", TZ, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)
Migration = Callable[[Connection], None]
# Append only: each entry moves the schema one version up; a started daemon runs the ones it has not.
MIGRATIONS: list[Migration] = [
    lambda conn: meta.create_all(conn, tables=[trackers, timeline, events, deployments, incidents]),
    lambda conn: meta.create_all(conn, tables=[decisions, reverts, suspensions, controls]),
    lambda conn: meta.create_all(conn, tables=[notifications, slack_threads]),
    lambda conn: meta.create_all(conn, tables=[preflight_verdicts, preflight_paused]),
    lambda conn: _add_incident_uids(conn),
]


def new_incident_uid() -> str:
    return secrets.token_hex(8)


def incident_row(
    app: str, kind: str, revision: str | None, at: datetime, reason: str, evidence: Mapping[str, Any]
) -> dict[str, Any]:
    """A new incident's row, whoever opens it (detection, the pre-flight), with the random uid its revert's
    trailer names it by in git."""
    row = {"app": app, "kind": kind, "revision": revision, "detected_at": at, "reason": reason}
    return row | {"evidence": dict(evidence), "resolution": "", "uid": new_incident_uid()}


def _add_incident_uids(conn: Connection) -> None:
    """Version 4: every incident gets its random uid (a store made at version 1 today has the column already)."""
    if "uid" not in {c["name"] for c in sa.inspect(conn).get_columns("incidents")}:
        conn.exec_driver_sql("ALTER TABLE incidents ADD COLUMN uid VARCHAR(32)")
    for (incident_id,) in conn.execute(sa.select(incidents.c.id).where(incidents.c.uid.is_(None))).all():
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(uid=new_incident_uid()))


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
