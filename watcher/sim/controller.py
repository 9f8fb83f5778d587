"""A simulated Argo CD application controller working on a real git repo (for the demo and the tests).

It reads the app-of-apps from git, polls the repo, auto-syncs new revisions with the Application's retry
policy, and moves health the way a cluster would for what the content asks: invalid YAML cannot be
rendered (ComparisonError), a value the Kubernetes API rejects fails the sync, an image the registry does
not have or a memory limit below what the container needs degrades the app, more replicas than the
cluster fits never finish progressing.
"""

from __future__ import annotations

import copy
import hashlib
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watcher.sim.admission import Refusal, invalid_child, refusal
from watcher.sim.chart_repo import is_chart_source
from watcher.sim.cluster import (
    Cluster,
    apply_error,
    changed_results,
    live_health,
    resource_result,
    resource_statuses,
    resource_tree,
)
from watcher.sim.hooks import HookRun
from watcher.sim.manifest_cache import ManifestErrorCache
from watcher.sim.refresh import RefreshSchedule, RefsCache, expired
from watcher.sim.repo_server import Rendered, RenderError, RepoServer
from watcher.sim.retry import (
    attempt_failed,
    auto_sync_retry,
    final_message,
    manual_sync_retry,
    retry_started,
    retry_wait,
)
from watcher.sim.rollout import Rollout
from watcher.sim.sync_windows import SyncWindows, shape_operation

__all__ = ["Cluster", "Controller", "SimTimings"]

Listener = Callable[[str, "SimApp"], None]  # called with the controller's lock held
WHOLE = "whole"  # SimApp.encoded's shape of the whole app (a GET); others are field selections


@dataclass
class SimTimings:
    """The simulated Argo CD's clocks and the version-dependent shapes it serves (docs/argocd-conformance.md)."""

    git_poll_seconds: float = 180.0  # Argo CD's reconciliation timeout: each app's resync period
    sync_seconds: float = 2.0  # one sync attempt
    health_seconds: float = 5.0  # Progressing -> Healthy/Degraded after a sync
    backoff_scale: float = 1.0  # multiplies the Application's retry backoff (tests: 0.01)
    pod_scale: float = 1.0  # multiplies the kubelet's durations (image pull, readiness, restart back-off)
    # The real timings: app health follows the Deployment's rollout (Progressing until its progress deadline
    # while new pods fail) instead of turning after `health_seconds`; git polls get a random jitter; a manifest
    # generation error is ignored for a grace period before it shows as ComparisonError.
    rollout_health: bool = False
    poll_jitter_seconds: float = 0.0  # each app's resync is delayed by a fresh random 0..this (sim/refresh.py)
    repo_error_grace_seconds: float = 0.0  # 0: a render error shows at the first compare (no grace at all)
    seed: int | None = None  # of the poll jitter, for a run that repeats
    ref_cache_seconds: float = 0.0  # the repo server's ls-remote cache per repo (0: every compare fetches)
    cached_error_after: int = 0  # failures of one render before the cached error is served (0: never)
    cached_error_minutes: float = 60.0  # how long the cached error is served, from the first failure
    # Version-dependent shapes: a render error's sync.revision is the unresolved targetRevision (Argo CD 3.2+)
    # or absent (before); a retry that starts clears the failed attempt's syncResult (after commit 9b40474c).
    revision_on_render_error: bool = True
    retry_clears_sync_result: bool = True

    @classmethod
    def real(cls, seed: int | None = None) -> SimTimings:
        """Argo CD's own timings, in Argo CD seconds (run them on a `ScaledClock` to see an hour in a minute).

        argo-cd 37ee0097 cmd/argocd-application-controller/commands/argocd_application_controller.go:45-51: app
        resync period 120 s (`timeout.reconciliation`) with a fresh 0-60 s jitter per app and resync
        (`timeout.reconciliation.jitter`), and a repo error grace period of 120 + 60 = 180 s during which
        controller/state.go:746-766 leaves the app's status unwritten before it reports ComparisonError; the
        repo server's ls-remote cache of 3 min (reposerver/cache/cache.go:75) and its cached generation error
        after 3 failures for 60 min (cmd/argocd-repo-server/commands/argocd_repo_server.go:48-49). Retry
        back-off: the Application's own, else 5 s doubling to 3 min (sim/retry.py). Health: gitops-engine
        pkg/health/health_deployment.go."""
        return cls(
            git_poll_seconds=120.0,
            sync_seconds=3.0,
            health_seconds=5.0,
            backoff_scale=1.0,
            pod_scale=1.0,
            rollout_health=True,
            poll_jitter_seconds=60.0,
            repo_error_grace_seconds=180.0,
            seed=seed,
            ref_cache_seconds=180.0,
            cached_error_after=3,
            cached_error_minutes=60.0,
        )


