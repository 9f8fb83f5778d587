"""The pre-flight, wired: a new commit on a watched branch -> the apps it affects -> Argo CD renders each at the
commit and at its synced revision -> judge (core.preflight) -> record, count, post a commit status, warn, revert.

Side effects of one (app, commit), in this order, and why:
1. Argo CD is asked twice, read-only (GET .../manifests?revision=): never a refresh or a sync before the verdict
   (a refresh would make Argo CD deploy the commit sooner), and never twice for the same (app, commit): a failing
   render asked again and again would only fill the repo-server's error cache (3 failures -> cached for an hour);
2. the verdict is stored (one row per (app, commit): a restart or a second replica does not ask again);
3. metrics and one log line; the commit status on the forge; a Slack warning for a failing verdict;
4. only then, opted in and only when Argo CD's own render failed where the synced revision's did not, the reverter
   is asked to revert the commit through its own safety checks (rule preflight_render_failed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watcher.core.appmap import manifest_directories, parent_app_names
from watcher.core.blame import AppSources, helm_dirs, touches
from watcher.core.branches import Follow, RemoteBranches, following
from watcher.core.notices import Notice
from watcher.core.preflight import (
    ArgoSaid,
    Judgement,
    LocalChecks,
    Validate,
    Verdict,
    affected_apps,
    agreement,
    compared_with,
    judge,
    no_schemas,
    notice_of,
    revert_opted_in,
    revert_wanted,
    source_position,
    spec_change_judgement,
    spec_changes,
    status_of,
)
from watcher.domain import ChangedCommit, Event, EventKind, NeedsHuman, RetryLater, utcnow
from watcher.logs import get_logger
from watcher.metrics.preflight import PreflightMetrics
from watcher.ports import CommitStatuses, Fleet, Listener, PreflightRepo, PreflightReverts, Renderer
from watcher.settings import Settings
from watcher.store.preflight import PreflightRecords

MAX_COMMITS = 20  # newest commits of one fetch judged; a longer push is judged at its newest 20
CLUSTER_VERSION_SECONDS = 3600.0  # the cluster's version is read again after this
# How long a commit's first sight is kept for the detect lag: Argo CD compares a commit within minutes (its refresh,
# 3 min by default); a daemon that runs for months must not keep every commit and every (app, commit) it deployed.
SEEN_KEPT = timedelta(days=1)
STATUS_CONTEXT = "sync-watcher/preflight"
# Argo CD's verdict on a commit, from the watcher's own events (what the score compares with)
ARGO_SAID = {
    EventKind.MANIFEST_ERROR: ArgoSaid.RENDER_FAILED,
    EventKind.SYNC_FAILED: ArgoSaid.SYNC_FAILED,
    EventKind.DEPLOYED: ArgoSaid.DEPLOYED,
}
COMPARED_KINDS = frozenset({*ARGO_SAID, EventKind.DEPLOY_STARTED, EventKind.SYNC_FAILING})
ValidatorFor = Callable[[str | None, tuple[Mapping[str, Any], ...]], Validate]


@dataclass(frozen=True, slots=True)
class Judged:
    """One (app, commit) judged: what `check` returns, a line per verdict for the log and the tests."""

    app: str
    commit: str
    verdict: Verdict
    action: str = ""  # "reverted: pushed", "warned", a rule that stopped the revert, or ""


class Preflight(Listener):
    """Judges each new commit of the watched branches (call `check` after each git poll); as a listener of the
    watcher, keeps score of Argo CD's own verdicts."""

    def __init__(
        self,
        settings: Settings,
        fleet: Fleet,
        repo: PreflightRepo,
        renderer: Renderer,
        records: PreflightRecords,
        metrics: PreflightMetrics,
        statuses: CommitStatuses | None = None,
        reverts: PreflightReverts | None = None,
        validator_for: ValidatorFor | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.settings = settings
        self.cfg = settings.preflight
        self.fleet = fleet
        self.repo = repo
        self.renderer = renderer
        self.records = records
        self.metrics = metrics
        self.statuses = statuses if self.cfg.commit_status else None
        self.reverts = reverts
        self.validator_for = validator_for
        self.clock = clock
        self.log = get_logger().bind(component="preflight")
        self.listeners: list[Callable[[Notice], None]] = []  # Slack's submit
        self.leading: Callable[[], bool] = lambda: True  # only the leader asks Argo CD and acts
        self._heads: dict[str, str] = {}
        self._seen: dict[str, datetime] = {}  # commit -> when the watcher first saw it (for the detect lag)
        self._lagged: set[tuple[str, str]] = set()
        self._versions: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()
        self.fleet_paths: Mapping[str, tuple[str, ...]] = {}  # every app's repo paths, as of the last commit judged

    # -- new commits ----------------------------------------------------------------------------------------
    def check(self) -> list[Judged]:
        """Judge every commit that arrived on a watched branch since the last check; the verdicts."""
        if not self.cfg.enabled or not self.leading():
            return []
        try:
            heads = self.repo.local_heads()
        except RetryLater as exc:
            self.log.warning("preflight_heads_unreadable", error=str(exc))
            return []
        seen_at = self.clock()
        judged: list[Judged] = []
        for branch, head in heads.items():
            before = self._heads.get(branch)
            self._heads[branch] = head
            if before is None or before == head:
                continue  # the first look has no "new": what is already there was there before the watcher
            self._forget_before(seen_at - SEEN_KEPT)
            try:
                commits, cut = self.repo.changes(before, head, (), MAX_COMMITS)
            except Exception as exc:  # noqa: BLE001 - a rewritten branch: logged, skipped
                self.log.warning("preflight_commits_unreadable", branch=branch, error=str(exc))
                continue
            if cut:
                self.log.warning("preflight_push_cut", branch=branch, judged=MAX_COMMITS)
            for c in reversed(commits):  # oldest first, as they were pushed
                self._seen.setdefault(c.commit.sha, seen_at)
                judged += self.judge_commit(c, branch, seen_at)
        return judged

    def judge_commit(self, change: ChangedCommit, branch: str, seen_at: datetime) -> list[Judged]:
        """Every app the commit affects on `branch`, judged with at most `concurrency` renders in flight."""
        status = self.fleet.status()
        if not status.paths:
            return []
        self.fleet_paths = status.paths
        specs = self.fleet.app_context(next(iter(status.paths))).specs
        url = self.settings.git.url
        branches = self.settings.git.watched_branches
        remote = RemoteBranches(dict(self._heads))
        sources = {k: AppSources(p, helm_dirs(specs.get(k, {}), p)) for k, p in status.paths.items()}
        apps = [
            k
            for k in affected_apps(change.files, sources)
            if (f := following(specs.get(k, {}), url, branches, remote)).kind is Follow.BRANCH and f.branch == branch
        ]  # the apps whose files the commit changed, of those this branch deploys
        # Where Application manifests live, when the app-of-apps is known (else every source path would count)
        listed = list(specs.values())
        manifest_dirs = manifest_directories(listed, url) if parent_app_names(listed) else ()
        if len(apps) > self.cfg.max_apps_per_commit:
            self.log.warning(
                "preflight_apps_cut", commit=change.commit.sha, affected=len(apps), judged=self.cfg.max_apps_per_commit
            )
            apps = apps[: self.cfg.max_apps_per_commit]
        paused = LocalChecks(self.records.paused())
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency, thread_name_prefix="preflight") as pool:
            futures = [
                pool.submit(
                    self._judge_app, key, change, branch, seen_at, specs, status.trackers, apps, paused, manifest_dirs
                )
                for key in apps
            ]
            return [j for f in futures if (j := f.result()) is not None]

    def _judge_app(
        self,
        key: str,
        change: ChangedCommit,
        branch: str,
        seen_at: datetime,
        specs: Mapping[str, Mapping[str, Any]],
        trackers: Mapping[str, Any],
        affected: list[str],
        paused: LocalChecks,
        manifest_dirs: tuple[str, ...] = (),
    ) -> Judged | None:
        commit = change.commit
        if self.records.judged(key, commit.sha):
            return None  # once per (app, commit): Argo CD is never asked twice
        spec = specs.get(key, {})
        meta = spec.get("metadata") or {}
        position = source_position(spec.get("spec") or {}, self.settings.git.url)
        if position == 0:
            return None  # no source from the watched repo: nothing of this commit to render
        name, namespace = str(meta.get("name") or key.rsplit("/", 1)[-1]), str(meta.get("namespace") or "")
        tracker = trackers.get(key)
        last = tracker.last if tracker is not None else None
        synced = compared_with(last.sync_revision if last is not None else None, commit)
        started = time.monotonic()
        paths = set(self.fleet_paths.get(key, ()))
        own = [f for f in change.files if f in paths]
        if changed_spec := spec_changes(own, spec, self.settings.git.url, manifest_dirs):
            j = spec_change_judgement(changed_spec)  # Argo CD is not asked: it would render the old spec
        else:
            new = self.renderer.manifests(name, namespace, commit.sha, position)
            old = self.renderer.manifests(name, namespace, synced, position) if synced else new
            self.metrics.calls.inc(2 if synced else 1)
            validate = self._validator(spec, new.manifests)
            j = paused.apply(key, judge(new, old, validate) if synced else _no_synced())
        now = self.clock()
        listed = self.fleet_paths.get(key, ())
        mine = [f for f in change.files if touches(f, AppSources(listed, helm_dirs(spec, listed)))]
        evidence = j.evidence() | {"branch": branch, "synced_revision": synced, "position": position}
        evidence["files"] = mine[:50]  # the commit's change to the app: what a revert rests on, beside Argo CD's words
        if not self.records.record(key, commit.sha, synced, j.verdict.value, j.reason, evidence, seen_at, now):
            return None  # another replica (or a restart) judged it meanwhile
        self.metrics.verdicts.labels(j.verdict.value).inc()
        self.metrics.seconds.observe(max((now - seen_at).total_seconds(), 0.0))
        (self.log.warning if j.failing else self.log.info)(
            "preflight_judged", app=key, commit=commit.sha[:12], verdict=j.verdict.value, reason=j.reason,
            argocd_error=j.argocd_error[:300] or None, invalid=list(j.invalid[:3]) or None,
            render_seconds=round(time.monotonic() - started, 3),
        )  # fmt: skip
        self._post_status(key, commit.sha, j)
        action = self._act(key, change, branch, synced, j, evidence, [a for a in affected if a != key])
        return Judged(key, commit.sha, j.verdict, action)

    def _validator(self, spec: Mapping[str, Any], rendered: tuple[Mapping[str, Any], ...]) -> Validate:
        if not self.cfg.validate_objects or self.validator_for is None:
            return no_schemas
        server = str(((spec.get("spec") or {}).get("destination") or {}).get("server") or "")
        return self.validator_for(self._cluster_version(server), rendered)

    def _cluster_version(self, server: str) -> str | None:
        with self._lock:
            cached = self._versions.get(server)
        if cached is not None and time.monotonic() - cached[0] < CLUSTER_VERSION_SECONDS:
            return cached[1]
        version = self.renderer.cluster_version(server)
        self.metrics.calls.inc()
        with self._lock:
            self._versions[server] = (time.monotonic(), version)
        return version

    # -- acting on a verdict -------------------------------------------------------------------------------
    def _post_status(self, app: str, sha: str, j: Judgement) -> None:
        if self.statuses is None:
            return
        state, description = status_of(j)
        try:
            self.statuses.post(sha, state, f"{STATUS_CONTEXT}: {app}", description)
        except (NeedsHuman, RetryLater) as exc:
            self.log.warning("preflight_status_not_posted", app=app, commit=sha[:12], error=str(exc))

    def _act(
        self,
        key: str,
        change: ChangedCommit,
        branch: str,
        synced: str | None,
        j: Judgement,
        evidence: Mapping[str, Any],
        also: list[str],
    ) -> str:
        if not j.failing:
            return ""
        environment = self.fleet.environment(key)
        meta = (self.fleet.app_context(key).annotations) if self.reverts is not None else {}
        done = ""
        if self.reverts is not None and revert_wanted(
            j, revert_opted_in(environment, meta, self.cfg.revert_environments)
        ):
            done = self.reverts.revert_before_sync(key, change.commit, branch, synced, evidence, tuple(also))
            self.records.set_action(key, change.commit.sha, f"revert: {done}")
        else:
            self.records.set_action(key, change.commit.sha, "warned")
        said = f"Revert before Argo CD syncs it: {done}." if done else ""
        for listener in self.listeners:
            listener(notice_of(key, change.commit, j, environment, said))
        return f"revert: {done}" if done else "warned"

    # -- keeping score: Argo CD's own verdict, from the watcher's events ------------------------------------
    def _forget_before(self, cutoff: datetime) -> None:
        """The commits first seen before `cutoff` leave the detect lag's memory (checked as new commits arrive)."""
        self._seen = {sha: at for sha, at in self._seen.items() if at >= cutoff}
        self._lagged = {k for k in self._lagged if k[1] in self._seen}

    def on_event(self, e: Event) -> None:
        """The watcher saw Argo CD compare (or sync) a revision: the detect lag, and the score of a verdict."""
        if not e.revision or e.kind not in COMPARED_KINDS:
            return
        seen = self._seen.get(e.revision)
        if seen is not None and (e.app, e.revision) not in self._lagged:
            self._lagged.add((e.app, e.revision))
            self.metrics.detect_lag.observe(max((e.onset - seen).total_seconds(), 0.0))
        said = ARGO_SAID.get(e.kind)
        if said is None:
            return
        found = self.records.verdicts(app=e.app, commit_sha=e.revision, limit=1)
        if not found:
            return
        score = agreement(Verdict(found[0].verdict), said)
        if score is None or self.records.score(e.app, e.revision, said.value, score.agreed) is None:
            return
        self.metrics.agreement.labels(str(score.agreed).lower()).inc()
        self.log.info("preflight_scored", app=e.app, commit=e.revision[:12], agreed=score.agreed, note=score.note)
        if not score.agreed:
            self.records.pause(e.app, score.note, self.clock())
            self.log.warning("preflight_local_checks_paused", app=e.app, reason=score.note)


def _no_synced() -> Judgement:
    return Judgement(Verdict.CANNOT_JUDGE, "no synced revision to compare with (a new app, or a root commit)")
