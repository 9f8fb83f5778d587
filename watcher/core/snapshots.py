"""Argo CD's JSON -> the watcher's records, pure: an Application (swagger's v1alpha1Application) into an
AppSnapshot, and a resource tree (v1alpha1ApplicationTree) into the app's own degraded resources.

The adapter (adapters/argocd.py) fetches the JSON; the wings translate it here. A new Argo CD field goes here
and into domain.AppSnapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from watcher.core.appmap import watched_git_source
from watcher.domain import AUTOMATED, AppSnapshot, Condition, Health, Phase, ResourceResult, SyncStatus, shared

_BY_VALUE: dict[type, dict[str, Any]] = {cls: {m.value: m for m in cls} for cls in (SyncStatus, Health, Phase)}


def _enum(cls: type, value: Any) -> Any:
    # A plain dict lookup: Enum(value) costs ~20 us, which is most of a 10k-app cycle.
    # A value we do not know is unknown, never a failure.
    return _BY_VALUE[cls].get(value) if isinstance(value, str) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def snapshot_from_app(app: Mapping[str, Any], complete: bool, watched_repo: str = "") -> AppSnapshot:
    """Argo CD's Application as the watcher reads it. For a multi-source app (`spec.sources`) every revision
    is the one of the source from `watched_repo`: Argo CD reports `revisions` lined up with the sources, and a
    Helm repository's entry is a chart version, not a commit (a bump of it is a commit to the watched repo)."""
    meta = app.get("metadata") or {}
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    health = status.get("health") or {}
    op = status.get("operationState") or {}
    result = op.get("syncResult") or {}
    # In a list response this key holds the SyncResult (forwarder_overwrite.go): the same revision fields.
    op_sync = (op.get("operation") or {}).get("sync") or {}
    index = watched_source_index(app.get("spec"), watched_repo)
    revision = _revision(result, index) or _revision(op_sync, index)
    try:
        retries = int(op.get("retryCount") or 0)
    except (TypeError, ValueError):
        retries = 0
    return AppSnapshot(
        name=str(meta.get("name", "")),
        namespace=shared(str(meta.get("namespace", ""))),
        project=shared(str((app.get("spec") or {}).get("project", ""))),
        sync_status=_enum(SyncStatus, sync.get("status")),
        sync_revision=shared(_revision(sync, index)),
        health=_enum(Health, health.get("status")),
        health_message=shared(str(health.get("message", ""))),
        phase=_enum(Phase, op.get("phase")),
        operation_revision=shared(revision),
        operation_started_at=_time(op.get("startedAt")),
        operation_finished_at=_time(op.get("finishedAt")),
        operation_message=shared(str(op.get("message", ""))),
        retry_count=retries,
        conditions=tuple(
            Condition(shared(str(c.get("type", ""))), shared(str(c.get("message", ""))))
            for c in status.get("conditions") or []
            if isinstance(c, dict)
        ),
        history_revisions=tuple(_history_revisions(status.get("history"), index)),
        initiated_by=_initiator((op.get("operation") or {}).get("initiatedBy")),
        auto_sync=_auto_sync(app.get("spec")),
        degraded_resources=tuple(
            _resource_key(r)
            for r in status.get("resources") or []
            if isinstance(r, dict) and (r.get("health") or {}).get("status") == Health.DEGRADED.value
        ),
        changed_resources=_changed_resources(result.get("resources")),
        failed_resources=failed_results(result.get("resources")),
        sync_options=tuple(str(o) for o in op_sync.get("syncOptions") or () if isinstance(o, str)),
        complete=complete,
    )


def health_is_in_the_tree(app: Mapping[str, Any]) -> bool:
    """Argo CD 3.x stores no per-resource health in the Application (`status.resourceHealthSource: appTree`,
    the default since --persist-resource-health=false): `status.resources[].health` is absent, not healthy."""
    return (app.get("status") or {}).get("resourceHealthSource") == "appTree"


