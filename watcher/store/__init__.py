"""Persistence over one engine: SQLite (WAL) by default, PostgreSQL by URL (SQLAlchemy Core).

Split by concern, each part a small class over the same engine: `detection` (trackers, timeline, events,
deployments, incidents), `audit` (decisions, reverts, suspensions, the circuit), `slack` (delivery state) and
`preflight` (verdicts on commits before Argo CD deploys them).
It keeps data, not rules: what an event opens or closes comes from the pure `watcher.core.ledger`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from watcher.core.delivery import SlackThread
from watcher.store.audit import RevertAudit
from watcher.store.delivery import SlackDelivery
from watcher.store.detection import DetectionRecords, Observation
from watcher.store.preflight import PreflightRecords
from watcher.store.schema import MIGRATIONS, Statements, schema_version

__all__ = ["MIGRATIONS", "Observation", "SlackThread", "Store"]
MIGRATION_LOCK = 0x73796E636D696772  # "syncmigr": not the leader lock, which a standby never holds


class Store:
    def __init__(self, url: str):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, Any] = {}
        if url.startswith("postgresql"):  # every call has a deadline: connecting, and each statement
            connect_args = {"connect_timeout": 10, "options": "-c statement_timeout=30000"}
        self.engine: Engine = sa.create_engine(
            url.replace("postgresql://", "postgresql+psycopg://", 1), connect_args=connect_args
        )
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.migrate()
        self.detection = DetectionRecords(self.engine, Statements(self.engine.dialect.name))
        self.audit = RevertAudit(self.engine)
        self.slack = SlackDelivery(self.engine)
        self.preflight = PreflightRecords(self.engine)

    def migrate(self) -> int:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":  # two replicas starting at once migrate one after the other
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            schema_version.create(conn, checkfirst=True)
            current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
            for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
                step(conn)
                conn.execute(schema_version.insert().values(version=version))
        return len(MIGRATIONS)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
