"""After a push: does the app come back, Synced and Healthy on the revert (or a descendant), before the deadline?
Healed resolves the incident; not healed suspends auto-revert for the app until a person resumes it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from watcher.core.outcome import settled_on_a_revision, verification
from watcher.domain import Commit, Incident, RevertState, RevertStep, StepDetail, VerifyResult
from watcher.metrics.registry import Metrics
from watcher.ports import Fleet, RevertRepo
from watcher.store.audit import RevertAudit
from watcher.store.detection import DetectionRecords

Notify = Callable[[RevertStep, Incident, tuple[Commit, ...], StepDetail], None]  # one report per step


class RevertVerifier:
    def __init__(
        self,
        fleet: Fleet,
        repo: RevertRepo,
        audit: RevertAudit,
        incidents: DetectionRecords,
        metrics: Metrics,
        log: Any,
        notify: Notify,
        suspended: Callable[[], None],
    ):
        self.fleet = fleet
        self.repo = repo
        self.audit = audit
        self.incidents = incidents
        self.metrics = metrics
        self.log = log
        self.notify = notify
        self.suspended = suspended  # refreshes the gauges after a suspension

    def run(self, now: datetime) -> None:
        for r in self.audit.reverts(states=(RevertState.PUSHED,), limit=50):
            if r.verify_result is not VerifyResult.PENDING or not r.revert_sha:
                continue
            settled = settled_on_a_revision(self.fleet.app_context(r.app).last)
            includes = settled is not None and (settled == r.revert_sha or self.repo.is_ancestor(r.revert_sha, settled))
            result = verification(includes, r.verify_deadline, now)
            if result is VerifyResult.PENDING:
                continue
            self.audit.verify_revert(r.id, result, now)
            self.metrics.verifications.labels(result.value).inc()
            incident = self.incidents.incident(r.incident_id)
            if result is VerifyResult.HEALED:
                self._healed(r.incident_id, r.app, r.revert_sha, incident, now)
            else:
                self._not_healed(r.incident_id, r.app, r.revert_sha, incident, now)

    def _healed(self, incident_id: int, app: str, sha: str, incident: Incident | None, now: datetime) -> None:
        self.incidents.resolve_incident(incident_id, now, f"healed by revert {sha[:12]}")
        self.log.info("revert_verified", app=app, revert=sha, incident=incident_id)
        if incident is not None:
            self.metrics.time_to_recover.observe(max((now - incident.onset).total_seconds(), 0.0))
            self.notify(RevertStep.RECOVERED, incident, (), StepDetail(revert=sha))

    def _not_healed(self, incident_id: int, app: str, sha: str, incident: Incident | None, now: datetime) -> None:
        reason = f"revert {sha[:12]} did not bring the app back within the deadline"
        self.audit.suspend(app, reason, incident_id, now)
        self.log.error("revert_did_not_heal", app=app, revert=sha, suspended=True)
        self.suspended()
        if incident is not None:
            self.notify(RevertStep.SUSPENDED, incident, (), StepDetail(reason=reason))