def now_iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SimApp:
    manifest: dict[str, Any]
    status: dict[str, Any] = field(default_factory=dict)
    operation: dict[str, Any] | None = None
    resource_version: int = 1
    live: Rendered | None = None
    attempt_due: float | None = None
    health_due: float | None = None
    failed_revisions: set[str] = field(default_factory=set)
    terminate: bool = False
    op_revision: str | None = None  # the running operation's revision of the source in our repo
    rollout: Rollout | None = None  # the Deployment's rollout in the cluster, once synced
    hook: HookRun | None = None  # the last sync hook run (its Job stays in the tree until the next run)
    hook_consumed: bool = False  # that run's outcome was used by an attempt: the next attempt runs it again
    repo_error_since: float | None = None  # when manifest generation started failing (the repo error grace)
    reconciled_at: float | None = None  # the last full compare (status.reconciledAt), for the expiry gate
    retry_due: float | None = None  # when the failed operation's retry starts (its backoff ends)
    from_git: bool = True  # False: created through the API (`simulate --apps`), so not deleted with the app-of-apps
    # The app as the API last served it, per shape (a GET, a list's field selection): at 10k apps, copying and
    # encoding every app for every list is most of the simulator's time, and nearly all of them did not change.
    served: dict[Hashable, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.manifest["spec"]
        return spec

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    def encoded(self, shape: Hashable, encode: Callable[[dict[str, Any]], bytes]) -> bytes:
        """The app as `encode` writes it, encoded again only after the app changed (callers hold the lock)."""
        body = self.served.get(shape)
        if body is None:
            body = self.served[shape] = encode(self.to_json())
        return body

    def to_json(self) -> dict[str, Any]:
        # The API server's Application has no apiVersion/kind (swagger.json v1alpha1Application).
        body = {k: copy.deepcopy(v) for k, v in self.manifest.items() if k not in ("apiVersion", "kind")}
        body["metadata"]["resourceVersion"] = str(self.resource_version)
        body["metadata"].setdefault("uid", hashlib.sha1(self.name.encode()).hexdigest()[:32])
        body["metadata"].setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        if self.operation is not None:
            body["operation"] = copy.deepcopy(self.operation)
        body["status"] = copy.deepcopy(self.status)
        return body


class Controller:
    def __init__(
        self,
        repo_url: str,
        workdir: Path,
        root_manifest: str = "environments/argocd/app-of-apps.yaml",
        branch: str = "main",
        timings: SimTimings | None = None,
        cluster: Cluster | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.repo_url = repo_url
        self.workdir = Path(workdir)
        self.root_manifest = root_manifest
        self.branch = branch
        self.timings = copy.copy(timings or SimTimings())  # a test may change one world's; never the shared FAST
        self.cluster = cluster or Cluster()
        self.clock = clock
        self.apps: dict[str, SimApp] = {}
        self.lock = threading.RLock()
        self.listeners: list[Listener] = []
        self.head: str | None = None
        self.repo_server = RepoServer(repo_url, self.workdir, branch)
        self.refs = RefsCache()
        self.manifest_errors = ManifestErrorCache()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.history_id = 0
        # Apps with a sync attempt, a health check or a termination pending: a tick looks at these only, not at
        # every app (20 ticks a second over 10k apps would keep a core busy doing nothing).
        self._due: set[str] = set()
        self._rolling: set[str] = set()  # apps whose rollout is not finished: stepped at each tick
        self.schedule = RefreshSchedule(random.Random(self.timings.seed))
        self._period = self.timings.git_poll_seconds
        self.windows = SyncWindows()  # the AppProjects' sync windows

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self, tick_seconds: float = 0.05) -> None:
        self.tick()
        self._thread = threading.Thread(target=self._loop, args=(tick_seconds,), name="sim-controller", daemon=True)
        self._thread.start()

    def _loop(self, tick_seconds: float) -> None:
        while not self._stop.wait(tick_seconds):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a simulator tick must never kill the server; the next tick retries
                import traceback

                traceback.print_exc()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def refresh(self, name: str | None = None, hard: bool = False) -> None:
        """The refresh annotation: `?refresh=` on one app, or a git webhook (every app): compared at the next
        tick past the ls-remote cache and the repo error grace (sim/refresh.py)."""
        with self.lock:
            self.schedule.request([name] if name is not None else list(self.apps), hard)

    def terminate_operation(self, name: str) -> bool:
        with self.lock:
            app = self.apps.get(name)
            if app is None or app.operation is None:
                return False
            app.terminate = True
            app.status["operationState"]["phase"] = "Terminating"
            self._due.add(app.name)
            self._changed(app)
            return True

    def cluster_changed(self) -> None:
        """Something changed in the cluster, not in git (an image deleted from the registry, a node lost):
        every deployed app's health is looked at again, as pods get rescheduled."""
        with self.lock:
            now = self.clock()
            for app in self.apps.values():
                if app.live is not None and app.live.workload:
                    app.health_due = now
                    self._due.add(app.name)

    def add_static_apps(self, apps: list[dict[str, Any]]) -> None:
        """Apps served as they are (benchmarks): never synced, never polled."""
        with self.lock:
            for manifest in apps:
                app = SimApp(
                    manifest=copy.deepcopy({k: v for k, v in manifest.items() if k != "status"}),
                    status=copy.deepcopy(manifest.get("status", {})),
                )
                app.manifest.setdefault("metadata", {}).setdefault("annotations", {})["sim/static"] = "true"
                self.apps[app.name] = app

    def add_apps(self, manifests: Iterable[dict[str, Any]]) -> None:
        """Applications created through the API (`argocd app create`), not by the app-of-apps: reconciled and
        synced like the others, and never deleted because git does not have them."""
        with self.lock:
            for manifest in manifests:
                app = SimApp(manifest=manifest, from_git=False)
                app.status = {"sync": {"status": "Unknown"}, "health": {"status": "Missing"}, "history": []}
                self.apps[app.name] = app
                self._notify("ADDED", app)

    # -- git ------------------------------------------------------------------------------------------
    def sync(self, name: str, revision: str, username: str, retry_strategy: dict[str, Any] | None = None) -> str | None:
        """`POST /applications/{name}/sync` by a person: sync `revision` (default: the target) now, retried as
        the request or else the app's `syncPolicy.retry` says (sim/retry.py manual_sync_retry).
        Returns an error message, or None when the operation started."""
        with self.lock:
            app = self.apps.get(name)
            if app is None:
                return f'applications.argoproj.io "{name}" not found'
            if app.operation is not None:
                return "another operation is already in progress"
            rev = self.repo_server.resolve(revision or str(self._own_source(app).get("targetRevision", "")))
            if rev is None:
                return f"unable to resolve '{revision}' to a commit SHA"
            retry = manual_sync_retry(app.spec, retry_strategy)
            self._start_sync(app, rev, self.clock(), {"username": username}, retry=retry)
            self._changed(app)
            return None

    # -- the reconcile loop -----------------------------------------------------------------------------
    def tick(self) -> None:
        with self.lock:
            # Read under the lock: a time read before waiting for it could be older than a tick that ran meanwhile
            # (a test's manual clock, or a scaled one), and would step rollouts back.
            now = self.clock()
            self._refresh_due(now)
            for name in list(self._due):
                due = self.apps.get(name)
                if due is not None:
                    self._advance(due, now)
                if due is None or not (due.attempt_due or due.retry_due or due.health_due or due.terminate):
                    self._due.discard(name)
            for name in list(self._rolling):
                rolling = self.apps.get(name)
                if rolling is None or not self._roll(rolling, now):
                    self._rolling.discard(name)

    def _refresh_due(self, now: float) -> None:
        """Compare the apps whose refresh is due: resyncs past the expiry gate, and those asked for. The branch
        head comes from the ls-remote cache unless it is stale or a refresh was asked for (sim/refresh.py)."""
        t = self.timings
        if t.git_poll_seconds != self._period:
            self._period = t.git_poll_seconds
            self.schedule.rearm()
        names = list(self.apps) if self.head is not None else []
        due = self.schedule.due(now, names, t.git_poll_seconds, t.poll_jitter_seconds)
        if self.head is not None and not due:
            return
        forced = any(kind is not None for _, kind in due)
        if self.head is None or forced or self.refs.stale(now, t.ref_cache_seconds):
            self.head = self.repo_server.poll()
            self.refs.fetched(now)
            self._load_apps()
        for name, kind in due or [(n, None) for n in self.apps]:
            app = self.apps.get(name)
            if app is not None and (kind is not None or expired(app.reconciled_at, now, t.git_poll_seconds)):
                self._reconcile(app, now, kind)

    def _load_apps(self) -> None:
        """The app-of-apps and its children as git has them now; apps gone from git are deleted."""
        assert self.head is not None
        manifests = self.repo_server.applications(self.head, self.root_manifest)
        if not manifests:
            return  # the root does not parse: nothing is known to be gone
        for manifest in manifests:
            if not invalid_child(manifest):  # the API server refused it: Argo CD never created it (sim/admission.py)
                self._upsert(manifest)
        seen = {m["metadata"]["name"] for m in manifests}
        static = [n for n, a in self.apps.items() if "sim/static" in a.manifest["metadata"].get("annotations", {})]
        for name in [n for n, a in self.apps.items() if a.from_git and n not in seen and n not in static]:
            self._notify("DELETED", self.apps.pop(name))

    def _upsert(self, manifest: dict[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        app = self.apps.get(name)
        if app is None:
            app = SimApp(manifest=manifest)
            app.status = {"sync": {"status": "Unknown"}, "health": {"status": "Missing"}, "history": []}
            self.apps[name] = app
            self._notify("ADDED", app)
        elif app.manifest != manifest:
            app.manifest = manifest
            self._changed(app)

    def _reconcile(self, app: SimApp, now: float, refresh: str | None = None) -> None:
        """Compare the app's desired state at head with what is live; auto-sync when they differ. `refresh`:
        the refresh annotation ("normal", "hard") of a webhook or `?refresh`, None for a resync."""
        if "sim/static" in app.manifest["metadata"].get("annotations", {}) or self.head is None:
            return
        target = str(self._own_source(app).get("targetRevision", ""))
        resolved = self.repo_server.resolve(target)
        rev = resolved or self.head
        before = _state(app)
        try:
            t = self.timings
            cached = self.manifest_errors.cached(
                app.name, rev, now, refresh == "hard", t.cached_error_after, t.cached_error_minutes
            )
            if cached is not None:
                raise RenderError(cached)
            desired = self.repo_server.render(app.manifest, rev)
        except RenderError as exc:
            if cached is None:
                self.manifest_errors.failed(app.name, rev, str(exc), now)
            if self._in_grace(app, now, refresh):
                return  # controller/state.go:751-762, appcontroller.go:1982-1985: nothing written
            self._reconciled(app, now)
            _comparison_error(app, self._error_revisions(app, target), str(exc), now)
            if _state(app) != before:
                self._changed(app)
            return
        self.manifest_errors.succeeded(app.name, rev)
        app.repo_error_since = None
        self._reconciled(app, now)
        app.status.pop("conditions", None)
        in_sync = app.live is not None and app.live.fingerprint == desired.fingerprint
        app.status["sync"] = {
            "status": "Synced" if in_sync else "OutOfSync",
            **self._revisions(app, rev),
            "comparedTo": _compared_to(app),
        }
        # Auto-sync only when OutOfSync, no operation runs and this revision has not failed (controller/appcontroller
        # .go:2536-2550,2593-2600); started by the controller, the ApplicationSet controller's progressive sync, or
        # nobody (automated disabled, or a sync window): sim/sync_windows.py.
        by = self.windows.auto_syncer(app.manifest, datetime.fromtimestamp(now, UTC))
        if not in_sync and by is not None and app.operation is None and rev not in app.failed_revisions:
            self._start_sync(app, rev, now, dict(by))
            assert app.operation is not None
            shape_operation(app.operation, by)
            app.status["operationState"]["operation"] = copy.deepcopy(app.operation)
        if _state(app) != before:
            self._changed(app)

    def _in_grace(self, app: SimApp, now: float, refresh: str | None) -> bool:
        """Whether a render error stays hidden: first seen, or seen within the grace of its first sighting, and
        no refresh asked for (controller/state.go:751-762). A grace of 0 hides nothing (the fast clock): the
        simulator's switch, as Argo CD with `--repo-error-grace-period-seconds=0` (argocd_application_controller.go
        :263) still hides the first sighting (state.go:758-761)."""
        if refresh is not None or self.timings.repo_error_grace_seconds <= 0:
            return False
        if app.repo_error_since is None:
            app.repo_error_since = now
            return True
        return now - app.repo_error_since <= self.timings.repo_error_grace_seconds

    def _reconciled(self, app: SimApp, now: float) -> None:
        app.reconciled_at = now
        app.status["reconciledAt"] = now_iso(now)
        app.served.pop(WHOLE, None)  # a field selection cannot ask for reconciledAt: those bodies still hold

    def _error_revisions(self, app: SimApp, target: str) -> dict[str, Any]:
        """sync.revision(s) of a render error: set from the unresolved input before generation (controller/
        state.go:696-708) and not overwritten, as no manifest came back (1101-1106): the targetRevision text for
        one source (3.2+, commit 9dfa9db097; absent before), none for several (an empty list, omitted)."""
        if app.spec.get("sources") and not app.spec.get("source"):
            return {}
        source = app.spec.get("source") or {}
        if is_chart_source(source):
            return {"revision": str(source.get("targetRevision", ""))}
        return {"revision": target} if self.timings.revision_on_render_error and target else {}

    def _start_sync(
        self,
        app: SimApp,
        rev: str,
        now: float,
        initiated_by: dict[str, Any] | None = None,
        retry: dict[str, Any] | None = None,
    ) -> None:
        if retry is None:
            retry = auto_sync_retry(app.spec)
        app.op_revision = rev
        app.operation = {
            # An automated sync takes the Application's syncOptions (controller/appcontroller.go:2578), and so does a
            # person's that names none (server/application/application.go:2121-2131). An app without any gets
            # CreateNamespace=true: the simulator's seeds' option, where Argo CD would send none.
            "sync": {**self._revisions(app, rev), "prune": True, "syncOptions": _sync_options(app)},
            "initiatedBy": initiated_by or {"automated": True},
            "retry": retry,
        }
        app.status["operationState"] = {
            "operation": copy.deepcopy(app.operation),
            "phase": "Running",
            "message": "",
            "startedAt": now_iso(now),
            "retryCount": 0,
        }
        app.attempt_due = now + self.timings.sync_seconds
        self._due.add(app.name)

    def _advance(self, app: SimApp, now: float) -> None:
        state = app.status.get("operationState")
        if app.terminate and app.operation is not None and state is not None:
            app.terminate = False
            _finish(app, now, "Failed", "Operation terminated")
            app.failed_revisions.add(str(app.op_revision))
            self._changed(app)
        elif app.operation is not None and app.retry_due is not None and now >= app.retry_due:
            app.retry_due = None
            if retry_started(app.status["operationState"], self.timings.retry_clears_sync_result):
                target = str(self._own_source(app).get("targetRevision", ""))
                app.op_revision = self.repo_server.resolve(target) or self.head  # the branch's latest commit
            self._changed(app)
        elif app.operation is not None and app.attempt_due is not None and now >= app.attempt_due:
            self._attempt(app, now)
        if app.health_due is not None and now >= app.health_due:
            app.health_due = None
            status, message = live_health(self.cluster, app.live)
            if self.timings.rollout_health and app.rollout is not None:
                status, message = app.rollout.health(now)
            app.status["health"] = {"status": status, "message": message, "lastTransitionTime": now_iso(now)}
            self._changed(app)

    def _attempt(self, app: SimApp, now: float) -> None:
        state = app.status["operationState"]
        rev = str(app.op_revision)
        hook_results: list[dict[str, Any]] = []
        try:
            desired = self.repo_server.render(app.manifest, rev)
            error = apply_error(app.name, desired)
        except RenderError as exc:
            desired, error = None, f"ComparisonError: {exc}"
        refused = self._refusal(app, desired, rev) if error is None and desired is not None else None
        error, refused_results = (refused.message, refused.resources) if refused else (error, [])
        if error is None and desired is not None and desired.hooks:
            outcome = self._run_hook(app, desired, now)
            if outcome is None:
                return  # the hook is still running: the operation waits for it
            hook_results, error = outcome
        if error is None and desired is not None:
            _finish(app, now, "Succeeded", "successfully synced (all tasks run)")
            state["syncResult"] = {
                **self._revisions(app, rev),
                **_source_fields(app),
                "resources": [*hook_results, *changed_results(app.name, _namespace(app), app.live, desired)],
            }
            app.live = desired
            self._deploy(app, desired, now)
            app.status["sync"] = {"status": "Synced", **self._revisions(app, rev), "comparedTo": _compared_to(app)}
            self.history_id += 1
            _add_history(app, self.history_id, self._revisions(app, rev), now)
            app.status["health"] = {
                "status": "Progressing",
                "message": "Waiting for rollout to finish",
                "lastTransitionTime": now_iso(now),
            }
            app.health_due = now + self.timings.health_seconds
            self._due.add(app.name)
        else:
            count = int(state.get("retryCount", 0))
            retry = state["operation"].get("retry") or {}
            wait = retry_wait(retry, count, self.timings.backoff_scale)
            failed = (
                hook_results
                or refused_results
                or [resource_result(app.name, _namespace(app), "SyncFailed", error or "")]
            )
            # The failed attempt's result stays while the operation backs off (appcontroller.go:1684-1689).
            state["syncResult"] = {**self._revisions(app, rev), **_source_fields(app), "resources": failed}
            if wait is not None:
                attempt_failed(state, str(error), retry, now, self.timings.backoff_scale)
                app.retry_due = now + wait
                app.attempt_due = app.retry_due + self.timings.sync_seconds
            else:
                _finish(app, now, "Failed", final_message(str(error), count))
                app.failed_revisions.add(rev)
        self._changed(app)

    def _run_hook(self, app: SimApp, desired: Rendered, now: float) -> tuple[list[dict[str, Any]], str | None] | None:
        """The attempt's PreSync hook: started on the first call, then its outcome once it finished (the hook's
        resource results and the sync's error, None when it succeeded); None while it runs."""
        hook = desired.hooks[0]
        run = app.hook
        if run is None or app.hook_consumed:
            run = app.hook = HookRun(hook, self.cluster.hook_spec(hook), _namespace(app), now, self.timings.pod_scale)
            app.hook_consumed = False
            app.status["operationState"]["message"] = run.waiting_message()
            self._changed(app)
        end = run.ends_at()
        if end is None or now < end:
            app.attempt_due = end  # None: a hook that never finishes holds the sync until it is terminated
            return None
        app.hook_consumed = True
        if run.phase(now) == "Failed":
            # gitops-engine pkg/sync/sync_context.go: a completed, unsuccessful task fails the sync.
            return [run.result(now)], "one or more synchronization tasks completed unsuccessfully"
        return [run.result(now)], None

    def _refusal(self, app: SimApp, desired: Rendered, rev: str) -> Refusal | None:
        """What the cluster's admission refuses of this sync (sim/admission.py); the root's children are its objects."""
        apps = self.repo_server.applications(rev, self.root_manifest) if not desired.workload else []
        children = apps[1:] if apps and apps[0]["metadata"]["name"] == app.name else []
        options = app.operation["sync"].get("syncOptions") or [] if app.operation else []
        return refusal(self.cluster.admission, app.name, _namespace(app), desired, options, children)

    def _deploy(self, app: SimApp, desired: Rendered, now: float) -> None:
        """The applied Deployment rolls out in the cluster: a new ReplicaSet when its pod template changed."""
        if not desired.workload or not isinstance(desired.replicas, int) or isinstance(desired.replicas, bool):
            return
        if app.rollout is None:
            app.rollout = Rollout(app.name, _namespace(app), scale=self.timings.pod_scale)
        spec = self.cluster.pod_spec(desired, _namespace(app))
        app.rollout.deploy(spec, desired.replicas, now, self.cluster.placement())
        self._rolling.add(app.name)

    def _roll(self, app: SimApp, now: float) -> bool:
        """Step the app's rollout; with the real timings the app's health follows it. False once it is done."""
        rollout = app.rollout
        if rollout is None:
            return False
        rollout.advance(now, self.cluster.placement())
        status, message = rollout.health(now)
        if self.timings.rollout_health and app.operation is None and app.health_due is None:
            health = app.status.get("health") or {}
            if (health.get("status"), health.get("message", "")) != (status, message):
                app.status["health"] = {"status": status, "message": message, "lastTransitionTime": now_iso(now)}
                self._changed(app)
        return status not in ("Healthy", "Degraded") or any(rs.pods for rs in rollout.sets[:-1])

    def _own_source(self, app: SimApp) -> dict[str, Any]:
        """The source read from our repo: `spec.source`, or the first of `spec.sources` from this repo."""
        spec = app.spec
        if spec.get("source"):
            return dict(spec["source"])
        ours = [s for s in spec.get("sources") or [] if s.get("repoURL") == self.repo_url]
        return dict(ours[0]) if ours else {}

    def _revisions(self, app: SimApp, rev: str) -> dict[str, Any]:
        """`revision`, or for a multi-source app `revisions` lined up with `spec.sources`: our commit for a
        source from this repo, the chart version for a Helm repository chart (as Argo CD reports them)."""
        sources = app.spec.get("sources")
        source = app.spec.get("source")
        if source and is_chart_source(source):
            return {"revision": str(source.get("targetRevision", ""))}  # a chart-only app: its chart version
        if source or not sources:
            return {"revision": rev}
        return {
            "revisions": [
                rev if s.get("repoURL") == self.repo_url else str(s.get("targetRevision", "")) for s in sources
            ]
        }

    def _changed(self, app: SimApp) -> None:
        if app.live is not None and app.live.workload:
            persisted = self.cluster.persist_resource_health
            app.status["resources"] = resource_statuses(app.name, _namespace(app), app.status, persisted)
            if not persisted:
                app.status["resourceHealthSource"] = "appTree"
        app.resource_version += 1
        app.served.clear()
        self._notify("MODIFIED", app)

    def _notify(self, kind: str, app: SimApp) -> None:
        # Listeners get the app itself (under the lock) and copy it only if someone is listening: at 10k apps
        # syncing, a copy per change for nobody was seconds of the simulator's time.
        for listener in list(self.listeners):
            listener(kind, app)

    def resource_tree(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            app = self.apps.get(name)
            if app is None:
                return None
            if app.live is None or not app.live.workload:
                return {"nodes": []}
            now = self.clock()
            hook_nodes = app.hook.nodes(now) if app.hook is not None else []
            return resource_tree(app.name, _namespace(app), app.status, app.rollout, now, hook_nodes)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a.to_json() for a in self.apps.values()]

    def encoded(
        self, shape: Hashable, encode: Callable[[dict[str, Any]], bytes], keep: Callable[[dict[str, Any]], bool]
    ) -> tuple[list[bytes], int]:
        """Every app whose manifest `keep` accepts, as `encode` writes it (see SimApp.encoded), and the list's
        resourceVersion."""
        with self.lock:
            bodies = [a.encoded(shape, encode) for a in self.apps.values() if keep(a.manifest)]
            return bodies, sum(a.resource_version for a in self.apps.values())

    def get_encoded(
        self,
        name: str,
        shape: Hashable,
        encode: Callable[[dict[str, Any]], bytes],
        keep: Callable[[dict[str, Any]], bool],
    ) -> bytes | None:
        with self.lock:
            app = self.apps.get(name)
            return app.encoded(shape, encode) if app and keep(app.manifest) else None

    def names(self) -> list[str]:
        with self.lock:
            return list(self.apps)

    def get(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            app = self.apps.get(name)
            return app.to_json() if app else None


def _namespace(app: SimApp) -> str:
    return str(app.manifest["spec"].get("destination", {}).get("namespace", ""))


def _state(app: SimApp) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What a reconcile may change, to compare before and after: a shallow copy is enough, since a reconcile
    replaces the status' values rather than changing them in place (json.dumps of every app was most of a
    10k-app git poll)."""
    return {k: v for k, v in app.status.items() if k != "reconciledAt"}, app.operation


def _sync_options(app: SimApp) -> list[str]:
    return list((app.spec.get("syncPolicy") or {}).get("syncOptions") or ["CreateNamespace=true"])


def _finish(app: SimApp, now: float, phase: str, message: str) -> None:
    state = app.status["operationState"]
    state.update(phase=phase, message=message, finishedAt=now_iso(now))
    app.operation = None
    app.attempt_due = None
    app.retry_due = None


# -- notifications ----------------------------------------------------------------------------------


def _source_fields(app: SimApp) -> dict[str, Any]:
    """`source`, or `sources` for a multi-source app (swagger: v1alpha1SyncOperationResult, RevisionHistory)."""
    spec = app.spec
    if spec.get("source") or not spec.get("sources"):
        return {"source": spec.get("source", {})}
    return {"sources": copy.deepcopy(spec["sources"])}


def _compared_to(app: SimApp) -> dict[str, Any]:
    return {**_source_fields(app), "destination": app.spec.get("destination", {})}


def _add_history(app: SimApp, history_id: int, revisions: dict[str, Any], now: float) -> None:
    """status.history gains the deployed revision (as Argo CD's controller keeps it, bounded)."""
    state = app.status["operationState"]
    history = app.status.setdefault("history", [])
    history.append(
        {
            "id": history_id,
            **revisions,
            "deployedAt": now_iso(now),
            "deployStartedAt": state["startedAt"],
            **_source_fields(app),
            "initiatedBy": copy.deepcopy(state["operation"].get("initiatedBy") or {"automated": True}),
        }
    )
    del history[: -int(app.manifest["spec"].get("revisionHistoryLimit") or 10)]


def _comparison_error(app: SimApp, revisions: dict[str, Any], error: str, now: float) -> None:
    """Manifests cannot be generated: a ComparisonError condition (its time kept while the message stays)."""
    count = len(app.spec.get("sources") or []) or 1
    message = (
        f"Failed to load target state: failed to generate manifest for source 1 of {count}: rpc error: "
        f"code = Unknown desc = {error}"
    )
    current = app.status.get("conditions") or []
    if not current or current[0].get("message") != message:
        app.status["conditions"] = [{"type": "ComparisonError", "message": message, "lastTransitionTime": now_iso(now)}]
    app.status["sync"] = {"status": "Unknown", **revisions, "comparedTo": _compared_to(app)}
