"""Slack delivery state: notices already sent (dedup across restarts) and each incident's thread."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from watcher.core.codec import from_row
from watcher.store.schema import notifications, slack_threads


@dataclass(frozen=True, slots=True)
class SlackThread:
    """An incident's thread: where its parent message is, and what to redraw it from when resolved."""

    id: int
    app: str
    revision: str | None
    incident_id: int | None
    channel: str
    ts: str
    parent: dict[str, Any]
    started_at: datetime
    resolved_at: datetime | None = None


class SlackDelivery:
    def __init__(self, engine: Engine):
        self.engine = engine

    def notification_sent(self, key: str) -> bool:
        q = sa.select(notifications.c.dedup_key).where(notifications.c.dedup_key == key)
        with self.engine.connect() as conn:
            return conn.execute(q).first() is not None

    def record_notification(self, key: str, channel: str, ts: str | None, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(notifications.delete().where(notifications.c.dedup_key == key))
            conn.execute(notifications.insert(), {"dedup_key": key, "channel": channel, "ts": ts, "sent_at": at})

    def thread(self, app: str, incident_id: int | None, revision: str | None) -> SlackThread | None:
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
                    return from_row(SlackThread, row)
        return None

    def incident_thread(self, incident_id: int) -> SlackThread | None:
        """The incident's thread, open or resolved (the incident page links to it)."""
        q = sa.select(slack_threads).where(slack_threads.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            row = conn.execute(q.order_by(slack_threads.c.id.desc()).limit(1)).first()
        return from_row(SlackThread, row) if row is not None else None

    def save_thread(
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

    def attach_thread(self, thread_id: int, incident_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                slack_threads.update()
                .where(slack_threads.c.id == thread_id, slack_threads.c.incident_id.is_(None))
                .values(incident_id=incident_id)
            )

    def open_threads(self, app: str) -> list[SlackThread]:
        q = sa.select(slack_threads).where(slack_threads.c.app == app, slack_threads.c.resolved_at.is_(None))
        with self.engine.connect() as conn:
            return [from_row(SlackThread, r) for r in conn.execute(q.order_by(slack_threads.c.id))]

    def resolve_thread(self, thread_id: int, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(slack_threads.update().where(slack_threads.c.id == thread_id).values(resolved_at=at))
