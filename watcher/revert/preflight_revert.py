"""A commit Argo CD cannot render, reverted before Argo CD syncs it: the reverter's own checks and revert path.

Side effects, in order (as for any revert, see reverter.py): an incident is opened for the commit (the audit
trail and the verifier hang on it), the decision is stored with the pre-flight's evidence under the rule
`preflight_render_failed`, and only then is git touched, through Reverter.execute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from watcher.core.preflight import before_sync_facts, blame_of, decide_before_sync
from watcher.domain import Action, Commit, EventKind, RevertStep, StepDetail
from watcher.store.preflight import PreflightRecords

if TYPE_CHECKING:
    from watcher.revert.reverter import Reverter


class PreflightReverter:
    """ports.PreflightReverts over the reverter (its rules, fence, audit, and execute), beside it, not in it."""

    def __init__(self, reverter: Reverter, records: PreflightRecords):
        self.reverter = reverter
        self.records = records

    def revert_before_sync(
        self, app: str, commit: Commit, branch: str, synced: str | None, evidence: Mapping[str, Any], also: Any
    ) -> str:
        return revert_before_sync(self.reverter, self.records, app, commit, branch, synced, evidence, also)


def revert_before_sync(
    r: Reverter,
    records: PreflightRecords,
    app: str,
    commit: Commit,
    branch: str,
    synced: str | None,
    evidence: Mapping[str, Any],
    also: Any,
) -> str:
    """Decide (core.preflight.decide_before_sync) and act; the revert's outcome state, or the rule that stopped it."""
    if not r.fence.confirm():
        return "not_leader"
    now = r.clock()
    context = r.fleet.app_context(app)
    blame = blame_of(commit, synced, tuple(also))
    history = r.audit.revert_history(app, now)
    said, files = str(evidence.get("argocd_error") or ""), evidence.get("files") or ()
    git = r.settings.git
    facts = before_sync_facts(context, commit, blame, history, git.url, git.watched_branches, now, said, files)
    decision = decide_before_sync(facts, r.rules, now)
    reason = f"pre-flight: Argo CD cannot render {commit.sha[:12]} (before it synced it)"
    incident = records.open_incident(
        app, EventKind.MANIFEST_ERROR, commit.sha, reason, {"preflight": dict(evidence)}, now
    )
    incident_id = incident.id
    follows = facts.following.evidence() if facts.following else {}
    record = {"preflight": dict(evidence), "blame": blame.evidence(), "evidence_line": decision.evidence} | follows
    r.audit.record_decision(
        incident_id, app, now, decision.action, decision.rule, decision.reason, r.rules.mode, record
    )
    r.metrics.decisions.labels(decision.action.value, decision.rule).inc()
    r.log.warning(
        "revert_decided", app=app, incident=incident_id, action=decision.action.value, rule=decision.rule,
        reason=decision.reason, culprits=[f"{commit.sha[:12]} by {commit.author}: {commit.subject}"],
    )  # fmt: skip
    if decision.action is not Action.REVERT:
        r.incidents.resolve_incident(incident_id, now, f"not reverted: {decision.rule}")
        told = StepDetail(rule=decision.rule, reason=decision.reason, evidence=decision.evidence)
        r._report(RevertStep.ALERT_ONLY, incident, (commit,), told)
        return decision.rule
    outcome = r.execute(incident, (commit,), blame.also_touched, branch, evidence=decision.evidence)
    return outcome.state.value
