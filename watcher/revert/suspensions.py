"""Suspended apps and the circuit, as the gauges show them and as an operator resumes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watcher.metrics.registry import Metrics
from watcher.store.audit import RevertAudit


class Suspensions:
    def __init__(self, audit: RevertAudit, metrics: Metrics, log: Any):
        self.audit = audit
        self.metrics = metrics
        self.log = log

    def refresh_gauges(self) -> None:
        self.metrics.suspended_apps.set(len(self.audit.suspended()))
        self.metrics.circuit_open.set(1 if self.audit.circuit() is not None else 0)

    def clear_gauges(self) -> None:
        """A standby: the leader reports suspensions and the circuit, and a stale copy here would hold an alert
        after a resume."""
        self.metrics.suspended_apps.set(0)
        self.metrics.circuit_open.set(0)

    def open_circuit(self, reason: str, app: str, now: datetime) -> None:
        self.audit.set_circuit(reason, now)
        self.log.error("revert_circuit_opened", app=app, reason=reason)
        self.refresh_gauges()

    def resume(self, app: str | None, circuit: bool, now: datetime) -> dict[str, Any]:
        resumed = self.audit.resume(app) if app else False
        closed = False
        if circuit and self.audit.circuit() is not None:
            self.audit.set_circuit(None, now)
            closed = True
        self.log.warning("auto_revert_resumed", app=app, app_was_suspended=resumed, circuit_closed=closed)
        self.refresh_gauges()
        return {"app": app, "resumed": resumed, "circuit_closed": closed}
