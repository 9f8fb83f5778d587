"""The simulated cluster: which images its registry has and what each needs, what the API server refuses,
how a workload's health comes out, and the resource results and statuses Argo CD reports for an app."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from watcher.sim.repo_server import Rendered

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
class Cluster:
    images: dict[str, dict[str, int]] = field(default_factory=dict)  # repository -> tag -> MiB needed
    max_replicas: int = 20
    # Argo CD 3.x does not store each resource's health in the Application (`resourceHealthSource: appTree`,
    # controller flag --persist-resource-health=false): it is only in the resource tree. True: as before 3.0.
    persist_resource_health: bool = False


def changed_results(name: str, namespace: str, live: Rendered | None, desired: Rendered) -> list[dict[str, Any]]:
    """The sync's resource results, as with ApplyOutOfSyncOnly=true (the seeds' option): only what it applied."""
    deployment = (desired.replicas, desired.image, desired.memory)
    results = []
    if live is None or (live.replicas, live.image, live.memory) != deployment:
        results.append(resource_result(name, namespace, "Synced", f"deployment.apps/{name} configured"))
    if live is None or live.config != desired.config:
        config = resource_result(name, namespace, "Synced", f"configmap/{name}-config configured")
        results.append(config | {"group": "", "kind": "ConfigMap", "name": f"{name}-config"})
    return results


def resource_statuses(name: str, namespace: str, status: dict[str, Any], with_health: bool) -> list[dict[str, Any]]:
    """status.resources: the Deployment (with the app's health when health is persisted), its ConfigMap."""
    health = {k: v for k, v in (status.get("health") or {}).items() if k in ("status", "message")}
    common = {"version": "v1", "namespace": namespace, "status": status.get("sync", {}).get("status", "Unknown")}
    deployment = common | {"group": "apps", "kind": "Deployment", "name": name}
    return [
        deployment | {"health": health} if with_health else deployment,
        common | {"group": "", "kind": "ConfigMap", "name": f"{name}-config"},
    ]


def resource_tree(name: str, namespace: str, status: dict[str, Any], image: str) -> dict[str, Any]:
    """GET .../resource-tree (swagger: v1alpha1ApplicationTree): the managed Deployment and ConfigMap, and the
    Deployment's ReplicaSet and Pod below it (parentRefs), each Deployment-side node with the app's health."""
    health = {k: v for k, v in (status.get("health") or {}).items() if k in ("status", "message")}
    deployment = {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": namespace, "name": name}
    replica_set = {"group": "apps", "version": "v1", "kind": "ReplicaSet", "namespace": namespace, "name": f"{name}-1"}
    pod = {"group": "", "version": "v1", "kind": "Pod", "namespace": namespace, "name": f"{name}-1-a"}
    config = {"group": "", "version": "v1", "kind": "ConfigMap", "namespace": namespace, "name": f"{name}-config"}
    return {
        "nodes": [
            deployment | {"health": health, "resourceVersion": "1"},
            config | {"resourceVersion": "1"},
            replica_set | {"health": health, "parentRefs": [deployment], "resourceVersion": "1"},
            pod | {"health": health, "parentRefs": [replica_set], "images": [image], "resourceVersion": "1"},
        ]
    }


def resource_result(name: str, namespace: str, status: str, message: str) -> dict[str, Any]:
    return {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
        "namespace": namespace,
        "name": name,
        "status": status,
        "message": message,
        "syncPhase": "Sync",
    }


def apply_error(name: str, r: Rendered) -> str | None:
    """What the Kubernetes API server would refuse."""
    prefix = f'one or more objects failed to apply, reason: Deployment.apps "{name}" is invalid: '
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


def live_health(cluster: Cluster, live: Rendered | None) -> tuple[str, str]:
    if live is None:
        return "Missing", ""
    if not live.workload:
        return "Healthy", ""
    repository, _, tag = live.image.rpartition(":")
    needs = cluster.images.get(repository, {}).get(tag)
    if needs is None:
        return "Degraded", f'ImagePullBackOff: Back-off pulling image "{live.image}"'
    limit = _mib(live.memory) if live.memory is not None else None
    if limit is not None and limit < needs:
        return "Degraded", "CrashLoopBackOff: back-off restarting failed container app (OOMKilled)"
    if live.replicas > cluster.max_replicas:
        return "Progressing", (
            f"Waiting for rollout to finish: {cluster.max_replicas} of {live.replicas} "
            "updated replicas are available..."
        )
    return "Healthy", ""


def _mib(quantity: Any) -> float | None:
    m = MEMORY.match(str(quantity).strip())
    return float(m[1]) * MEMORY_MIB[m[2]] if m else None
