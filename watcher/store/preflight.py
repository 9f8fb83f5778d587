"""Pre-flight records: one verdict per (app, commit), whether Argo CD agreed, and the apps whose local checks
are paused after a disagreement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from watcher.core.codec import _utc
from watcher.domain import EventKind, Incident
from watcher.store.schema import incident_row, incidents, preflight_paused, preflight_verdicts


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    id: int
    app: str
    commit_sha: str
    synced_revision: str | None
    verdict: str
    reason: str
    evidence: Mapping[str, Any]
    seen_at: datetime
    judged_at: datetime
    action: str
    argocd_said: str | None
    agreed: bool | None


class PreflightRecords:
    def __init__(self, engine: Engine):
        self.engine = engine

    def record(
        self,
        app: str,
        commit_sha: str,
        synced_revision: str | None,
        verdict: str,
        reason: str,
        evidence: Mapping[str, Any],
        seen_at: datetime,
        judged_at: datetime,
    ) -> bool:
        """Keep the verdict; False when one was kept for (app, commit) already (another replica, a restart)."""
        row = {
            "app": app, "commit_sha": commit_sha, "synced_revision": synced_revision, "verdict": verdict,
            "reason": reason, "evidence": dict(evidence), "seen_at": seen_at, "judged_at": judged_at, "action": "",
        }  # fmt: skip
        try:
            with self.engine.begin() as conn:
                conn.execute(preflight_verdicts.insert(), row)
        except IntegrityError:
            return False
        return True

    def judged(self, app: str, commit_sha: str) -> bool:
        q = sa.select(preflight_verdicts.c.id).where(
            preflight_verdicts.c.app == app, preflight_verdicts.c.commit_sha == commit_sha
        )
        with self.engine.connect() as conn:
            return conn.execute(q).first() is not None

    def set_action(self, app: str, commit_sha: str, action: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                preflight_verdicts.update()
                .where(preflight_verdicts.c.app == app, preflight_verdicts.c.commit_sha == commit_sha)
                .values(action=action)
            )

    def score(self, app: str, commit_sha: str, argocd_said: str, agreed: bool) -> VerdictRecord | None:
        """Argo CD's own verdict on a judged commit, kept once (the first word counts); the record, if any."""
        t = preflight_verdicts
        with self.engine.begin() as conn:
            found = conn.execute(
                t.update()
                .where(t.c.app == app, t.c.commit_sha == commit_sha, t.c.argocd_said.is_(None))
                .values(argocd_said=argocd_said, agreed=agreed)
            ).rowcount
        return self.verdicts(app=app, commit_sha=commit_sha, limit=1)[0] if found else None

    def verdicts(self, app: str | None = None, commit_sha: str | None = None, limit: int = 50) -> list[VerdictRecord]:
        t = preflight_verdicts
        q = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if app:
            q = q.where(t.c.app == app)
        if commit_sha:
            q = q.where(t.c.commit_sha == commit_sha)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            VerdictRecord(
                r.id,
                r.app,
                r.commit_sha,
                r.synced_revision,
                r.verdict,
                r.reason,
                r.evidence or {},
                _utc(r.seen_at),
                _utc(r.judged_at),
                r.action or "",
                r.argocd_said,
                r.agreed,
            )  # fmt: skip
            for r in rows
        ]

    def open_incident(
        self, app: str, kind: EventKind, revision: str, reason: str, evidence: Mapping[str, Any], at: datetime
    ) -> Incident:
        """The incident a revert before Argo CD syncs hangs on (the reverts table names one): resolved by the
        verifier once Argo CD settles on the revert, as any other; its uid names it in the revert's trailer."""
        row = incident_row(app, kind.value, revision, at, reason, evidence)
        with self.engine.begin() as conn:
            result = conn.execute(incidents.insert().values(row))
            incident_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return Incident(incident_id, app, kind, revision, at, None, reason, row["evidence"], uid=row["uid"])

    # -- local checks paused after a disagreement, until a person resets them ------------------------------
    def pause(self, app: str, reason: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(preflight_paused.c.app).where(preflight_paused.c.app == app)).first() is None:
                conn.execute(preflight_paused.insert().values(app=app, since=at, reason=reason))

    def reset(self, app: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(preflight_paused.delete().where(preflight_paused.c.app == app)).rowcount)

    def paused(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.app: r.reason for r in conn.execute(sa.select(preflight_paused))}
