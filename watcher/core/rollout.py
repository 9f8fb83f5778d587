"""Pure rollout watch: one app's resource tree + the sync of R + now -> the new rollout's pods that keep failing.

The tree is swagger's v1alpha1ApplicationTree. The `info` items are the ones argo-cd's controller/cache/info.go
puts on nodes: a Pod's "Status Reason" (a waiting container's reason, "Init:" + an init container's, or
"Terminating"), "Containers" ready/total and "Restart Count" (only when > 0); a ReplicaSet's "Revision" ("Rev:N",
the deployment.kubernetes.io/revision annotation). Only pods of the new rollout count: an old ReplicaSet's pod
that crashes after the sync is a node's or a dependency's problem, not R's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Waiting reasons that never clear by themselves in a normal rollout: the pod spec R brought is wrong.
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "InvalidImageName", "CreateContainerError"})
# The image cannot be pulled: R's fault only when R brought the image (old pods run it too: a registry outage).
PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"})
# Phases of gitops-engine's OperationPhase that end a hook badly (swagger's hookPhase is a free string).
FAILED_HOOK_PHASES = frozenset({"Failed", "Error"})


@dataclass(frozen=True, slots=True)
class RolloutRules:
    grace: timedelta = timedelta(seconds=20)  # a pod must keep failing this long (from when it was first seen)
    restarts: int = 2  # restarts of a new pod, still not ready, that make it failing whatever its reason
    window: timedelta = timedelta(minutes=15)  # after the sync finished: the trees of apps this recent are read


@dataclass(frozen=True, slots=True)
class FailingPod:
    name: str
    reason: str
    restarts: int
    images: tuple[str, ...]
    owner: str  # "ReplicaSet/x", "Job/y", or "" for a bare pod

    @property
    def final(self) -> bool:
        return self.name.startswith("Job/")

    def as_evidence(self) -> dict[str, object]:
        return {"name": self.name, "reason": self.reason, "restarts": self.restarts, "images": list(self.images)}


@dataclass(frozen=True, slots=True)
class RolloutWatch:
    """What the watch remembers of one app between reads: the sync it follows and since when each pod fails."""

    revision: str = ""
    failing_since: Mapping[str, datetime] = field(default_factory=dict)  # pod (or hook Job) name -> first seen


@dataclass(frozen=True, slots=True)
class RolloutVerdict:
    revision: str
    pods: tuple[FailingPod, ...]  # failing past the grace, oldest failure first
    since: datetime  # when the first of them was seen failing

    def reason(self) -> str:
        first = self.pods[0]
        more = f" and {len(self.pods) - 1} more" if len(self.pods) > 1 else ""
        restarts = f", {first.restarts} restarts" if first.restarts else ""
        return f"new rollout failing: pod {first.name} {first.reason}{restarts}{more}"

    def evidence(self) -> dict[str, object]:
        return {
            "failing_pods": [p.as_evidence() for p in self.pods],
            "failing_images": list(self.failing_images()),
            "onset": self.since.isoformat(),
        }

    def failing_images(self) -> tuple[str, ...]:
        """The images of the failing pods (what narrowing looks for in the commits): every image they run."""
        return tuple(dict.fromkeys(i for p in self.pods for i in p.images))


def assess(
    watch: RolloutWatch,
    tree: Mapping[str, Any],
    revision: str,
    sync_started: datetime,
    now: datetime,
    rules: RolloutRules,
    hook_results: Sequence[Mapping[str, Any]] = (),
) -> tuple[RolloutWatch, RolloutVerdict | None]:
    """Fold one tree read into the watch; a verdict when some pod of R's rollout has failed for the grace."""
    failing = failing_now(tree, sync_started, rules.restarts, hook_results)
    known = watch.failing_since if watch.revision == revision else {}
    # A pod that is fine again drops out, so a brief blip starts its grace over next time.
    since = {p.name: known.get(p.name, now) for p in failing}
    after = RolloutWatch(revision, since)
    # A hook Job that failed is final (its backoff limit is reached): no grace, nothing would clear it.
    due = sorted((since[p.name], p.name, p) for p in failing if p.final or now - since[p.name] >= rules.grace)
    if not due:
        return after, None
    return after, RolloutVerdict(revision, tuple(p for _, _, p in due), due[0][0])


