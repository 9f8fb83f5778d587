"""Auto-revert, wired: read once (Argo CD, git, store) -> decide (pure) -> act -> write the outcome -> verify.

Side effects of one incident, in order, and why that order:
1. Argo CD, git and the store are read once (revert_reads), and the facts built by one pure function;
2. the decision is stored with its evidence before anything is done (the audit trail never lags the act);
3. the revert's intent is stored before git is touched (a crash after it is reconciled against git on start);
4. git reverts and pushes; the outcome is written in one place (`_write`): state, metric, log, listeners;
5. only after a push, Argo CD is asked (argocd_nudge) to end a sync still retrying the bad revision and to refresh.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from watcher.core.facts import Facts, Watched
from watcher.core.lease import ALONE_FENCE
from watcher.core.outcome import Handled, Outcome, outcome_of
from watcher.core.policy import NOT_A_COMMIT, RevertRules, decide
from watcher.core.revert_message import revert_message, revert_title
from watcher.domain import (
    INCIDENT_KINDS,
    Action,
    Commit,
    Decision,
    Event,
    Incident,
    NeedsHuman,
    RetryLater,
    RevertMode,
    RevertReport,
    RevertResult,
    RevertState,
    RevertStep,
    StepDetail,
    utcnow,
)
from watcher.logs import get_logger
from watcher.metrics.registry import Metrics
from watcher.ports import ArgoCDActions, Fence, Fleet, HelmRenderer, Listener, PullRequests, RevertRepo
from watcher.revert.nudge import deploy_now
from watcher.revert.reads import IncidentReader
from watcher.revert.reconcile import settle_unfinished
from watcher.revert.retry_queue import RetryQueue
from watcher.revert.suspensions import Suspensions
from watcher.revert.verify import RevertVerifier
from watcher.settings import Settings
from watcher.store import Store

NO_DETAIL = StepDetail()
NUDGE_RULES = frozenset({"undone_on_branch", "fix_on_branch"})  # the fix is on the branch: deploy it now


def rules_from(s: Settings) -> RevertRules:
    r = s.revert
    return RevertRules(
        mode=RevertMode(r.mode),
        allow=tuple(r.allow),
        deny=tuple(r.deny),
        cooldown=timedelta(seconds=r.cooldown_seconds),
        max_reverts_per_hour=r.max_reverts_per_hour,
        attribution_window=timedelta(seconds=s.detection.attribution_window_seconds),
        fix_wait=timedelta(seconds=r.fix_wait_seconds),
        revert_without_auto_sync=r.without_auto_sync == "revert",
    )


class Reverter(Listener):
    """One worker thread takes incidents in order; every step's outcome is logged and stored."""

    def __init__(
        self,
        settings: Settings,
        fleet: Fleet,
        argocd: ArgoCDActions,
        repo: RevertRepo,
        store: Store,
        metrics: Metrics,
        pulls: PullRequests | None = None,
        clock: Callable[[], datetime] = utcnow,
        fence: Fence = ALONE_FENCE,
        renderer: HelmRenderer | None = None,
        listeners: Sequence[Listener] = (),
    ):
        self.settings = settings
        self.fence = fence  # only the leader decides and acts; a standby's reverter waits
        self.rules = rules_from(settings)
        self.fleet = fleet
        self.argocd = argocd
        self.repo = repo
        self.audit = store.audit
        watched = Watched(settings.git.url, settings.git.watched_branches)
        r = settings.revert
        self.reader = IncidentReader(
            fleet, argocd, repo, store.audit, r.max_candidates, watched, r.narrow, r.split, renderer
        )
        self.incidents = store.detection
        self.pulls = pulls
        self.clock = clock
        self.metrics = metrics
        self.log = get_logger().bind(component="reverter")
        self.pending = RetryQueue()  # incident id -> when it is due, and its backoff
        self.reconciled = False
        self.suspensions = Suspensions(store.audit, metrics, self.log)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners = tuple(listeners)  # wired by the daemon: Slack, what a caller passes in
        self.verifier = RevertVerifier(
            fleet, repo, store.audit, store.detection, metrics, self.log, self._report, self.suspensions.refresh_gauges
        )

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reverter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for handled in self.run_once():
                    self.log.info("incident_handled", summary=handled.sentence())
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad incident; it is logged
                self.log.exception("reverter_step_failed", error=str(exc))
            self._wake.wait(1.0)
            self._wake.clear()

    def on_event(self, e: Event) -> None:
        if e.kind not in INCIDENT_KINDS:
            return
        if e.incident_id is not None:  # the store minted it when it recorded the event
            self.pending.put(e.incident_id)
            self._wake.set()

    def take_over(self) -> None:
        """This replica became the leader: start from the store, as after a restart (reconcile what the
        previous leader left started, decide the open incidents it did not)."""
        self.pending.clear()
        self.reconciled = False
        self._wake.set()

    def stand_by(self) -> None:
        self.pending.clear()
        self.suspensions.clear_gauges()

    def run_once(self) -> list[Handled]:
        """One pass: finish what a crash left, decide every incident that is due, verify pushed reverts."""
        if not self.fence.leading():
            return []
        if not self.reconciled:
            self.reconcile()
        handled = []
        for incident_id in self.pending.due():
            if self._stop.is_set():
                break
            handled.append(self.handle(incident_id))
        self.verify()
        return handled

    # -- crash safety -----------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Finish what a killed process left: a revert whose intent is recorded but whose outcome is not."""
        if not settle_unfinished(self.audit, self.incidents, self.repo, self._verify_deadline, self._write, self.log):
            return
        for incident_id in self.audit.open_incidents_undecided():
            self.pending.put_unless_queued(incident_id)
        self.suspensions.refresh_gauges()
        self.reconciled = True

    def _verify_deadline(self) -> datetime:
        return self.clock() + timedelta(seconds=self.settings.revert.verify_deadline_seconds)

    # -- decide -----------------------------------------------------------------------------------------
    def handle(self, incident_id: int) -> Handled:
        incident = self.incidents.incident(incident_id)
        if incident is None or incident.resolved_at is not None:
            self.pending.done(incident_id)
            return Handled(incident_id, incident.app if incident else "", "closed")
        facts = self.reader.facts(incident, self.clock())
        now = self.clock()
        decision = decide(facts.policy, self.rules, now)
        handled = Handled(
            incident.id, incident.app, decision.action.value, decision.rule, decision.reason, decision.culprits
        )
        if not self.fence.confirm():  # reads are free; from here on every step writes or acts
            self.log.warning("decision_withheld_not_leader", app=incident.app, incident=incident.id)
            return replace(handled, action="withheld", rule="not_leader")
        if decision.action is Action.WAIT:
            waits, delay = self.pending.wait(incident.id)
            if waits == 1:  # one audit row per wait, not one per retry
                self._record(incident, decision, facts)
                self._nudge(incident, decision, facts)
            return replace(handled, retry_in=delay)
        self.pending.done(incident.id)
        self._record(incident, decision, facts)
        self._nudge(incident, decision, facts)
        if decision.open_circuit:
            self.suspensions.open_circuit(decision.reason, incident.app, now)
            self._report(RevertStep.CIRCUIT_OPEN, incident, (), StepDetail(reason=decision.reason))
        if decision.action is Action.REVERT and facts.blame is not None:
            b = facts.blame
            why = decision.evidence
            outcome = self.execute(incident, b.culprits, b.also_touched, facts.branch, b.only, b.kept, why)
            return replace(handled, outcome=outcome.state, retry_in=outcome.retry_after)
        blamed = facts.blame.culprits if facts.blame and decision.rule not in NOT_A_COMMIT else ()
        shown = StepDetail(rule=decision.rule, reason=decision.reason, evidence=decision.evidence)
        self._report(RevertStep.ALERT_ONLY, incident, blamed, shown)
        return handled

    def _nudge(self, incident: Incident, decision: Decision, facts: Facts) -> None:
        """The fix is already on the branch (a person's revert, a newer commit): have Argo CD deploy it now."""
        if decision.rule in NUDGE_RULES and facts.head:
            self._deploy_now([incident.app], facts.head)

    def _deploy_now(self, apps: list[str], revision: str) -> None:
        contexts = [self.fleet.app_context(app) for app in apps]
        revert = self.settings.revert
        deploy_now(self.argocd, contexts, revision, revert.terminate_retrying, self.log, self.settings.git.url)

    def _record(self, incident: Incident, decision: Decision, facts: Facts) -> None:
        evidence = dict(facts.evidence) | {"culprits": list(decision.culprits), "evidence_line": decision.evidence}
        self.audit.record_decision(
            incident.id, incident.app, self.clock(), decision.action, decision.rule, decision.reason,
            self.rules.mode, evidence,
        )  # fmt: skip
        self.metrics.decisions.labels(decision.action.value, decision.rule).inc()
        culprits = [f"{c.sha[:12]} by {c.author}: {c.subject}" for c in (facts.blame.culprits if facts.blame else ())]
        # A named culprit is worth a warning: it is the line that corrects failure_detected's deployed revision.
        (self.log.warning if culprits else self.log.info)(
            "revert_decided", app=incident.app, incident=incident.id, action=decision.action.value,
            rule=decision.rule, reason=decision.reason, culprits=culprits,
        )  # fmt: skip

    # -- act --------------------------------------------------------------------------------------------
    def execute(
        self,
        incident: Incident,
        culprits: tuple[Commit, ...],
        also_touched: Any = None,
        onto: str | None = None,
        only: Mapping[str, tuple[str, ...]] | None = None,
        kept: Mapping[str, tuple[str, ...]] | None = None,
        evidence: str = "",
    ) -> Outcome:
        """Revert `culprits` on `onto`, the branch the app follows (None: the first watched), as the mode says
        (`only`: culprit sha -> the only files undone); the outcome (whatever happened) is written by `_write`."""
        mode = self.rules.mode
        onto = onto or self.settings.git.watched_branches[0]
        message = revert_message(incident.app, incident, list(culprits), also_touched or {}, kept or {})
        author = (self.settings.revert.author_name, self.settings.revert.author_email)
        shas = [c.sha for c in culprits]
        revert_id = self.audit.start_revert(incident.id, incident.app, mode, shas, self.clock())
        branch = {
            RevertMode.PUSH: onto,
            RevertMode.PULL_REQUEST: f"{self.settings.revert.branch_prefix}{incident.id}-{shas[0][:10]}",
        }.get(mode)
        result: RevertResult | None = None
        error: RetryLater | NeedsHuman | None = None
        url = None
        try:
            retries = self.settings.revert.push_retries
            result = self.repo.revert(list(culprits), message, author, branch, retries, onto, dict(only or {}))
            if mode is RevertMode.PULL_REQUEST:
                assert self.pulls is not None and branch is not None
                url = self.pulls.open(branch, onto, revert_title(incident.app, culprits), message)
        except (RetryLater, NeedsHuman) as exc:
            error = exc
        deadline = self._verify_deadline()
        outcome = outcome_of(mode, result, error, message=message, branch=branch, url=url, verify_deadline=deadline)
        told = replace(outcome.told, evidence=evidence)  # what the revert rests on, beside the culprits
        self._write(revert_id, incident, culprits, replace(outcome, told=told))
        if outcome.state is RevertState.PUSHED and result is not None and result.sha:
            also = sorted({a for apps in (also_touched or {}).values() for a in apps})
            self._deploy_now([incident.app, *also], result.sha)
        return outcome

    def _write(self, revert_id: int, incident: Incident, culprits: tuple[Commit, ...], outcome: Outcome) -> None:
        """The one place an outcome is performed: the revert row, the metric, one log line, the listeners."""
        now = self.clock()
        detail = dict(outcome.detail) | ({"needs_human": True} if outcome.needs_human else {})  # what status reads
        self.audit.finish_revert(revert_id, outcome.state, now, detail=detail, **outcome.columns)
        self.metrics.reverts.labels(outcome.state.value).inc()
        if outcome.landed:
            self.metrics.time_to_revert.observe(max((now - incident.onset).total_seconds(), 0.0))
        shown = {k: v for k, v in detail.items() if k not in ("message", "diffstat")}
        getattr(self.log, outcome.level)(
            outcome.event, app=incident.app, incident=incident.id, culprits=[c.sha[:12] for c in culprits],
            **{k: v for k, v in outcome.columns.items() if k != "verify_deadline"}, **shown,
        )  # fmt: skip
        if outcome.retry_after is not None:
            self.pending.put(incident.id, outcome.retry_after)
        if outcome.step is not None:
            self._report(outcome.step, incident, culprits, outcome.told)

    # -- verify -----------------------------------------------------------------------------------------
    def verify(self) -> None:
        self.verifier.run(self.clock())

    # -- operators --------------------------------------------------------------------------------------
    def resume(self, app: str | None, circuit: bool) -> dict[str, Any]:
        return self.suspensions.resume(app, circuit, self.clock())

    def _report(
        self, step: RevertStep, incident: Incident, culprits: tuple[Commit, ...] = (), detail: StepDetail = NO_DETAIL
    ) -> None:
        """Tell the listeners (Slack, the demo) a step's outcome, with the blamed commits: not Argo CD's head."""
        report = RevertReport(step, incident.id, incident.app, incident.kind, incident.revision, culprits, detail)
        for listener in self.listeners:
            listener.on_report(report)
