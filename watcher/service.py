"""The only place that wires things: observe (Argo CD, git) -> detect -> record -> expose."""

from __future__ import annotations

import ctypes
import gc
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from watcher import appmap
from watcher.adapters.argocd import ArgoCDError, snapshot_from_app
from watcher.adapters.gitrepo import GitError
from watcher.detect import AppTracker, DetectionRules, observe
from watcher.domain import INCIDENT_KINDS, AppSnapshot, Commit, Event, EventKind, app_key, utcnow
from watcher.dora import CHANGE_FAILURE_STAGE, environment_of
from watcher.logs import get_logger
from watcher.metrics import Metrics, StateView
from watcher.ports import AppContext
from watcher.settings import DetectionSettings, Settings
from watcher.store import Observation, Store


class AppSource(Protocol):
    """Something that lists Argo CD apps: the real client or anything shaped like it."""

    def list_apps(self) -> list[dict[str, Any]]: ...
    def get_app(self, name: str, namespace: str = "", refresh: str | None = None) -> dict[str, Any]: ...


class Repo(Protocol):
    def sync(self) -> str: ...
    def commit(self, sha: str) -> Commit | None: ...
    def yaml_files(self, rev: str, directories: Iterable[str]) -> dict[str, str]: ...


# Besides incidents: events whose readers (metrics, Slack) want the commit and the onset of what they close.
ENRICHED_KINDS = frozenset({EventKind.DEPLOYED, EventKind.RECOVERED, EventKind.SYNC_FAILING})


def rules_from(d: DetectionSettings) -> DetectionRules:
    return DetectionRules(
        comparison_error_grace=timedelta(seconds=d.comparison_error_grace_seconds),
        degraded_grace=timedelta(seconds=d.degraded_grace_seconds),
        progress_deadline=timedelta(seconds=d.progress_deadline_seconds),
        attribution_window=timedelta(seconds=d.attribution_window_seconds),
        failed_after_retries=d.failed_after_retries,
    )


