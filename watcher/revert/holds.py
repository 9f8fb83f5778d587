"""What Argo CD may do for one app now (its sync policy, its sync windows, who syncs it), read when it matters:
before a revert is pushed, and when a pushed revert has not deployed by its deadline. Pure rules in
core/sync_permit.py; this module only reads, and a read that fails is no hold (logged, never a guess)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from watcher.core.blame import Blame
from watcher.core.hold_policy import HOLD_RULES, held_decision
from watcher.core.sync_permit import Hold, automated, hold_of, synced_by_appset, window_hold, windows_of
from watcher.domain import Action, Decision, Incident, RetryLater, RevertStep, StepDetail
from watcher.metrics.registry import Metrics
from watcher.ports import ArgoCDActions, Fleet
from watcher.revert.retry_queue import RetryQueue

HOLD_RECHECK_SECONDS = 300.0  # a decision held by a sync window is looked at again this often


def hold_delay(until: datetime, backoff: float, now: datetime) -> float:
    """Seconds until a held decision is looked at again: its end, but at least the backoff, at most 5 minutes."""
    return max(backoff, min((until - now).total_seconds(), HOLD_RECHECK_SECONDS))


class HoldReader:
    def __init__(self, argocd: ArgoCDActions, log: Any, hold_max: timedelta = timedelta(hours=24)):
        self.argocd = argocd
        self.log = log
        self.hold_max = hold_max  # WATCHER_REVERT__HOLD_MAX_SECONDS: the longest wait for Argo CD to be allowed

    def gate(self, decision: Decision, incident: Incident, fleet: Fleet, now: datetime) -> Decision:
        """A revert the policy decided, unless Argo CD may not deploy it now (core/hold_policy.py)."""
        if decision.action is not Action.REVERT:
            return decision
        context = fleet.app_context(incident.app)
        project = context.last.project if context.last else ""
        hold = self.windows(context.name, context.namespace, project, now)
        return held_decision(decision, hold, incident.detected_at, self.hold_max, now)

    @staticmethod
    def requeue(pending: RetryQueue, incident_id: int, decision: Decision, now: datetime) -> tuple[int, float]:
        """Queue a WAIT again after its backoff; a held one at the hold's end (every few minutes) instead."""
        waits, delay = pending.wait(incident_id)
        if decision.wait_until is not None:
            delay = hold_delay(decision.wait_until, delay, now)
            pending.put(incident_id, delay)
        return waits, delay

    @staticmethod
    def announce(decision: Decision, incident: Incident, blame: Blame | None, metrics: Metrics, notify: Any) -> None:
        """Say once why a revert waits for Argo CD (Slack's "held", the metric)."""
        if decision.rule in HOLD_RULES:
            metrics.revert_waits.labels(decision.rule).inc()
            culprits = blame.culprits if blame else ()
            notify(RevertStep.HELD, incident, culprits, StepDetail(rule=decision.rule, reason=decision.reason))

    def windows(self, name: str, namespace: str, project: str, now: datetime) -> Hold | None:
        """Only the sync windows: for an app whose sync policy is already known to deploy by itself."""
        try:
            answer = self.argocd.sync_windows(name, namespace)
        except RetryLater as exc:
            self.log.warning("sync_windows_unreadable", app=name, error=str(exc)[:300])
            return None
        if not answer.get("assignedWindows"):
            return None
        zones: list[Any] = []
        try:  # only the project's windows carry timeZone (the app endpoint drops it)
            zones = (self.argocd.project_sync_windows(project).get("windows") or []) if project else []
        except RetryLater as exc:
            self.log.warning("project_sync_windows_unreadable", app=name, project=project, error=str(exc)[:300])
        return window_hold(windows_of(answer, zones), now)

    def read(self, name: str, namespace: str, now: datetime) -> Hold | None:
        """Everything: the app (sync policy, who synced it last), then its windows when it syncs by itself."""
        try:
            app = self.argocd.get_app(name, namespace)
        except RetryLater as exc:
            self.log.warning("hold_unreadable", app=name, error=str(exc)[:300])
            return None
        progressive, auto = synced_by_appset(app), automated(app)
        held = hold_of(auto, progressive, (), now)
        if held is not None or not auto:
            return held
        project = str((app.get("spec") or {}).get("project", ""))
        return self.windows(name, namespace, project, now)
