"""One app's Deployment as the cluster rolls it out: a ReplicaSet per pod template, pods scheduled while the app's
CPU share allows, old pods scaled down as new ones become available, and the Deployment's health with its
progress deadline (gitops-engine `pkg/health/health_deployment.go`, `health_replicaset.go`).

A rolling update with Kubernetes' defaults (maxSurge 25 % rounded up, maxUnavailable 25 % rounded down), stepped
at each tick of the simulator. Simplified: a pod scaled down is gone at once (no Terminating), and the progress
deadline counts from the last time the rollout made progress (a ReplicaSet scaled, a new pod available), as the
Deployment controller's Progressing condition does.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watcher.sim.pods import PodSpec, PodState, pod_info, pod_state

NODES = ("node-1", "node-2", "node-3")
PROGRESS_DEADLINE = 600.0  # Deployment spec.progressDeadlineSeconds' default


@dataclass
class SimPod:
    name: str
    created_at: float
    scheduled_at: float | None = None
    node: str = ""


@dataclass
class ReplicaSet:
    revision: int
    name: str
    spec: PodSpec
    created_at: float
    replicas: int = 0
    pods: list[SimPod] = field(default_factory=list)
    ready_seen: int = 0  # the most pods seen available: one more is progress


@dataclass(frozen=True)
class Placement:
    """Where the app's pods may go: its share of the nodes' CPU and at most `max_pods` pods."""

    cpu_millis: int = 4000
    max_pods: int = 20


@dataclass
class Rollout:
    name: str
    namespace: str
    replicas: int = 0
    sets: list[ReplicaSet] = field(default_factory=list)
    created_at: float = 0.0
    last_progress: float = 0.0
    deadline: float = PROGRESS_DEADLINE
    scale: float = 1.0  # multiplies pod durations (the fast test timings)
    history_limit: int = 10
    _counter: int = 0

    @property
    def current(self) -> ReplicaSet | None:
        return self.sets[-1] if self.sets else None

    def deploy(
        self, spec: PodSpec, replicas: int, now: float, placement: Placement, deadline: float = PROGRESS_DEADLINE
    ) -> None:
        """Apply a Deployment with this pod template and replica count: a new ReplicaSet when the template
        changed (a new revision), or the current one scaled."""
        if not self.sets:
            self.created_at = now
        self.replicas, self.deadline = max(0, replicas), deadline
        current = self.current
        if current is None or current.spec != spec:
            revision = current.revision + 1 if current else 1
            earlier = next((rs for rs in self.sets if rs.spec == spec), None)
            if earlier is not None:  # back to an earlier template (a rollback): its ReplicaSet gets the revision
                self.sets.remove(earlier)
                earlier.revision, earlier.ready_seen = revision, 0
                self.sets.append(earlier)
            else:
                digest = hashlib.sha1(repr(spec).encode()).hexdigest()[:10]
                self.sets.append(ReplicaSet(revision, f"{self.name}-{digest}", spec, now))
            del self.sets[: -(self.history_limit + 1)]
        self.last_progress = now
        self.advance(now, placement)

    def advance(self, now: float, placement: Placement) -> None:
        """One pass of the Deployment controller and the scheduler."""
        new = self.current
        if new is None:
            return
        old = [rs for rs in self.sets[:-1] if rs.pods]
        r = self.replicas
        surge, unavailable = math.ceil(r * 0.25), math.floor(r * 0.25)
        total = sum(len(rs.pods) for rs in self.sets)
        want = min(r, len(new.pods) + max(0, r + surge - total)) if old else r
        if want != len(new.pods):
            self._scale(new, want, now)
        available = sum(1 for rs in self.sets for p in rs.pods if self.state(rs, p, now).ready)
        removable = max(0, available - (r - unavailable))
        for rs in old:  # the oldest first; a pod not ready goes before a ready one
            rs.pods.sort(key=lambda p: self.state(rs, p, now).ready)
            while rs.pods and (removable > 0 or not self.state(rs, rs.pods[0], now).ready):
                removable -= int(self.state(rs, rs.pods[0], now).ready)
                rs.pods.pop(0)
                self.last_progress = now
            rs.replicas = len(rs.pods)
        self._schedule(now, placement)
        ready = sum(1 for p in new.pods if self.state(new, p, now).ready)
        if ready > new.ready_seen:
            new.ready_seen, self.last_progress = ready, now

    def _scale(self, rs: ReplicaSet, want: int, now: float) -> None:
        while len(rs.pods) > want:
            rs.pods.pop()
        while len(rs.pods) < want:
            self._counter += 1
            suffix = hashlib.sha1(f"{rs.name}/{self._counter}".encode()).hexdigest()[:5]
            rs.pods.append(SimPod(f"{rs.name}-{suffix}", now))
        rs.replicas = want
        self.last_progress = now

    def _schedule(self, now: float, placement: Placement) -> None:
        pods = [(rs, p) for rs in self.sets for p in rs.pods]
        used = sum(rs.spec.cpu_millis for rs, p in pods if p.scheduled_at is not None)
        placed = sum(1 for _, p in pods if p.scheduled_at is not None)
        for rs, p in pods:
            if (
                p.scheduled_at is None
                and used + rs.spec.cpu_millis <= placement.cpu_millis
                and placed < placement.max_pods
            ):
                p.scheduled_at, p.node = now, NODES[placed % len(NODES)]
                used += rs.spec.cpu_millis
                placed += 1

    def state(self, rs: ReplicaSet, pod: SimPod, now: float) -> PodState:
        return pod_state(rs.spec, pod.scheduled_at, now, self.scale, f"{pod.name}_{self.namespace}")

    def health(self, now: float) -> tuple[str, str]:
        """The Deployment's health, as gitops-engine computes it from the status the controller writes."""
        new = self.current
        if new is None:
            return "Missing", ""
        updated = len(new.pods)
        total = sum(len(rs.pods) for rs in self.sets)
        available = sum(1 for p in new.pods if self.state(new, p, now).ready)
        complete = updated == self.replicas and total == updated and available == updated
        if not complete and now - self.last_progress > self.deadline * self.scale:
            return "Degraded", f'Deployment "{self.name}" exceeded its progress deadline'
        if updated < self.replicas:
            return "Progressing", (
                f"Waiting for rollout to finish: {updated} out of {self.replicas} new replicas have been updated..."
            )
        if total > updated:
            return (
                "Progressing",
                f"Waiting for rollout to finish: {total - updated} old replicas are pending termination...",
            )
        if available < updated:
            return (
                "Progressing",
                f"Waiting for rollout to finish: {available} of {updated} updated replicas are available...",
            )
        return "Healthy", ""

    def nodes(self, now: float, health: dict[str, str]) -> list[dict[str, Any]]:
        """The Deployment, its ReplicaSets and their pods as resource-tree nodes (swagger v1alpha1ResourceNode)."""
        deployment = resource_ref("apps", "Deployment", self.namespace, self.name)
        current = self.current
        out = [deployment | node_fields(self.created_at, health, _revision(current))]
        for rs in self.sets:
            rs_ref = resource_ref("apps", "ReplicaSet", self.namespace, rs.name)
            ready = sum(1 for p in rs.pods if self.state(rs, p, now).ready)
            rs_health = {"status": "Healthy"}
            if ready < rs.replicas:
                rs_health = {
                    "status": "Progressing",
                    "message": f"Waiting for rollout to finish: {ready} out of {rs.replicas} new replicas are "
                    "available...",
                }
            out.append(rs_ref | {"parentRefs": [deployment]} | node_fields(rs.created_at, rs_health, _revision(rs)))
            for p in rs.pods:
                state = self.state(rs, p, now)
                pod_health = {"status": state.health} | ({"message": state.message} if state.message else {})
                out.append(
                    resource_ref("", "Pod", self.namespace, p.name)
                    | {"parentRefs": [rs_ref], "images": [rs.spec.image], "info": pod_info(rs.spec, state, p.node)}
                    | node_fields(p.created_at, pod_health, [])
                )
        return out


def _revision(rs: ReplicaSet | None) -> list[dict[str, str]]:
    """argo-cd's populateNodeInfo: "Revision" from the deployment.kubernetes.io/revision annotation."""
    return [{"name": "Revision", "value": f"Rev:{rs.revision}"}] if rs else []


def resource_ref(group: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
    uid = hashlib.sha1(f"{kind}/{namespace}/{name}".encode()).hexdigest()
    uid = f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}"
    version = "v1"
    return {"group": group, "version": version, "kind": kind, "namespace": namespace, "name": name, "uid": uid}


def node_fields(created: float, health: dict[str, str], info: list[dict[str, str]]) -> dict[str, Any]:
    node: dict[str, Any] = {
        "resourceVersion": "1",
        "createdAt": datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "health": dict(health),
    }
    if info:
        node["info"] = info
    return node