def _core(s: AppSnapshot | None) -> tuple[object, ...] | None:
    """The part of a snapshot whose change is worth a timeline row (messages and trimming are not)."""
    if s is None:
        return None
    return (
        s.sync_status,
        s.sync_revision,
        s.health,
        s.phase,
        s.operation_revision,
        s.retry_count,
        tuple(c.type for c in s.conditions),
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Parsing a 10k-app list makes ~10^6 acyclic objects; collecting during that only burns CPU."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@lru_cache(maxsize=1)
def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None  # not glibc: nothing to trim


def release_free_memory() -> None:
    """Give the freed parse of a large list back to the OS (glibc keeps it otherwise; RSS would stay at peak)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _has_timer(t: AppTracker) -> bool:
    """Only grace periods and deadlines change an app's verdict without new data."""
    return any((t.manifest_error_since, t.degraded_since, t.progressing_since))


class Watcher:
    def __init__(
        self,
        settings: Settings,
        argocd: AppSource,
        repo: Repo,
        store: Store,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.settings = settings
        self.argocd = argocd
        self.repo = repo
        self.store = store
        self.clock = clock
        self.rules = rules_from(settings.detection)
        self.log = get_logger()
        self._lock = threading.RLock()
        self.trackers: dict[str, AppTracker] = store.detection.load_trackers()
        self.apps: dict[str, dict[str, Any]] = {}  # key -> metadata+spec, for the git mapping
        self.paths: dict[str, tuple[str, ...]] = {}
        self.head: str | None = None
        self._mapped_head: str | None = None
        self.last_success: dict[str, float] = {}
        # (app, kind) -> open incidents; app -> onset of its oldest open incident (time to restore)
        self._open, self._open_since = self._load_open_incidents()
        self._last_failed_change: dict[str, str] = {}  # app -> revision last counted as a failed change
        self.metrics = Metrics(
            StateView(self.snapshots, lambda: dict(self._open), self.environment, self._last_deploys)
        )
        self._commit = lru_cache(maxsize=4096)(self._lookup_commit)
        self.listeners: list[Callable[[Event], None]] = []

    # -- observe ----------------------------------------------------------------------------------------
    def poll_git(self) -> None:
        started = time.perf_counter()
        try:
            head = self.repo.sync()
        except GitError as exc:
            self.metrics.poll_errors.labels("git", type(exc).__name__).inc()
            self.log.warning("git_poll_failed", error=str(exc))
            return
        finally:
            self.metrics.poll_duration.labels("git").observe(time.perf_counter() - started)
        if head != self.head:
            self.log.info("git_head_moved", previous=self.head, head=head)
            self.head = head
        self._mark_success("git")
        self._remap()

    def poll_apps(self) -> None:
        """The safety net: a complete list, a full GET of the apps that look wrong, detection for all."""
        started = time.perf_counter()
        try:
            with gc_paused():
                snapshots, specs = self._list_snapshots()
        except ArgoCDError as exc:
            self.metrics.poll_errors.labels("argocd", type(exc).__name__).inc()
            self.metrics.argocd_up.set(0)
            self.log.warning("argocd_poll_failed", error=str(exc), error_type=type(exc).__name__)
            return  # unknown state: nothing is decided on a failed poll
        finally:
            self.metrics.poll_duration.labels("argocd").observe(time.perf_counter() - started)
        self.metrics.argocd_up.set(1)
        self._mark_success("argocd")
        with self._lock:
            self.apps.update(specs)
            now = self.clock()
            gone = sorted(set(self.trackers) - set(snapshots))
            seen: list[tuple[str, AppSnapshot | None]] = [(k, None) for k in gone]
            # Unchanged apps cost one comparison; tick() lets their timers expire.
            seen += [(k, s) for k, s in snapshots.items() if s != self._last(k)]
            self._observe(seen, now)
        self._remap()
        release_free_memory()

    def _list_snapshots(self) -> tuple[dict[str, AppSnapshot], dict[str, dict[str, Any]]]:
        """Snapshots and mapping fields of every listed app; the raw list is dropped on return."""
        snapshots: dict[str, AppSnapshot] = {}
        specs: dict[str, dict[str, Any]] = {}
        for item in self.argocd.list_apps():
            snap = snapshot_from_app(item, complete=False)
            if not snap.name:
                continue
            specs[snap.key] = appmap.mapping_fields(item)
            if not snap.looks_healthy:
                snap = snapshot_from_app(self.argocd.get_app(snap.name, snap.namespace), complete=True)
            snapshots[snap.key] = snap
        return snapshots, specs

    def on_stream_event(self, kind: str, app: dict[str, Any]) -> None:
        self.metrics.stream_events.labels(kind).inc()
        snap = snapshot_from_app(app, complete=True)
        if not snap.name:
            return
        with self._lock:
            if kind == "DELETED":
                self.apps.pop(snap.key, None)
                self._observe([(snap.key, None)], self.clock())
                return
            self._remember_specs([app])
            self._observe([(snap.key, snap)], self.clock())

    def on_stream_lost(self, reason: str) -> None:
        self.metrics.stream_reconnects.inc()
        self.log.warning("argocd_stream_lost", reason=reason)

    def _last(self, key: str) -> AppSnapshot | None:
        tracker = self.trackers.get(key)
        return tracker.last if tracker else None

    def tick(self) -> None:
        """Let grace periods and deadlines expire between observations."""
        with self._lock:
            timed = [(k, t.last) for k, t in self.trackers.items() if t.last is not None and _has_timer(t)]
            self._observe(timed, self.clock())

    def housekeeping(self) -> None:
        days = self.settings.store.timeline_retention_days
        pruned = self.store.detection.prune_timeline(self.clock() - timedelta(days=days))
        self.log.info("timeline_pruned", rows=pruned, older_than_days=days)

    # -- detect -> record -> publish --------------------------------------------------------------------
    def _observe(self, seen: Sequence[tuple[str, AppSnapshot | None]], now: datetime) -> None:
        """Detect on each (app, snapshot), record everything in one transaction, then publish."""
        batch: list[Observation] = []
        for key, snap in seen:
            before = self.trackers.get(key, AppTracker())
            after, events = observe(before, snap, now, self.rules, app=key)
            if after == before and not events:
                continue
            keep = after if snap is not None else None
            batch.append(Observation(key, keep, [self._enrich(e) for e in events], _core(snap) != _core(before.last)))
        if not batch:
            return
        recorded = self.store.detection.record_batch(batch, now)  # memory follows only what was stored
        for item in batch:
            if item.tracker is None:
                self.trackers.pop(item.app, None)
            else:
                self.trackers[item.app] = item.tracker
        for event in recorded:
            self._publish(event)

    def _enrich(self, e: Event) -> Event:
        if not e.revision or (e.kind not in INCIDENT_KINDS and e.kind not in ENRICHED_KINDS):
            return e
        commit = self._commit(e.revision)
        if e.app not in self.paths:
            self._remap()  # an app seen on the stream before the first full mapping
        extra: dict[str, object] = {"paths": list(self.paths.get(e.app, ()))}
        if e.kind is EventKind.RECOVERED and e.app in self._open_since:
            extra["incident_onset"] = self._open_since[e.app].isoformat()
        if commit:
            extra["commit"] = {
                "sha": commit.sha,
                "author": commit.author,
                "subject": commit.subject,
                "committed_at": commit.committed_at.isoformat(),
            }
        return Event(e.app, e.kind, e.revision, e.at, e.reason, e.evidence | extra)

    def _lookup_commit(self, sha: str) -> Commit | None:
        commit = self.repo.commit(sha)
        if commit is None:  # Argo CD saw a revision before our last fetch
            try:
                self.repo.sync()
            except GitError:
                return None
            commit = self.repo.commit(sha)
        return commit

    def _publish(self, e: Event) -> None:
        self.metrics.events.labels(e.kind.value).inc()
        log = self.log.bind(app=e.app, revision=e.revision, kind=e.kind.value)
        if e.kind in INCIDENT_KINDS:
            self._open[(e.app, e.kind.value)] += 1
            self.metrics.failures.labels(e.app, e.kind.value).inc()
            onset = e.onset
            self.metrics.time_to_detect.labels(e.kind.value).observe(max((e.at - onset).total_seconds(), 0.0))
            self._open_since.setdefault(e.app, onset)
            self._count_change_failure(e)
            log.warning("failure_detected", reason=e.reason, commit=e.evidence.get("commit"))
        elif e.kind in (EventKind.RECOVERED, EventKind.APP_REMOVED):
            for k in [k for k in self._open if k[0] == e.app]:
                del self._open[k]
            since = self._open_since.pop(e.app, None)
            if e.kind is EventKind.RECOVERED and since is not None:
                restore = max((e.at - since).total_seconds(), 0.0)
                self.metrics.dora.restored(e.app, self.environment(e.app), restore)
            log.info("app_recovered" if e.kind is EventKind.RECOVERED else "app_removed", reason=e.reason)
        elif e.kind is EventKind.DEPLOYED:
            commit = e.evidence.get("commit")
            finished = e.evidence.get("finished_at")
            lead_seconds = None
            if isinstance(commit, dict) and isinstance(finished, str):
                lead = datetime.fromisoformat(finished) - datetime.fromisoformat(str(commit["committed_at"]))
                lead_seconds = max(lead.total_seconds(), 0.0)
                self.metrics.commit_to_sync.observe(lead_seconds)
            self.metrics.dora.deployed(e.app, self.environment(e.app), lead_seconds)
            log.info("deploy_finished")
        else:
            log.info(f"{e.kind.value}_seen", reason=e.reason)
        for listener in self.listeners:
            listener(e)

    def _count_change_failure(self, e: Event) -> None:
        """DORA: a revision that opened an incident is one failed change, however many incidents it opened."""
        stage = CHANGE_FAILURE_STAGE.get(e.kind)
        if stage is None or not e.revision or self._last_failed_change.get(e.app) == e.revision:
            return
        self._last_failed_change[e.app] = e.revision
        self.metrics.dora.change_failed(e.app, self.environment(e.app), stage)

    # -- git mapping --------------------------------------------------------------------------------------
    def _remember_specs(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            meta = item.get("metadata") or {}
            if meta.get("name"):
                key = app_key(str(meta["name"]), str(meta.get("namespace") or ""))
                self.apps[key] = appmap.mapping_fields(item)

    def _remap(self) -> None:
        """Recompute every app's paths when the head or the set of apps changed."""
        with self._lock:
            signature = f"{self.head}|{len(self.apps)}"
            if self.head is None or signature == self._mapped_head:
                return
            apps = list(self.apps.items())
        url = self.settings.git.url
        try:
            manifests = appmap.application_manifests(
                self.repo.yaml_files(self.head, appmap.manifest_directories([a for _, a in apps], url))
            )
        except (GitError, ValueError) as exc:
            self.log.warning("app_mapping_failed", error=str(exc))
            return
        paths = {key: appmap.app_paths(app, url, manifests.get(str(app["metadata"]["name"]))) for key, app in apps}
        with self._lock:
            self.paths = paths
            self._mapped_head = signature

    # -- views ------------------------------------------------------------------------------------------
    def app_context(self, key: str) -> AppContext:
        """A consistent copy of what is known about one app, with every app's mapping fields and paths."""
        with self._lock:
            meta = (self.apps.get(key) or {}).get("metadata") or {}
            tracker = self.trackers.get(key)
            return AppContext(
                key=key,
                name=str(meta.get("name") or key.rsplit("/", 1)[-1]),
                namespace=str(meta.get("namespace") or ""),
                annotations=dict(meta.get("annotations") or {}),
                last=tracker.last if tracker else None,
                good_revisions=tracker.good_revisions if tracker else (),
                specs=dict(self.apps),
                paths=dict(self.paths),
            )

    def _mark_success(self, source: str) -> None:
        now = time.time()
        self.last_success[source] = now
        self.metrics.last_success.labels(source).set(now)

    def _load_open_incidents(self) -> tuple[Tally[tuple[str, str]], dict[str, datetime]]:
        open_incidents = self.store.detection.incidents(open_only=True, limit=100_000)
        since: dict[str, datetime] = {}
        for i in open_incidents:
            since[i.app] = min(i.onset, since.get(i.app, i.onset))
        return Tally((i.app, i.kind.value) for i in open_incidents), since

    def environment(self, key: str) -> str:
        meta = (self.apps.get(key) or {}).get("metadata") or {}
        return environment_of(key, meta.get("labels"))

    def _last_deploys(self) -> list[tuple[str, float]]:
        with self._lock:
            return [(k, t.deployed_at.timestamp()) for k, t in self.trackers.items() if t.deployed_at is not None]

    def snapshots(self) -> list[AppSnapshot]:
        with self._lock:
            return [t.last for t in self.trackers.values() if t.last is not None]

    def apps_view(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = []
            for key, t in sorted(self.trackers.items()):
                s = t.last
                if s is None:
                    continue
                rows.append(
                    {
                        "name": s.name,
                        "namespace": s.namespace,
                        "project": s.project,
                        "sync_status": s.sync_status.value if s.sync_status else None,
                        "sync_revision": s.sync_revision,
                        "health": s.health.value if s.health else None,
                        "operation_phase": s.phase.value if s.phase else None,
                        "operation_revision": s.operation_revision,
                        "retry_count": s.retry_count,
                        "deployed_revision": t.deployed_revision,
                        "deployed_at": t.deployed_at.isoformat() if t.deployed_at else None,
                        "open_incidents": sorted(k for (a, k), n in self._open.items() if a == key and n),
                        "paths": list(self.paths.get(key, ())),
                    }
                )
            return rows

    def readiness(self) -> dict[str, Any]:
        max_age = self.settings.http.readiness_max_age_seconds
        limits = {
            "argocd": max_age or 3 * self.settings.argocd.list_interval_seconds,
            "git": max_age or 3 * self.settings.git.poll_interval_seconds,
        }
        now = time.time()
        checks = {}
        for source, limit in limits.items():
            last = self.last_success.get(source)
            age = None if last is None else round(now - last, 3)
            checks[source] = {"ok": age is not None and age <= limit, "age_seconds": age, "limit_seconds": limit}
        return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}