def failing_now(
    tree: Mapping[str, Any], sync_started: datetime, restarts: int, hook_results: Sequence[Mapping[str, Any]] = ()
) -> list[FailingPod]:
    """The pods of the new rollout (and its hook Jobs) that fail in this tree, whatever how long."""
    nodes = [n for n in _list(tree.get("nodes")) if isinstance(n, dict)]
    by_uid = {k: n for n in nodes for k in _keys(n)}
    newest = _newest_replicasets(nodes)
    old_images = {
        i for n in nodes if n.get("kind") == "Pod" and not _is_new(n, by_uid, newest, sync_started) for i in _images(n)
    }
    out: list[FailingPod] = []
    for n in nodes:
        if n.get("kind") == "Pod" and _is_new(n, by_uid, newest, sync_started):
            pod = _failing_pod(n, by_uid, restarts, old_images)
            if pod is not None:
                out.append(pod)
        elif n.get("kind") == "Job" and _after(n, sync_started):
            if (n.get("health") or {}).get("status") == "Degraded":
                out.append(FailingPod(f"Job/{n.get('name', '')}", _job_reason(n), 0, _job_images(n, nodes), ""))
    listed = {p.name for p in out}
    for r in hook_results:
        name = f"Job/{r.get('name', '')}"
        if r.get("kind") == "Job" and r.get("hookPhase") in FAILED_HOOK_PHASES and name not in listed:
            out.append(FailingPod(name, f"hook {r.get('hookPhase')}: {r.get('message', '')}".strip(), 0, (), ""))
    return out


def _failing_pod(
    n: Mapping[str, Any], by_uid: Mapping[Any, Mapping[str, Any]], restarts: int, old_images: set[str]
) -> FailingPod | None:
    info = _info(n)
    reason = info.get("Status Reason", "").removeprefix("Init:")
    count = _int(info.get("Restart Count", "0"))
    images = _images(n)
    if reason == "Terminating":
        return None  # going away (a scale-down, the old ReplicaSet's turn)
    failing = (
        (count >= restarts and not _ready(info))
        or reason in CONFIG_REASONS
        or (reason in PULL_REASONS and any(i not in old_images for i in images))
    )
    if not failing:
        return None
    owner = next((f"{p.get('kind')}/{p.get('name')}" for p in _list(n.get("parentRefs")) if isinstance(p, dict)), "")
    return FailingPod(str(n.get("name", "")), reason or "restarting", count, images, owner)


def _is_new(
    pod: Mapping[str, Any],
    by_uid: Mapping[Any, Mapping[str, Any]],
    newest: set[Any],
    sync_started: datetime,
) -> bool:
    """A pod of the rollout R started: owned by its Deployment's newest ReplicaSet, else created since the sync
    began (a Job's, a StatefulSet's, a bare pod). An older ReplicaSet's pod never is, even one recreated later.
    A ReplicaSet is known by its uid, or by its name where a tree names it without one."""
    for ref in _list(pod.get("parentRefs")):
        if isinstance(ref, dict) and ref.get("kind") == "ReplicaSet":
            keys = _keys(ref)
            return bool(keys & newest) or (
                not any(k in by_uid for k in keys) and _after(pod, sync_started)  # its ReplicaSet is not in the tree
            )
    return _after(pod, sync_started)


def _keys(n: Mapping[str, Any]) -> set[Any]:
    return {k for k in (n.get("uid"), f"name:{n.get('name')}" if n.get("name") else None) if k}


