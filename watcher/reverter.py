"""Auto-revert, wired: incident -> facts (Argo CD, git, store) -> blame + policy -> act -> verify, all recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from watcher.adapters.argocd import ArgoCDError, snapshot_from_app
from watcher.adapters.forge import ForgeError, PullRequests
from watcher.adapters.gitrepo import (
    GitError,
    GitUnavailable,
    NothingToRevert,
    PushRejected,
    RevertConflict,
    RevertResult,
)
from watcher.blame import AppSources, Blame, blame, helm_dirs, last_good_revision
from watcher.domain import (
    INCIDENT_KINDS,
    Action,
    AppSnapshot,
    ChangedCommit,
    Commit,
    Decision,
    Event,
    Health,
    Incident,
    Phase,
    RevertMode,
    SyncStatus,
)
from watcher.logs import get_logger
from watcher.policy import PolicyFacts, RevertRules, decide, opt_in_from, still_failing
from watcher.revert_message import revert_message, revert_title
from watcher.service import Watcher, utcnow
from watcher.settings import Settings
from watcher.store import Store, snapshot_to_json

CIRCUIT = "revert_circuit"
SEEN_FIELDS = frozenset(
    {"sync_status", "sync_revision", "health", "phase", "operation_revision", "retry_count", "operation_message"}
)
MAX_WAIT_SECONDS = 30.0
RECONCILE_MARGIN = timedelta(minutes=10)  # clock skew between this pod and the commit's committer date


class RevertRepo(Protocol):
    def sync(self) -> str: ...
    def is_ancestor(self, ancestor: str, descendant: str) -> bool: ...
    def changes(self, since: str, until: str, paths: Any, limit: int) -> tuple[list[ChangedCommit], bool]: ...
    def find_reverts(self, shas: Any) -> dict[str, str]: ...
    def find_by_incident(self, incident_id: int, since: datetime) -> str | None: ...
    def revert(
        self, culprits: Any, message: str, author: tuple[str, str], push_branch: str | None, retries: int = 3
    ) -> RevertResult: ...


class ArgoCDActions(Protocol):
    def get_app(self, name: str, namespace: str = "", refresh: str | None = None) -> dict[str, Any]: ...
    def terminate_operation(self, name: str, namespace: str = "") -> None: ...


def rules_from(s: Settings) -> RevertRules:
    r = s.revert
    return RevertRules(
        mode=RevertMode(r.mode),
        allow=tuple(r.allow),
        deny=tuple(r.deny),
        cooldown=timedelta(seconds=r.cooldown_seconds),
        max_reverts_per_hour=r.max_reverts_per_hour,
        attribution_window=timedelta(seconds=s.detection.attribution_window_seconds),
    )


@dataclass
class Facts:
    """What was seen for one incident: the policy's input and the audit trail's evidence."""

    policy: PolicyFacts
    blame: Blame | None
    snapshot: AppSnapshot | None
    notes: dict[str, Any]

    def evidence(self) -> dict[str, Any]:
        seen = None
        if self.snapshot is not None:
            seen = {k: v for k, v in snapshot_to_json(self.snapshot).items() if k in SEEN_FIELDS}
            seen["operation_message"] = str(seen.get("operation_message", ""))[:500]
        p = self.policy
        return {
            "argocd_now": seen,
            "still_failing": p.still_failing,
            "blame": self.blame.evidence() if self.blame else None,
            "opt_in": p.opt_in,
            "suspended": p.suspended,
            "circuit": p.circuit,
            "already_reverted": dict(p.already_reverted),
            "last_revert_at": p.last_revert_at.isoformat() if p.last_revert_at else None,
            "reverts_last_hour": p.reverts_last_hour,
            **self.notes,
        }


class Reverter:
    """One worker thread takes incidents in order; every step's outcome is logged and stored."""

    def __init__(
        self,
        settings: Settings,
        watcher: Watcher,
        argocd: ArgoCDActions,
        repo: RevertRepo,
        store: Store,
        pulls: PullRequests | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.settings = settings
        self.rules = rules_from(settings)
        self.watcher = watcher
        self.argocd = argocd
        self.repo = repo
        self.store = store
        self.pulls = pulls
        self.clock = clock
        self.metrics = watcher.metrics
        self.log = get_logger().bind(component="reverter")
        self.pending: dict[int, float] = {}  # incident id -> monotonic time before which it waits
        self.waits: dict[int, int] = {}
        self.reconciled = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        watcher.listeners.append(self.on_event)

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
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad incident; it is logged
                self.log.exception("reverter_step_failed", error=str(exc))
            self._wake.wait(1.0)
            self._wake.clear()

    def on_event(self, e: Event) -> None:
        if e.kind not in INCIDENT_KINDS:
            return
        incident = self.store.find_incident(e.app, e.kind.value, e.revision)
        if incident is not None:
            with self._lock:
                self.pending.setdefault(incident.id, 0.0)
            self._wake.set()

    def run_once(self) -> None:
        if not self.reconciled:
            self.reconcile()
        now_mono = time.monotonic()
        with self._lock:
            due = sorted(i for i, t in self.pending.items() if t <= now_mono)
        for incident_id in due:
            if self._stop.is_set():
                return
            self.handle(incident_id)
        self.verify()

    # -- crash safety -----------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Finish what a killed process left: a revert whose intent is recorded but whose outcome is not."""
        unfinished = self.store.reverts(states=("started",))
        if unfinished:
            try:
                self.repo.sync()
            except GitError as exc:
                self.log.warning("revert_reconcile_waiting_for_git", error=str(exc), unfinished=len(unfinished))
                return  # "started" counts as reverted meanwhile: nothing can be reverted twice
        now = self.clock()
        for r in unfinished:
            found = self.repo.find_by_incident(r["incident_id"], r["started_at"] - RECONCILE_MARGIN)
            if found and r["mode"] == RevertMode.PUSH.value:
                deadline = now + timedelta(seconds=self.settings.revert.verify_deadline_seconds)
                self.store.finish_revert(
                    r["id"],
                    "pushed",
                    now,
                    revert_sha=found,
                    verify_deadline=deadline,
                    detail={"reconciled": "found in git after a restart"},
                )
                self.log.warning("revert_reconciled", app=r["app"], incident=r["incident_id"], revert=found)
            elif found:
                self.store.finish_revert(
                    r["id"],
                    "failed",
                    now,
                    revert_sha=found,
                    detail={"reconciled": "revert branch pushed before a restart; open the pull request by hand"},
                )
                self.log.warning("revert_needs_human", app=r["app"], incident=r["incident_id"], branch_commit=found)
            else:
                self.store.finish_revert(
                    r["id"], "not_pushed", now, detail={"reconciled": "not in git after a restart"}
                )
                self.log.warning("revert_not_pushed_before_restart", app=r["app"], incident=r["incident_id"])
                with self._lock:
                    self.pending.setdefault(r["incident_id"], 0.0)
        for incident_id in self.store.open_incidents_undecided(waiting=Action.WAIT.value):
            with self._lock:
                self.pending.setdefault(incident_id, 0.0)
        self._refresh_gauges()
        self.reconciled = True

    # -- decide -----------------------------------------------------------------------------------------
    def handle(self, incident_id: int) -> None:
        incident = self.store.incident(incident_id)
        if incident is None or incident.resolved_at is not None:
            with self._lock:
                self.pending.pop(incident_id, None)
            return
        facts = self.gather(incident)
        now = self.clock()
        decision = decide(facts.policy, self.rules, now)
        log = self.log.bind(app=incident.app, incident=incident.id, revision=incident.revision)
        if decision.action is Action.WAIT:
            waits = self.waits.get(incident.id, 0) + 1
            self.waits[incident.id] = waits
            with self._lock:
                self.pending[incident.id] = time.monotonic() + min(2.0**waits, MAX_WAIT_SECONDS)
            if waits == 1:  # one audit row per wait, not one per retry
                self._record(incident, decision, facts, log)
            return
        with self._lock:
            self.pending.pop(incident.id, None)
        self.waits.pop(incident.id, None)
        self._record(incident, decision, facts, log)
        if decision.open_circuit:
            self.store.set_control(CIRCUIT, {"reason": decision.reason, "opened_at": now.isoformat()}, now)
            log.error("revert_circuit_opened", reason=decision.reason)
            self._refresh_gauges()
            self._notify("circuit_open", incident, decision=decision.reason)
        if decision.action is Action.REVERT and facts.blame is not None:
            self.execute(incident, decision, facts.blame)
        else:
            blamed = facts.blame.culprits if facts.blame else ()
            self._notify("alert_only", incident, blamed, rule=decision.rule, reason=decision.reason)

    def _record(self, incident: Incident, decision: Decision, facts: Facts, log: Any) -> None:
        self.store.record_decision(
            incident.id,
            incident.app,
            self.clock(),
            decision.action.value,
            decision.rule,
            decision.reason,
            self.rules.mode.value,
            facts.evidence() | {"culprits": list(decision.culprits)},
        )
        self.metrics.decisions.labels(decision.action.value, decision.rule).inc()
        log.info("revert_decided", action=decision.action.value, rule=decision.rule, reason=decision.reason)

    def gather(self, incident: Incident) -> Facts:
        now = self.clock()
        app = incident.app
        tracker, all_specs, all_paths = self.watcher.app_context(app)
        meta = (all_specs.get(app) or {}).get("metadata") or {}
        name, namespace = self.watcher.app_ref(app)
        notes: dict[str, Any] = {}
        snap: AppSnapshot | None = None
        failing: bool | None = None
        try:
            snap = snapshot_from_app(self.argocd.get_app(name, namespace), complete=True)
            failing = still_failing(snap, incident.kind, incident.revision)
        except ArgoCDError as exc:
            notes["argocd_error"] = str(exc)
        found_blame: Blame | None = None
        if failing and incident.revision:
            try:
                found_blame = self._blame(incident, tracker, snap, app, all_paths, all_specs, notes)
            except GitError as exc:
                notes["git_error"] = str(exc)
        shas = [c.sha for c in found_blame.culprits] if found_blame else []
        already = self.store.reverted_commits()
        if shas:
            try:
                already |= {k: f"by {v[:12]} in git" for k, v in self.repo.find_reverts(shas).items()}
            except GitError as exc:
                notes["git_error"] = str(exc)
                found_blame = None
        suspended = self.store.suspended().get(app)
        circuit = self.store.control(CIRCUIT)
        app_reverts = self.store.reverts_since(now - self.rules.cooldown, app=app) if self.rules.cooldown else []
        policy = PolicyFacts(
            app=app,
            kind=incident.kind,
            detected_at=incident.detected_at,
            opt_in=opt_in_from(meta.get("annotations") or {}),
            suspended=suspended["reason"] if suspended else None,
            circuit=circuit["reason"] if circuit else None,
            still_failing=failing,
            blame=found_blame,
            already_reverted={k: v for k, v in already.items() if k in shas},
            last_revert_at=app_reverts[-1] if app_reverts else None,
            reverts_last_hour=len(self.store.reverts_since(now - timedelta(hours=1))),
        )
        return Facts(policy, found_blame, snap, notes)

    def _blame(
        self,
        incident: Incident,
        tracker: Any,
        snap: AppSnapshot | None,
        app: str,
        all_paths: dict[str, tuple[str, ...]],
        all_specs: dict[str, dict[str, Any]],
        notes: dict[str, Any],
    ) -> Blame:
        assert incident.revision is not None
        self.repo.sync()
        own = tracker.good_revisions if tracker is not None else ()
        history = snap.history_revisions if snap is not None else ()
        last_good, source = last_good_revision(own, history, incident.revision)
        notes["last_good_source"] = source
        paths = all_paths.get(app, ())
        sources = AppSources(paths, helm_dirs(all_specs.get(app, {}), paths))
        others = {k: AppSources(p, helm_dirs(all_specs.get(k, {}), p)) for k, p in all_paths.items() if k != app}
        ancestor = bool(last_good) and self.repo.is_ancestor(str(last_good), incident.revision)
        changes: list[ChangedCommit] = []
        truncated = False
        if last_good and ancestor and paths:
            limit = self.settings.revert.max_candidates * 4 + 10
            changes, truncated = self.repo.changes(last_good, incident.revision, paths, limit)
        return blame(
            app,
            incident.revision,
            last_good,
            ancestor,
            changes,
            sources,
            others,
            self.settings.revert.max_candidates,
            truncated,
        )

    # -- act --------------------------------------------------------------------------------------------
    def execute(self, incident: Incident, decision: Decision, found: Blame) -> None:
        mode = self.rules.mode
        culprits: list[Commit] = list(found.culprits)
        message = revert_message(incident.app, incident, culprits, found.also_touched)
        author = (self.settings.revert.author_name, self.settings.revert.author_email)
        now = self.clock()
        revert_id = self.store.start_revert(incident.id, incident.app, mode.value, [c.sha for c in culprits], now)
        log = self.log.bind(app=incident.app, incident=incident.id, culprits=[c.sha[:12] for c in culprits])
        branch = {
            RevertMode.PUSH: self.settings.git.branch,
            RevertMode.PULL_REQUEST: f"{self.settings.revert.branch_prefix}{incident.id}-{culprits[0].sha[:10]}",
        }.get(mode)
        try:
            result = self.repo.revert(culprits, message, author, branch, self.settings.revert.push_retries)
        except RevertConflict as exc:
            self._failed(revert_id, "conflict", incident, log, str(exc), culprits, files=exc.files)
            return
        except NothingToRevert as exc:
            self._failed(revert_id, "already_undone", incident, log, str(exc), culprits)
            return
        except PushRejected as exc:
            self._failed(revert_id, "push_failed", incident, log, str(exc), culprits)
            return
        except GitUnavailable as exc:  # failed before anything was pushed: decide again once git answers
            self.store.finish_revert(revert_id, "not_pushed", self.clock(), detail={"error": str(exc)})
            log.warning("revert_postponed_git_unavailable", error=str(exc))
            with self._lock:
                self.pending[incident.id] = time.monotonic() + MAX_WAIT_SECONDS
            return
        detail = {"message": message, "diffstat": result.diffstat, "attempts": result.attempts}
        done = self.clock()
        if mode is RevertMode.DRY_RUN:
            self.store.finish_revert(revert_id, "dry_run", done, base_sha=result.base, detail=detail)
            self.metrics.reverts.labels("dry_run").inc()
            log.info("revert_dry_run", base=result.base[:12], diffstat=result.diffstat.splitlines()[-1:])
            self._notify("revert_dry_run", incident, culprits, message=message)
            return
        if mode is RevertMode.PULL_REQUEST:
            try:
                assert self.pulls is not None and branch is not None
                url = self.pulls.open(branch, self.settings.git.branch, revert_title(incident.app, culprits), message)
            except ForgeError as exc:
                self._failed(
                    revert_id,
                    "failed",
                    incident,
                    log,
                    f"branch {branch} pushed, pull request not opened: {exc}",
                    culprits,
                )
                return
            self._landed(revert_id, "pull_request_opened", incident, done, result, detail | {"branch": branch}, url=url)
            log.info("revert_pull_request_opened", url=url, branch=branch)
            self._notify("revert_proposed", incident, culprits, url=url)
            return
        deadline = done + timedelta(seconds=self.settings.revert.verify_deadline_seconds)
        self._landed(revert_id, "pushed", incident, done, result, detail, verify_deadline=deadline)
        log.info("revert_pushed", revert=result.sha, base=result.base[:12], attempts=result.attempts)
        self._notify("revert_pushed", incident, culprits, revert=result.sha)
        apps = [incident.app, *sorted({a for v in found.also_touched.values() for a in v})]
        self.after_push(apps, incident.revision, str(result.sha))

    def _landed(
        self,
        revert_id: int,
        state: str,
        incident: Incident,
        at: datetime,
        result: RevertResult,
        detail: dict[str, Any],
        **fields: Any,
    ) -> None:
        """A revert commit is on the remote (pushed, or on a pull request's branch): record, count, time it."""
        self.store.finish_revert(
            revert_id, state, at, revert_sha=result.sha, base_sha=result.base, detail=detail, **fields
        )
        self.metrics.reverts.labels(state).inc()
        self.metrics.time_to_revert.observe(max((at - incident.onset).total_seconds(), 0.0))

    def _failed(
        self, revert_id: int, state: str, incident: Incident, log: Any, error: str, culprits: Any = (), **extra: Any
    ) -> None:
        self.store.finish_revert(revert_id, state, self.clock(), detail={"error": error, "needs_human": True} | extra)
        self.metrics.reverts.labels(state).inc()
        log.error(f"revert_{state}", error=error, needs_human=True)
        self._notify("revert_failed", incident, culprits, outcome=state, error=error)

    def after_push(self, apps: list[str], bad_revision: str | None, revert_sha: str) -> None:
        """Make Argo CD deploy the revert now: end a sync still retrying the bad revision, then refresh."""
        for app in apps:
            name, namespace = self.watcher.app_ref(app)
            try:
                snap = snapshot_from_app(self.argocd.get_app(name, namespace), complete=True)
                retrying = snap.phase is Phase.RUNNING and snap.operation_revision not in (None, revert_sha)
                if retrying and self.settings.revert.terminate_retrying:
                    self.argocd.terminate_operation(name, namespace)
                    self.log.info("sync_operation_terminated", app=app, revision=snap.operation_revision)
                self.argocd.get_app(name, namespace, refresh="normal")
                self.log.info("argocd_refresh_requested", app=app)
            except ArgoCDError as exc:  # Argo CD's own poll picks the revert up within minutes
                self.log.warning("argocd_nudge_failed", app=app, error=str(exc))

    # -- verify -----------------------------------------------------------------------------------------
    def verify(self) -> None:
        now = self.clock()
        for r in self.store.reverts(states=("pushed",), limit=50):
            if r["verify_result"] or not r["revert_sha"]:
                continue
            tracker, _, _ = self.watcher.app_context(r["app"])
            snap = tracker.last if tracker else None
            incident = self.store.incident(r["incident_id"])
            if snap is not None and self._healed(snap, r["revert_sha"]):
                self.store.verify_revert(r["id"], "healed", now)
                self.store.resolve_incident(r["incident_id"], now, f"healed by revert {r['revert_sha'][:12]}")
                self.metrics.verifications.labels("healed").inc()
                self.log.info("revert_verified", app=r["app"], revert=r["revert_sha"], incident=r["incident_id"])
                if incident is not None:
                    self.metrics.time_to_recover.observe(max((now - incident.onset).total_seconds(), 0.0))
                    self._notify("recovered", incident, revert=r["revert_sha"])
            elif r["verify_deadline"] is not None and now >= r["verify_deadline"]:
                reason = f"revert {r['revert_sha'][:12]} did not bring the app back within the deadline"
                self.store.verify_revert(r["id"], "not_healed", now)
                self.store.suspend(r["app"], reason, r["incident_id"], now)
                self.metrics.verifications.labels("not_healed").inc()
                self.log.error("revert_did_not_heal", app=r["app"], revert=r["revert_sha"], suspended=True)
                self._refresh_gauges()
                if incident is not None:
                    self._notify("suspended", incident, reason=reason)

    def _healed(self, snap: AppSnapshot, revert_sha: str) -> bool:
        # Not `looks_healthy`: a revert back to manifests already live leaves the bad revision's Failed
        # operation in place (no new sync runs), and Synced + Healthy on the revert is still a recovery.
        if snap.sync_status is not SyncStatus.SYNCED or snap.health is not Health.HEALTHY or not snap.sync_revision:
            return False
        if snap.phase in (Phase.RUNNING, Phase.TERMINATING):
            return False
        return snap.sync_revision == revert_sha or self.repo.is_ancestor(revert_sha, snap.sync_revision)

    # -- operators --------------------------------------------------------------------------------------
    def resume(self, app: str | None, circuit: bool) -> dict[str, Any]:
        resumed = self.store.resume(app) if app else False
        closed = False
        if circuit and self.store.control(CIRCUIT):
            self.store.set_control(CIRCUIT, None, self.clock())
            closed = True
        self.log.warning("auto_revert_resumed", app=app, app_was_suspended=resumed, circuit_closed=closed)
        self._refresh_gauges()
        return {"app": app, "resumed": resumed, "circuit_closed": closed}

    def _refresh_gauges(self) -> None:
        self.metrics.suspended_apps.set(len(self.store.suspended()))
        self.metrics.circuit_open.set(1 if self.store.control(CIRCUIT) else 0)

    def _notify(self, what: str, incident: Incident, culprits: Any = (), **details: Any) -> None:
        """Tell listeners (Slack, the demo) a step's outcome, with the blamed commits: not Argo CD's head."""
        base = {
            "incident": incident.id,
            "app": incident.app,
            "kind": incident.kind.value,
            "revision": incident.revision,
        }
        base["culprits"] = [{"sha": c.sha, "author": c.author, "subject": c.subject} for c in culprits]
        for listener in self.listeners:
            listener(what, base | details)
