"""The revert audit: decisions with their evidence, revert attempts, suspensions and the revert circuit."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from watcher.core.codec import _utc, from_row
from watcher.domain import (
    ACTIVE_REVERT_STATES,
    REVERTED_STATES,
    Action,
    DecisionRecord,
    RevertHistory,
    RevertMode,
    RevertRecord,
    RevertState,
    Suspension,
    VerifyResult,
)
from watcher.store.schema import controls, decisions, incidents, reverts, suspensions

CIRCUIT = "revert_circuit"


class RevertAudit:
    def __init__(self, engine: Engine):
        self.engine = engine

    # -- what the policy reads, in one go -------------------------------------------------------------------
    def revert_history(self, app: str, now: datetime) -> RevertHistory:
        """Everything the policy needs from the past for `app`, read in one transaction."""
        rows_q = sa.select(reverts.c.id, reverts.c.app, reverts.c.state, reverts.c.culprits, reverts.c.finished_at)
        with self.engine.connect() as conn:
            rows = conn.execute(rows_q.where(reverts.c.state.in_([s.value for s in REVERTED_STATES]))).all()
            suspension = conn.execute(sa.select(suspensions.c.reason).where(suspensions.c.app == app)).scalar()
            circuit = conn.execute(sa.select(controls.c.value).where(controls.c.key == CIRCUIT)).scalar()
        active = [(r.app, _utc(r.finished_at)) for r in rows if r.state in ACTIVE_REVERT_STATES and r.finished_at]
        own = [at for a, at in active if a == app]
        return RevertHistory(
            reverted={sha: f"revert #{r.id} {r.state}" for r in rows for sha in r.culprits},
            suspension=suspension,
            circuit=(circuit or {}).get("reason") if circuit else None,
            last_revert_at=max(own) if own else None,
            reverts_last_hour=sum(1 for _, at in active if at >= now - timedelta(hours=1)),
        )

    # -- decisions ------------------------------------------------------------------------------------------
    def record_decision(
        self,
        incident_id: int | None,
        app: str,
        at: datetime,
        action: Action,
        rule: str,
        reason: str,
        mode: RevertMode,
        evidence: Mapping[str, Any],
    ) -> int:
        row: dict[str, Any] = {"incident_id": incident_id, "app": app, "at": at, "action": action.value, "rule": rule}
        row |= {"reason": reason, "mode": mode.value, "evidence": dict(evidence)}
        with self.engine.begin() as conn:
            return int(conn.execute(decisions.insert().returning(decisions.c.id), row).scalar_one())

    def decisions(
        self, app: str | None = None, incident_id: int | None = None, limit: int = 100
    ) -> list[DecisionRecord]:
        q = sa.select(decisions).order_by(decisions.c.id.desc()).limit(limit)
        if app:
            q = q.where(decisions.c.app == app)
        if incident_id is not None:
            q = q.where(decisions.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            return [from_row(DecisionRecord, r) for r in conn.execute(q)]

    def open_incidents_undecided(self) -> list[int]:
        """Open incidents with no decision but "wait" on record, or whose last revert reached nothing (not_pushed):
        a restart decides them again."""
        decided = sa.select(decisions.c.incident_id).where(
            decisions.c.action != Action.WAIT.value, decisions.c.incident_id.is_not(None)
        )
        last = sa.select(sa.func.max(reverts.c.id)).group_by(reverts.c.incident_id)
        postponed = sa.select(reverts.c.incident_id).where(
            reverts.c.id.in_(last), reverts.c.state == RevertState.NOT_PUSHED.value
        )
        q = sa.select(incidents.c.id).where(
            incidents.c.resolved_at.is_(None), sa.or_(incidents.c.id.not_in(decided), incidents.c.id.in_(postponed))
        )
        with self.engine.connect() as conn:
            return [row.id for row in conn.execute(q.order_by(incidents.c.id))]

    # -- reverts --------------------------------------------------------------------------------------------
    def start_revert(self, incident_id: int, app: str, mode: RevertMode, culprits: list[str], at: datetime) -> int:
        """Record the intent before touching git: a crash after this is reconciled against git on start."""
        row = {"incident_id": incident_id, "app": app, "mode": mode.value, "culprits": culprits}
        row |= {"state": RevertState.STARTED.value, "started_at": at, "verify_result": "", "detail": {}}
        with self.engine.begin() as conn:
            return int(conn.execute(reverts.insert().returning(reverts.c.id), row).scalar_one())

    def finish_revert(self, revert_id: int, state: RevertState, at: datetime, **fields: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                reverts.update().where(reverts.c.id == revert_id).values(state=state.value, finished_at=at, **fields)
            )

    def verify_revert(self, revert_id: int, result: VerifyResult, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                reverts.update().where(reverts.c.id == revert_id).values(verify_result=result.value, verified_at=at)
            )

    def hold_revert(self, revert_id: int, deadline: datetime, detail: Mapping[str, Any]) -> None:
        """Argo CD may not deploy the revert yet: a later verify deadline, and why (merged into the row's detail)."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(reverts.c.detail).where(reverts.c.id == revert_id)).first()
            merged = dict(row[0] or {} if row else {}) | dict(detail)
            conn.execute(
                reverts.update().where(reverts.c.id == revert_id).values(verify_deadline=deadline, detail=merged)
            )

    def reverts(
        self,
        app: str | None = None,
        incident_id: int | None = None,
        states: Collection[RevertState] = (),
        limit: int = 200,
    ) -> list[RevertRecord]:
        q = sa.select(reverts).order_by(reverts.c.id.desc()).limit(limit)
        if app:
            q = q.where(reverts.c.app == app)
        if incident_id is not None:
            q = q.where(reverts.c.incident_id == incident_id)
        if states:
            q = q.where(reverts.c.state.in_([s.value for s in states]))
        with self.engine.connect() as conn:
            return [from_row(RevertRecord, r) for r in conn.execute(q)]

    # -- suspensions and the circuit ------------------------------------------------------------------------
    def suspend(self, app: str, reason: str, incident_id: int | None, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(suspensions.delete().where(suspensions.c.app == app))
            conn.execute(suspensions.insert(), {"app": app, "since": at, "reason": reason, "incident_id": incident_id})

    def resume(self, app: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(suspensions.delete().where(suspensions.c.app == app)).rowcount)

    def suspended(self) -> dict[str, Suspension]:
        with self.engine.connect() as conn:
            return {r.app: from_row(Suspension, r) for r in conn.execute(sa.select(suspensions))}

    def circuit(self) -> str | None:
        """Why the revert circuit is open, or None while it is closed."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(controls.c.value).where(controls.c.key == CIRCUIT)).scalar()
        return str(value.get("reason", "")) if value else None

    def set_circuit(self, reason: str | None, at: datetime) -> None:
        """Open the circuit with `reason`, or close it with None."""
        with self.engine.begin() as conn:
            conn.execute(controls.delete().where(controls.c.key == CIRCUIT))
            if reason is not None:
                value = {"reason": reason, "opened_at": at.isoformat()}
                conn.execute(controls.insert(), {"key": CIRCUIT, "value": value, "updated_at": at})