def _newest_replicasets(nodes: Sequence[Mapping[str, Any]]) -> set[Any]:
    """Per Deployment, the uid (and name) of the ReplicaSet with the highest "Rev:N" (ties, or no revision: the
    newest)."""
    best: dict[Any, tuple[int, str, str, str]] = {}
    for n in nodes:
        if n.get("kind") != "ReplicaSet":
            continue
        parent = next((p.get("uid") or p.get("name") for p in _list(n.get("parentRefs")) if isinstance(p, dict)), None)
        revision = _int(_info(n).get("Revision", "").removeprefix("Rev:"))
        rank = (revision, str(n.get("createdAt", "")), str(n.get("uid") or ""), str(n.get("name", "")))
        if parent not in best or rank > best[parent]:
            best[parent] = rank
    return {k for _, _, uid, name in best.values() for k in (uid, f"name:{name}" if name else None) if k}


# A pod in trouble whatever its owner (the scenarios' and info.go's reasons): for pods the deploy did not create.
TROUBLE_REASONS = CONFIG_REASONS | PULL_REASONS | {"CrashLoopBackOff", "Error", "Unknown", "NodeLost", "OOMKilled"}


def not_from_this_deploy(tree: Mapping[str, Any], sync_started: datetime, restarts: int) -> tuple[str, ...]:
    """Pods in trouble that the sync starting at `sync_started` provably did not create (an older ReplicaSet's in
    the tree, or created before it: on a lost node, pulling an image the deploy did not change), when no pod of the
    new rollout fails and no pod in trouble is of unknown origin: the app fails, but not by the deploy's doing.
    Empty otherwise (unknown never clears a commit)."""
    nodes = [n for n in _list(tree.get("nodes")) if isinstance(n, dict)]
    if failing_now(tree, sync_started, restarts):
        return ()
    by_uid = {k: n for n in nodes if n.get("kind") == "ReplicaSet" for k in _keys(n)}
    newest = _newest_replicasets(nodes)
    troubled = [n for n in nodes if n.get("kind") == "Pod" and _in_trouble(n, restarts)]
    old = [n for n in troubled if _provably_old(n, by_uid, newest, sync_started)]
    if not old or len(old) < len(troubled):
        return ()
    return tuple(f"Pod/{n.get('namespace', '')}/{n.get('name', '')}" for n in old)


def _provably_old(pod: Mapping[str, Any], by_uid: Mapping[Any, Any], newest: set[Any], sync_started: datetime) -> bool:
    created = _created(pod)
    if created is not None and created < sync_started.replace(microsecond=0):
        return True
    owners = [_keys(r) for r in _list(pod.get("parentRefs")) if isinstance(r, dict) and r.get("kind") == "ReplicaSet"]
    return any(keys & set(by_uid) and not keys & newest for keys in owners)


def _in_trouble(n: Mapping[str, Any], restarts: int) -> bool:
    info = _info(n)
    reason = info.get("Status Reason", "").removeprefix("Init:")
    if reason == "Terminating":
        return False
    health = (n.get("health") or {}).get("status")
    not_ready = (_int(info.get("Restart Count", "0")) >= restarts) and not _ready(info)
    return health in ("Degraded", "Unknown") or reason in TROUBLE_REASONS or not_ready


def _after(n: Mapping[str, Any], t: datetime) -> bool:
    created = _created(n)
    return created is not None and created >= t.replace(microsecond=0)  # createdAt has whole seconds


def _created(n: Mapping[str, Any]) -> datetime | None:
    value = n.get("createdAt")
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _job_reason(n: Mapping[str, Any]) -> str:
    message = str((n.get("health") or {}).get("message", ""))
    return f"hook failed: {message}" if message else "hook failed"


def _job_images(job: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    uid = job.get("uid")
    return tuple(
        dict.fromkeys(
            i
            for n in nodes
            if any(isinstance(p, dict) and p.get("uid") == uid for p in _list(n.get("parentRefs")))
            for i in _images(n)
        )
    )


def _ready(info: Mapping[str, str]) -> bool:
    """argo-cd's "Containers" item, "ready/total": a pod that restarted while a dependency started and is ready
    now is not failing, however many restarts it counts."""
    ready, _, total = info.get("Containers", "").partition("/")
    return bool(total) and ready == total


def _info(n: Mapping[str, Any]) -> dict[str, str]:
    return {str(i.get("name")): str(i.get("value", "")) for i in _list(n.get("info")) if isinstance(i, dict)}


def _images(n: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(i) for i in _list(n.get("images")))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