def degraded_in_tree(tree: Mapping[str, Any]) -> tuple[str, ...]:
    """The app's own resources (tree nodes without parentRefs: what the sync applies) whose health is
    Degraded, "Kind/namespace/name". A crashing Pod makes its Deployment degraded; the Pod itself is not
    something a sync changes, so only the managed resource counts."""
    nodes = tree.get("nodes")
    return tuple(
        _resource_key(n)
        for n in (nodes if isinstance(nodes, list) else [])
        if isinstance(n, dict)
        and not n.get("parentRefs")
        and (n.get("health") or {}).get("status") == Health.DEGRADED.value
    )


def _resource_key(r: Mapping[str, Any]) -> str:
    return f"{r.get('kind', '')}/{r.get('namespace', '')}/{r.get('name', '')}"


def failed_results(results: Any) -> tuple[ResourceResult, ...]:
    """The results that failed (gitops-engine pkg/sync/sync_context.go:1786-1826): `SyncFailed`, or a hook that
    ended Failed or Error. Each keeps its own message: the operation's joins them with bare commas."""
    if not isinstance(results, list):
        return ()
    return tuple(
        ResourceResult(
            str(r.get("kind") or ""),
            str(r.get("name") or ""),
            shared(str(r.get("namespace") or "")),
            shared(str(r.get("group") or "")),
            str(r.get("message") or "")[:1000],
            str(r.get("hookType") or ""),
        )
        for r in results
        if isinstance(r, dict)
        and (r.get("status") == "SyncFailed" or (r.get("hookType") and r.get("hookPhase") in ("Failed", "Error")))
    )


def _changed_resources(results: Any) -> tuple[str, ...] | None:
    """What the sync changed (swagger's v1alpha1ResourceResult): applied, not reported `unchanged`. With
    ApplyOutOfSyncOnly a resource the sync did not touch is not listed at all."""
    if not isinstance(results, list):
        return None
    return tuple(
        _resource_key(r)
        for r in results
        if isinstance(r, dict) and r.get("status") == "Synced" and not str(r.get("message", "")).endswith("unchanged")
    )


def _initiator(initiated: Any) -> str:
    """swagger's v1alpha1OperationInitiator: `automated: true` for the controller, else the user's name."""
    if not isinstance(initiated, dict):
        return ""
    if initiated.get("automated"):
        return AUTOMATED
    return shared(str(initiated.get("username") or ""))


def _auto_sync(spec: Any) -> bool | None:
    """Argo CD's SyncPolicy.IsAutomatedSyncEnabled: `automated` set and not `enabled: false`."""
    if not isinstance(spec, dict):
        return None
    automated = (spec.get("syncPolicy") or {}).get("automated")
    return isinstance(automated, dict) and automated.get("enabled") is not False


def watched_source_index(spec: Any, watched_repo: str) -> int | None:
    """Which entry of a multi-source app's `revisions` is the watched repo's: None for a single-source app
    (it has `revision`). With no source from the watched repo (or the repo unknown) the first entry stands for
    the app, and the policy says no commit of the watched repo is to blame."""
    sources = spec.get("sources") if isinstance(spec, dict) and not spec.get("source") else None
    if not isinstance(sources, list) or not sources:
        return None
    found = watched_git_source(sources, watched_repo) if watched_repo else None
    return 0 if found is None else found


def _revision(holder: Any, index: int | None) -> str | None:
    """`revision`, or entry `index` of `revisions` (swagger: SyncStatus, SyncOperation, SyncOperationResult,
    RevisionHistory all carry both). A missing or empty entry is unknown, never another source's revision."""
    if not isinstance(holder, dict):
        return None
    single = holder.get("revision")
    if index is None or (isinstance(single, str) and single and not holder.get("revisions")):
        return single if isinstance(single, str) and single else None
    many = holder.get("revisions")
    if isinstance(many, list) and index < len(many) and isinstance(many[index], str) and many[index]:
        return str(many[index])
    return None


def _history_revisions(history: Any, index: int | None) -> list[str]:
    """status.history revisions of the watched source, oldest first."""
    out = []
    for entry in history if isinstance(history, list) else []:
        rev = _revision(entry, index)
        if rev:
            out.append(shared(rev))
    return out
