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
import json
import posixpath
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import yaml

Listener = Callable[[str, dict[str, Any]], None]
GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
MEMORY_MIB = {
    "Ki": 1 / 1024,
    "Mi": 1,
    "Gi": 1024,
    "Ti": 1024**2,
    "K": 1 / 1048.576,
    "M": 1 / 1.048576,
    "G": 953.67431640625,
    "T": 953674.31640625,
    None: 1 / 1048576,
}


@dataclass
class SimTimings:
    git_poll_seconds: float = 180.0  # Argo CD's reconciliation timeout
    sync_seconds: float = 2.0  # one sync attempt
    health_seconds: float = 5.0  # Progressing -> Healthy/Degraded after a sync
    backoff_scale: float = 1.0  # multiplies the Application's retry backoff (tests: 0.01)


@dataclass
class Cluster:
    images: dict[str, dict[str, int]] = field(default_factory=dict)  # repository -> tag -> MiB needed
    max_replicas: int = 20


def go_duration(text: str | int | None, default: float) -> float:
    if text is None or text == "":
        return default
    if isinstance(text, int | float) or str(text).isdigit():
        return float(text)
    parts = GO_DURATION.findall(str(text))
    return sum(float(n) * UNIT_SECONDS[u] for n, u in parts) if parts else default


def now_iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RenderError(Exception):
    """Manifests cannot be generated (Argo CD: ComparisonError)."""


