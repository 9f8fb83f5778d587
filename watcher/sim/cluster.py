"""The simulated cluster: which images its registry has and what each needs, what the API server refuses,
how a workload's health comes out, and the resource results and statuses Argo CD reports for an app."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from watcher.sim.admission import APPLY_FAILED, Admission, result_entry
from watcher.sim.pods import ImageBehaviour, PodSpec
from watcher.sim.repo_server import Hook, Rendered
from watcher.sim.rollout import Placement, Rollout, node_fields, resource_ref

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
    # What an image does once pulled ("repository:tag" -> behaviour); an image the registry has and that is not
    # named here starts and becomes ready normally.
    behaviours: dict[str, ImageBehaviour] = field(default_factory=dict)
    # (namespace, "Secret" | "ConfigMap", name) -> its keys: what a container's env may reference.
    config_objects: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    app_cpu_millis: int = 4000  # the CPU an app's pods can have on the nodes (the rest is other teams')
    admission: Admission = field(default_factory=Admission)  # webhooks and the API server's availability

    def behaviour(self, image: str) -> ImageBehaviour | None:
        """None when the registry does not have the image."""
        repository, _, tag = image.rpartition(":")
        if tag not in self.images.get(repository, {}):
            return None
        return self.behaviours.get(image, ImageBehaviour())

    def placement(self) -> Placement:
        return Placement(self.app_cpu_millis, self.max_replicas)

    def pod_spec(self, live: Rendered, namespace: str) -> PodSpec:
        """The pod template a Deployment of `live` runs, with what the cluster makes of it."""
        repository, _, tag = live.image.rpartition(":")
        needs = self.images.get(repository, {}).get(tag)
        limit = _mib(live.memory) if live.memory is not None else None
        return PodSpec(
            image=live.image,
            behaviour=self.behaviour(live.image),
            config_error=self._config_error(live, namespace),
            oom=needs is not None and limit is not None and limit < needs,
            cpu_millis=_millicores(live.cpu),
            memory_bytes=64 * 1024 * 1024,
        )

    def hook_spec(self, hook: Hook) -> PodSpec:
        return PodSpec(
            hook.image, self.behaviour(hook.image), restart_policy="Never", cpu_millis=100, container=hook.container
        )

    def _config_error(self, live: Rendered, namespace: str) -> str:
        """The kubelet's CreateContainerConfigError message for the first missing reference, or ""."""
        for kind, name, key in live.env:
            keys = self.config_objects.get((namespace, kind, name))
            if keys is None:
                return f'{kind.lower()} "{name}" not found'
            if key not in keys:
                return f"couldn't find key {key} in {kind} {namespace}/{name}"
        return ""


def changed_results(name: str, namespace: str, live: Rendered | None, desired: Rendered) -> list[dict[str, Any]]:
    """The sync's resource results, as with ApplyOutOfSyncOnly=true (the seeds' option): only what it applied."""

    # The Deployment is applied when anything of it changed: its replicas or its pod template.
    def deployment(r: Rendered) -> tuple[Any, ...]:
        return (r.replicas, r.image, r.memory, r.cpu, r.env)

    results = []
    if live is None or deployment(live) != deployment(desired):
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


def resource_tree(
    name: str,
    namespace: str,
    status: dict[str, Any],
    rollout: Rollout | None,
    now: float,
    hook_nodes: list[dict[str, Any]],
) -> dict[str, Any]:
    """GET .../resource-tree (swagger: v1alpha1ApplicationTree): the managed Deployment (with the app's health) and
    ConfigMap, each ReplicaSet of the rollout and its pods below it (parentRefs), and the last hook Job's nodes."""
    health = {k: v for k, v in (status.get("health") or {}).items() if k in ("status", "message") and v}
    created = rollout.created_at if rollout is not None else now
    # A ConfigMap has no health check in gitops-engine: Argo CD serves its node without `health`.
    config = resource_ref("", "ConfigMap", namespace, f"{name}-config") | node_fields(created, {}, [])
    del config["health"]
    nodes = rollout.nodes(now, health) if rollout is not None else []
    return {"nodes": [*nodes, config, *hook_nodes]}


def resource_result(name: str, namespace: str, status: str, message: str) -> dict[str, Any]:
    return result_entry("apps", "Deployment", namespace, name, status, message)


def apply_error(name: str, r: Rendered) -> str | None:
    """What the Kubernetes API server would refuse."""
    prefix = f'{APPLY_FAILED}Deployment.apps "{name}" is invalid: '
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


def _millicores(quantity: Any) -> int:
    text = str(quantity if quantity is not None else "100m").strip()
    try:
        return int(float(text[:-1])) if text.endswith("m") else int(float(text) * 1000)
    except ValueError:
        return 100


def _mib(quantity: Any) -> float | None:
    m = MEMORY.match(str(quantity).strip())
    return float(m[1]) * MEMORY_MIB[m[2]] if m else None
