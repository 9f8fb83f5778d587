"""A sync hook Job's run: its pods one after another (the Job controller's back-off between them), the Job's health
(gitops-engine `pkg/health/health_job.go`) and the resource result Argo CD records for it in the operation.

A hook pod's restartPolicy is Never, so gitops-engine never calls it Degraded for a waiting reason: a hook whose
image cannot be pulled waits, and the sync with it ("waiting for completion of hook ..."), until someone acts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from watcher.sim.pods import BACKOFF_START, PodSpec, PodState, pod_info, pod_state
from watcher.sim.repo_server import Hook
from watcher.sim.rollout import node_fields, resource_ref

JOB_BACKOFF_CAP = 360.0  # the Job controller's pod back-off: 10 s doubling, at most 6 min
BACKOFF_LIMIT_REACHED = "Job has reached the specified backoff limit"  # the JobFailed condition's message


@dataclass
class HookRun:
    hook: Hook
    spec: PodSpec
    namespace: str
    started_at: float
    scale: float = 1.0

    def _attempts(self) -> list[tuple[float, float | None]]:
        """Each pod's (start, end) in seconds after the run started; end None: it never finishes."""
        b = self.spec.behaviour
        if b is None:
            return [(0.0, None)]
        if b.crash_after is None:
            return [(0.0, b.pull_seconds + b.ready_seconds)]
        out: list[tuple[float, float | None]] = []
        start, wait = 0.0, BACKOFF_START
        for _ in range(self.hook.backoff_limit + 1):
            end = start + b.pull_seconds + b.crash_after
            out.append((start, end))
            start, wait = end + wait, min(wait * 2, JOB_BACKOFF_CAP)
        return out

    @property
    def fails(self) -> bool:
        return self.spec.behaviour is not None and self.spec.behaviour.crash_after is not None

    def ends_at(self) -> float | None:
        """When the Job completes or fails (Argo CD time), None when it never does."""
        end = self._attempts()[-1][1]
        return None if end is None else self.started_at + end * self.scale

    def phase(self, now: float) -> str:
        """The hook's phase as Argo CD records it: Running, Succeeded or Failed."""
        end = self.ends_at()
        if end is None or now < end:
            return "Running"
        return "Failed" if self.fails else "Succeeded"

    def result(self, now: float) -> dict[str, Any]:
        """The hook's entry in `syncResult.resources` (swagger v1alpha1ResourceResult)."""
        phase = self.phase(now)
        message = {"Failed": BACKOFF_LIMIT_REACHED, "Succeeded": "Reached expected number of succeeded pods"}
        return {
            "group": "batch",
            "version": "v1",
            "kind": "Job",
            "namespace": self.namespace,
            "name": self.hook.name,
            "status": "Synced",
            "message": message.get(phase, ""),
            "hookType": self.hook.hook_type,
            "hookPhase": phase,
            "syncPhase": self.hook.hook_type,
        }

    def waiting_message(self) -> str:
        return f"waiting for completion of hook batch/Job/{self.hook.name}"

    def nodes(self, now: float) -> list[dict[str, Any]]:
        """The Job and the pods it ran so far, as resource-tree nodes."""
        job = resource_ref("batch", "Job", self.namespace, self.hook.name)
        phase = self.phase(now)
        health = {"Running": {"status": "Progressing"}, "Succeeded": {"status": "Healthy"}}.get(
            phase, {"status": "Degraded", "message": BACKOFF_LIMIT_REACHED}
        )
        out = [job | node_fields(self.started_at, health, [])]
        for i, (start, end) in enumerate(self._attempts()):
            began = self.started_at + start * self.scale
            if began > now:
                break
            state = self._pod_state(began, end, now)
            pod_health = {"status": state.health} | ({"message": state.message} if state.message else {})
            name = f"{self.hook.name}-{hashlib.sha1(f'{self.started_at}/{i}'.encode()).hexdigest()[:5]}"
            out.append(
                resource_ref("", "Pod", self.namespace, name)
                | {"parentRefs": [job], "images": [self.spec.image], "info": pod_info(self.spec, state, "node-1")}
                | node_fields(began, pod_health, [])
            )
        return out

    def _pod_state(self, began: float, end: float | None, now: float) -> PodState:
        if end is not None and not self.fails and now >= self.started_at + end * self.scale:
            return PodState("Succeeded", "Completed", False, 0, "Healthy", "")
        return pod_state(self.spec, began, now, self.scale)