@dataclass
class Rendered:
    """What a source renders to, reduced to what the simulated cluster looks at."""

    fingerprint: str
    replicas: Any = 0
    image: str = ""
    memory: Any = None
    workload: bool = True  # False for a directory of plain manifests (the app-of-apps)
    config: str = ""  # fingerprint of the chart's ConfigMap (values under `config`); the rest is the Deployment


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

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

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
        self.timings = timings or SimTimings()
        self.cluster = cluster or Cluster()
        self.clock = clock
        self.apps: dict[str, SimApp] = {}
        self.lock = threading.RLock()
        self.listeners: list[Listener] = []
        self.head: str | None = None
        self._next_poll = 0.0
        self._repo: git.Repo | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.history_id = 0

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

    def refresh(self, name: str | None = None) -> None:
        """`?refresh=normal`: re-read git now, as a webhook or the refresh button does."""
        self._next_poll = 0.0

    def terminate_operation(self, name: str) -> bool:
        with self.lock:
            app = self.apps.get(name)
            if app is None or app.operation is None:
                return False
            app.terminate = True
            app.status["operationState"]["phase"] = "Terminating"
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

    # -- git ------------------------------------------------------------------------------------------
    def _git(self) -> git.Repo:
        if self._repo is None:
            target = self.workdir / "sim-clone.git"
            if target.exists():
                self._repo = git.Repo(target)
            else:
                self._repo = git.Repo.clone_from(self.repo_url, target, bare=True, multi_options=["--no-tags"])
                self._repo.git.config("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
        return self._repo

    def _poll_git(self) -> None:
        repo = self._git()
        repo.git.fetch("origin", "--prune", "--tags", "--force")  # a moved tag is re-resolved, as the repo server does
        self.head = repo.git.rev_parse(f"refs/remotes/origin/{self.branch}")

    def _resolve(self, target: str) -> str | None:
        """An Application's targetRevision as the repo server resolves it: the branch (or HEAD, or nothing)
        follows the head; a tag, another branch or a commit is looked up; None when git has no such thing."""
        if target in ("", "HEAD", self.branch, f"refs/heads/{self.branch}"):
            return self.head
        for ref in (f"refs/tags/{target}", f"refs/remotes/origin/{target}", target):
            try:
                return str(self._git().git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}"))
            except git.GitCommandError:
                continue
        return None

    def sync(self, name: str, revision: str, username: str) -> str | None:
        """`POST /applications/{name}/sync` by a person: sync `revision` (default: the target) now, no retries.
        Returns an error message, or None when the operation started."""
        with self.lock:
            app = self.apps.get(name)
            if app is None:
                return f'applications.argoproj.io "{name}" not found'
            if app.operation is not None:
                return "another operation is already in progress"
            rev = self._resolve(revision or str(app.manifest["spec"].get("source", {}).get("targetRevision", "")))
            if rev is None:
                return f"unable to resolve '{revision}' to a commit SHA"
            self._start_sync(app, rev, self.clock(), {"username": username}, retry={})
            self._changed(app)
            return None

    def _file(self, rev: str, path: str) -> str | None:
        try:
            return str(self._git().git.show(f"{rev}:{path}"))
        except git.GitCommandError:
            return None

    def _dir_files(self, rev: str, path: str) -> dict[str, str]:
        try:
            names = self._git().git.ls_tree("-r", "--name-only", rev, "--", path).splitlines()
        except git.GitCommandError:
            return {}
        return {n: self._file(rev, n) or "" for n in names if n.endswith((".yaml", ".yml"))}

    # -- the reconcile loop -----------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        with self.lock:
            if now >= self._next_poll:
                self._next_poll = now + self.timings.git_poll_seconds
                self._poll_git()
                self._load_apps()
                for app in list(self.apps.values()):
                    self._reconcile(app, now)
            for app in list(self.apps.values()):
                self._advance(app, now)

    def _load_apps(self) -> None:
        assert self.head is not None
        root_text = self._file(self.head, self.root_manifest)
        root = yaml.safe_load(root_text) if root_text else None
        if not isinstance(root, dict):
            return
        root["metadata"].setdefault("namespace", "argocd")
        self._upsert(root)
        path = root["spec"]["source"]["path"]
        seen = {root["metadata"]["name"]}
        for text in self._dir_files(self.head, path).values():
            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError:
                continue  # the root app reports it as a ComparisonError on its own
            for doc in docs:
                if isinstance(doc, dict) and doc.get("kind") == "Application":
                    doc["metadata"].setdefault("namespace", "argocd")
                    annotations = doc["metadata"].setdefault("annotations", {})
                    # Argo CD v3 resource tracking: how the watcher tells the parent of an app.
                    annotations["argocd.argoproj.io/tracking-id"] = (
                        f"{root['metadata']['name']}:argoproj.io/Application:argocd/{doc['metadata']['name']}"
                    )
                    self._upsert(doc)
                    seen.add(doc["metadata"]["name"])
        for name in [
            n
            for n, a in self.apps.items()
            if n not in seen and "sim/static" not in a.manifest["metadata"].get("annotations", {})
        ]:
            gone = self.apps.pop(name)
            self._notify("DELETED", gone)

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

    def _render(self, app: SimApp, rev: str) -> Rendered:
        spec = app.manifest["spec"]
        source = spec.get("source") or (spec.get("sources") or [{}])[0]
        path = source.get("path", "")
        files = self._dir_files(rev, path)
        if not files:
            raise RenderError(f"{path}: app path does not exist")
        if "helm" not in source:
            for name, content in sorted(files.items()):
                try:
                    list(yaml.safe_load_all(content))
                except yaml.YAMLError as exc:
                    raise RenderError(f"failed to unmarshal {posixpath.basename(name)}: {exc}") from None
            digest = hashlib.sha1(json.dumps(files, sort_keys=True).encode()).hexdigest()
            return Rendered(digest, workload=False)
        value_files = ["values.yaml", *((source.get("helm") or {}).get("valueFiles") or [])]
        values: dict[str, Any] = {}
        for vf in value_files:
            full = posixpath.normpath(posixpath.join(path, vf))
            text = files.get(full) if full.startswith(path) else self._file(rev, full)
            if text is None:
                if vf == "values.yaml":
                    continue
                raise RenderError(f"open {full}: no such file or directory")
            try:
                loaded = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
                raise RenderError(
                    f"failed to parse {vf}: error converting YAML to JSON: yaml: line {line}: "
                    f"{getattr(exc, 'problem', 'invalid YAML')}"
                ) from None
            if not isinstance(loaded, dict):
                raise RenderError(f"failed to parse {vf}: values must be a map")
            values = _merge(values, loaded)
        image = values.get("image") or {}
        memory = ((values.get("resources") or {}).get("limits") or {}).get("memory")
        fingerprint = hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
        config = hashlib.sha1(json.dumps(values.get("config"), sort_keys=True, default=str).encode()).hexdigest()
        return Rendered(
            fingerprint,
            values.get("replicaCount", 1),
            f"{image.get('repository')}:{image.get('tag')}",
            memory,
            config=config,
        )

    def _reconcile(self, app: SimApp, now: float) -> None:
        """Compare the app's desired state at head with what is live; auto-sync when they differ."""
        if "sim/static" in app.manifest["metadata"].get("annotations", {}) or self.head is None:
            return
        target = str(app.manifest["spec"].get("source", {}).get("targetRevision", ""))
        resolved = self._resolve(target)
        rev = resolved or self.head
        before = _signature(app)
        app.status["reconciledAt"] = now_iso(now)
        try:
            desired = self._render(app, rev)
        except RenderError as exc:
            message = (
                f"Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: "
                f"code = Unknown desc = {exc}"
            )
            current = app.status.get("conditions") or []
            if not current or current[0].get("message") != message:
                app.status["conditions"] = [
                    {"type": "ComparisonError", "message": message, "lastTransitionTime": now_iso(now)}
                ]
            app.status["sync"] = {"status": "Unknown", "revision": rev, "comparedTo": self._compared_to(app)}
            if _signature(app) != before:
                self._changed(app)
            return
        app.status.pop("conditions", None)
        in_sync = app.live is not None and app.live.fingerprint == desired.fingerprint
        app.status["sync"] = {
            "status": "Synced" if in_sync else "OutOfSync",
            "revision": rev,
            "comparedTo": self._compared_to(app),
        }
        automated = (app.manifest["spec"].get("syncPolicy") or {}).get("automated")
        if not in_sync and automated is not None and app.operation is None and rev not in app.failed_revisions:
            self._start_sync(app, rev, now)
        if _signature(app) != before:
            self._changed(app)

    def _compared_to(self, app: SimApp) -> dict[str, Any]:
        return {
            "source": app.manifest["spec"].get("source", {}),
            "destination": app.manifest["spec"].get("destination", {}),
        }

    def _start_sync(
        self,
        app: SimApp,
        rev: str,
        now: float,
        initiated_by: dict[str, Any] | None = None,
        retry: dict[str, Any] | None = None,
    ) -> None:
        if retry is None:
            retry = (app.manifest["spec"].get("syncPolicy") or {}).get("retry") or {}
        app.operation = {
            "sync": {"revision": rev, "prune": True, "syncOptions": ["CreateNamespace=true"]},
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

    def _advance(self, app: SimApp, now: float) -> None:
        state = app.status.get("operationState")
        if app.terminate and app.operation is not None and state is not None:
            app.terminate = False
            self._finish(app, now, "Failed", "Operation terminated")
            app.failed_revisions.add(state["operation"]["sync"]["revision"])
            self._changed(app)
        elif app.operation is not None and app.attempt_due is not None and now >= app.attempt_due:
            self._attempt(app, now)
        if app.health_due is not None and now >= app.health_due:
            app.health_due = None
            status, message = self._live_health(app.live)
            app.status["health"] = {"status": status, "message": message, "lastTransitionTime": now_iso(now)}
            self._changed(app)

    def _attempt(self, app: SimApp, now: float) -> None:
        state = app.status["operationState"]
        rev = state["operation"]["sync"]["revision"]
        try:
            desired = self._render(app, rev)
            error = self._apply_error(app, desired)
        except RenderError as exc:
            desired, error = None, f"ComparisonError: {exc}"
        if error is None and desired is not None:
            self._finish(app, now, "Succeeded", "successfully synced (all tasks run)")
            state["syncResult"] = {
                "revision": rev,
                "source": app.manifest["spec"].get("source", {}),
                "resources": self._changed_results(app, app.live, desired),
            }
            app.live = desired
            app.status["sync"] = {"status": "Synced", "revision": rev, "comparedTo": self._compared_to(app)}
            self.history_id += 1
            history = app.status.setdefault("history", [])
            history.append(
                {
                    "id": self.history_id,
                    "revision": rev,
                    "deployedAt": now_iso(now),
                    "deployStartedAt": state["startedAt"],
                    "source": app.manifest["spec"].get("source", {}),
                    "initiatedBy": copy.deepcopy(state["operation"].get("initiatedBy") or {"automated": True}),
                }
            )
            del history[: -int(app.manifest["spec"].get("revisionHistoryLimit") or 10)]
            app.status["health"] = {
                "status": "Progressing",
                "message": "Waiting for rollout to finish",
                "lastTransitionTime": now_iso(now),
            }
            app.health_due = now + self.timings.health_seconds
        else:
            retry = state["operation"].get("retry") or {}
            limit = int(retry.get("limit", 0) or 0)
            count = int(state.get("retryCount", 0))
            if limit < 0 or count < limit:
                backoff = retry.get("backoff") or {}
                base = go_duration(backoff.get("duration"), 5.0)
                factor = float(backoff.get("factor") or 2)
                cap = go_duration(backoff.get("maxDuration"), 180.0)
                wait = min(base * factor**count, cap) * self.timings.backoff_scale
                state["retryCount"] = count + 1
                at = datetime.fromtimestamp(now + wait, UTC).strftime("%-I:%M%p")
                state["message"] = f"{error}. Retrying attempt #{count + 1} at {at}."
                app.attempt_due = now + wait + self.timings.sync_seconds
            else:
                suffix = f" (retried {count} times)." if count else ""
                state["syncResult"] = {
                    "revision": rev,
                    "source": app.manifest["spec"].get("source", {}),
                    "resources": [self._resource_result(app, "SyncFailed", error or "")],
                }
                self._finish(app, now, "Failed", f"{error}{suffix}")
                app.failed_revisions.add(rev)
        self._changed(app)

    def _finish(self, app: SimApp, now: float, phase: str, message: str) -> None:
        state = app.status["operationState"]
        state.update(phase=phase, message=message, finishedAt=now_iso(now))
        app.operation = None
        app.attempt_due = None

    def _changed_results(self, app: SimApp, live: Rendered | None, desired: Rendered) -> list[dict[str, Any]]:
        """The sync's resource results, as with ApplyOutOfSyncOnly=true (the seeds' option): only what it applied."""
        deployment = (desired.replicas, desired.image, desired.memory)
        results = []
        if live is None or (live.replicas, live.image, live.memory) != deployment:
            results.append(self._resource_result(app, "Synced", f"deployment.apps/{app.name} configured"))
        if live is None or live.config != desired.config:
            config = self._resource_result(app, "Synced", f"configmap/{app.name}-config configured")
            results.append(config | {"group": "", "kind": "ConfigMap", "name": f"{app.name}-config"})
        return results

    def _resource_statuses(self, app: SimApp) -> list[dict[str, Any]]:
        """status.resources: the Deployment with the app's health, its ConfigMap (no health of its own)."""
        dest = app.manifest["spec"].get("destination", {}).get("namespace", "")
        health = {k: v for k, v in (app.status.get("health") or {}).items() if k in ("status", "message")}
        common = {"version": "v1", "namespace": dest, "status": app.status.get("sync", {}).get("status", "Unknown")}
        return [
            common | {"group": "apps", "kind": "Deployment", "name": app.name, "health": health},
            common | {"group": "", "kind": "ConfigMap", "name": f"{app.name}-config"},
        ]

    def _resource_result(self, app: SimApp, status: str, message: str) -> dict[str, Any]:
        dest = app.manifest["spec"].get("destination", {})
        return {
            "group": "apps",
            "version": "v1",
            "kind": "Deployment",
            "namespace": dest.get("namespace", ""),
            "name": app.name,
            "status": status,
            "message": message,
            "syncPhase": "Sync",
        }

    def _apply_error(self, app: SimApp, r: Rendered) -> str | None:
        """What the Kubernetes API server would refuse."""
        prefix = f'one or more objects failed to apply, reason: Deployment.apps "{app.name}" is invalid: '
        if not r.workload:
            return None
        if not isinstance(r.replicas, int) or isinstance(r.replicas, bool):
            return prefix + f"spec.replicas: Invalid value: {r.replicas!r}: must be an integer"
        if r.replicas < 0:
            return prefix + f"spec.replicas: Invalid value: {r.replicas}: must be greater than or equal to 0"
        if r.memory is not None and _mib(r.memory) is None:
            return prefix + (
                f"spec.template.spec.containers[0].resources.limits[memory]: Invalid value: "
                f'"{r.memory}": quantities must match the regular expression'
            )
        return None

    def _live_health(self, live: Rendered | None) -> tuple[str, str]:
        if live is None:
            return "Missing", ""
        if not live.workload:
            return "Healthy", ""
        repository, _, tag = live.image.rpartition(":")
        needs = self.cluster.images.get(repository, {}).get(tag)
        if needs is None:
            return "Degraded", f'ImagePullBackOff: Back-off pulling image "{live.image}"'
        limit = _mib(live.memory) if live.memory is not None else None
        if limit is not None and limit < needs:
            return "Degraded", "CrashLoopBackOff: back-off restarting failed container app (OOMKilled)"
        if live.replicas > self.cluster.max_replicas:
            return "Progressing", (
                f"Waiting for rollout to finish: {self.cluster.max_replicas} of {live.replicas} "
                "updated replicas are available..."
            )
        return "Healthy", ""

    # -- notifications ----------------------------------------------------------------------------------
    def _changed(self, app: SimApp) -> None:
        if app.live is not None and app.live.workload:
            app.status["resources"] = self._resource_statuses(app)
        app.resource_version += 1
        self._notify("MODIFIED", app)

    def _notify(self, kind: str, app: SimApp) -> None:
        body = app.to_json()
        for listener in list(self.listeners):
            listener(kind, body)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a.to_json() for a in self.apps.values()]

    def get(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            app = self.apps.get(name)
            return app.to_json() if app else None


def _signature(app: SimApp) -> str:
    status = {k: v for k, v in app.status.items() if k != "reconciledAt"}
    return json.dumps([status, app.operation], sort_keys=True, default=str)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _mib(quantity: Any) -> float | None:
    m = MEMORY.match(str(quantity).strip())
    return float(m[1]) * MEMORY_MIB[m[2]] if m else None
