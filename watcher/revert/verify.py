"""After a push: did Argo CD deploy the revert (or a descendant) and the app come back, before the deadline?

The verdict is pure (core/verdict.py). Healed or restored resolves the incident (each in its own words: a revert
that needed no sync restored the live state and proves nothing about the culprit); not healed suspends
auto-revert for the app until a person resumes it. Past the deadline, Argo CD is asked first whether it may
deploy at all (a sync window, a progressive sync, a manual-sync app: revert/holds.py): then the deadline moves,
bounded by WATCHER_REVERT__HOLD_MAX_SECONDS, and Slack, `explain` and the metrics say why. Side effect besides
the store: a GET of an app whose list row cannot carry its revision (multi-source), to confirm it, at most once
every CONFIRM_EVERY per revert (the verifier runs every second; the answer is reused meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from watcher.core.outcome import revisions_not_listed
from watcher.core.verdict import Verdict, verdict_of
from watcher.domain import (
    AppSnapshot,
    Commit,
    Incident,
    RevertRecord,
    RevertState,
    RevertStep,
    StepDetail,
    VerifyResult,
)
from watcher.metrics.registry import Metrics
from watcher.ports import Fleet, RevertRepo
from watcher.revert.holds import HoldReader
from watcher.store.audit import RevertAudit
from watcher.store.detection import DetectionRecords

Notify = Callable[[RevertStep, Incident, tuple[Commit, ...], StepDetail], None]  # one report per step
Confirm = Callable[[str], AppSnapshot | None]  # app key -> a fresh GET's snapshot (None: Argo CD did not answer)
CONFIRM_EVERY = timedelta(seconds=5)  # a pending revert's confirming GET, not one a pass (a pass a second)


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
        holds: HoldReader | None = None,
        confirm: Confirm = lambda key: None,
    ):
        self.fleet = fleet
        self.repo = repo
        self.audit = audit
        self.incidents = incidents
        self.metrics = metrics
        self.log = log
        self.notify = notify
        self.suspended = suspended  # refreshes the gauges after a suspension
        self.holds = holds  # what Argo CD may do, asked past a deadline; its hold_max bounds the wait
        self.confirm = confirm
        self._confirmed: dict[int, tuple[datetime, AppSnapshot | None]] = {}  # revert id -> the last GET: when, what

    def run(self, now: datetime) -> None:
        held = 0
        pending = [
            r
            for r in self.audit.reverts(states=(RevertState.PUSHED,), limit=50)
            if r.verify_result is VerifyResult.PENDING and r.revert_sha
        ]
        ids = {r.id for r in pending}
        self._confirmed = {k: v for k, v in self._confirmed.items() if k in ids}
        for r in pending:
            verdict = self._verdict(r, now)
            if verdict.hold is not None:
                held += 1
                self._held(r, verdict, now)
                continue
            if verdict.result is VerifyResult.PENDING:
                held += 1 if r.detail.get("held") else 0
                continue
            self.audit.verify_revert(r.id, verdict.result, now)
            self.metrics.verifications.labels(verdict.result.value).inc()
            incident = self.incidents.incident(r.incident_id)
            if verdict.result is VerifyResult.NOT_HEALED:
                self._not_healed(r, verdict.reason, incident, now)
            else:
                self._resolved(r, verdict, incident, now)
        self.metrics.apps_held.set(held)

    def _verdict(self, r: RevertRecord, now: datetime) -> Verdict:
        assert r.revert_sha is not None
        sha = r.revert_sha
        context = self.fleet.app_context(r.app)
        snap = context.last
        if revisions_not_listed(snap):
            snap = self._confirmation(r, now) or snap

        def includes(rev: str) -> bool:
            return rev == sha or self.repo.is_ancestor(sha, rev)

        verdict = verdict_of(snap, sha, includes, (), r.verify_deadline, now)
        if verdict.result is not VerifyResult.NOT_HEALED or self.holds is None:
            return verdict
        hold = self.holds.read(context.name, context.namespace, now)
        return verdict_of(snap, sha, includes, (), r.verify_deadline, now, hold, r.started_at + self.holds.hold_max)

    def _confirmation(self, r: RevertRecord, now: datetime) -> AppSnapshot | None:
        """A fresh GET of the app, asked again only CONFIRM_EVERY after the last (or once past the deadline)."""
        asked = self._confirmed.get(r.id)
        deadline = r.verify_deadline
        # Nothing is judged past the deadline on an answer from before it: "did not heal" suspends the app.
        stale = asked is not None and deadline is not None and asked[0] < deadline <= now
        if asked is None or stale or now - asked[0] >= CONFIRM_EVERY:
            asked = (now, self.confirm(r.app))
            self._confirmed[r.id] = asked
        return asked[1]

    def _held(self, r: RevertRecord, verdict: Verdict, now: datetime) -> None:
        """Argo CD may not deploy the revert yet: move the deadline, and say why once per reason."""
        assert verdict.hold is not None and verdict.deadline is not None
        hold = verdict.hold
        before = r.detail.get("held")
        first = not isinstance(before, dict) or before.get("reason") != hold.reason.value
        self.audit.hold_revert(r.id, verdict.deadline, {"held": hold.evidence()})
        if not first:
            return
        self.metrics.revert_waits.labels(hold.reason.value).inc()
        self.log.warning("revert_held", app=r.app, revert=r.revert_sha, reason=hold.reason.value, why=hold.text,
                         until=verdict.deadline.isoformat())  # fmt: skip
        incident = self.incidents.incident(r.incident_id)
        if incident is not None:
            self.notify(RevertStep.HELD, incident, (), StepDetail(reason=verdict.reason, revert=r.revert_sha))

    def _resolved(self, r: RevertRecord, verdict: Verdict, incident: Incident | None, now: datetime) -> None:
        sha = r.revert_sha or ""
        healed = verdict.result is VerifyResult.HEALED
        resolution = f"healed by revert {sha[:12]}" if healed else f"revert {sha[:12]} {verdict.reason}"
        self.incidents.resolve_incident(r.incident_id, now, resolution)
        self.log.info("revert_verified", app=r.app, revert=sha, incident=r.incident_id, result=verdict.result.value,
                      why=verdict.reason)  # fmt: skip
        if incident is not None:
            self.metrics.time_to_recover.observe(max((now - incident.onset).total_seconds(), 0.0))
            step = RevertStep.RECOVERED if healed else RevertStep.RESTORED
            self.notify(step, incident, (), StepDetail(reason=verdict.reason, revert=sha))

    def _not_healed(self, r: RevertRecord, reason: str, incident: Incident | None, now: datetime) -> None:
        self.audit.suspend(r.app, reason, r.incident_id, now)
        self.log.error("revert_did_not_heal", app=r.app, revert=r.revert_sha, suspended=True, why=reason)
        self.suspended()
        if incident is not None:
            self.notify(RevertStep.SUSPENDED, incident, (), StepDetail(reason=reason))
