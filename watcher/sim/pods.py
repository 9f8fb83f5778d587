"""What one simulated pod shows at a moment, and the health Argo CD gives it (pure: spec facts + times in, state out).

The pod's life follows the kubelet: pull the image (ErrImagePull, then ImagePullBackOff between tries), create the
container (CreateContainerConfigError when a referenced Secret key is missing), run it; a container that exits is
restarted after a back-off of 10 s doubling to 5 min (CrashLoopBackOff while it waits). Health follows
gitops-engine `pkg/health/health_pod.go` (getCorev1PodHealth) and the `info` items argo-cd's
`controller/cache/info.go` (populatePodInfo) fills.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BACKOFF_START, BACKOFF_CAP = 10.0, 300.0  # kubelet's container restart and image pull back-off
PULL_SECONDS = 2.0  # an image the node pulls at a normal speed
READY_SECONDS = 3.0  # from the container's start to its readiness probe passing
# A reference the container runtime can parse (docker/distribution's grammar, shortened): lower-case path
# components, an optional tag. Kubelet refuses anything else with InvalidImageName.
IMAGE_REFERENCE = re.compile(
    r"^(?:[a-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


@dataclass(frozen=True)
class ImageBehaviour:
    """What a container from this image does once pulled (the simulated registry's view of an image)."""

    pull_seconds: float = PULL_SECONDS
    ready_seconds: float = READY_SECONDS
    crash_after: float | None = None  # exits with code 1 this long after every start: a crash loop
    exits_once_after: float | None = None  # exits once this long after its first start (a dependency was not up)


@dataclass(frozen=True)
class PodSpec:
    """What a pod of a rollout is made of, reduced to what decides its life."""

    image: str
    behaviour: ImageBehaviour | None  # None: the registry does not have the image
    config_error: str = ""  # the kubelet's message when a referenced Secret/ConfigMap (key) is missing
    oom: bool = False  # the memory limit is below what the container needs: killed on start
    restart_policy: str = "Always"  # "Never" for a hook Job's pod
    cpu_millis: int = 100
    memory_bytes: int = 64 * 1024 * 1024
    container: str = "app"


@dataclass(frozen=True)
class PodState:
    phase: str  # Pending | Running | Failed | Succeeded
    reason: str  # argo-cd's "Status Reason" info item
    ready: bool
    restarts: int
    health: str
    message: str  # the health message


def invalid_image(image: str) -> bool:
    return not IMAGE_REFERENCE.match(image)


def pod_state(spec: PodSpec, scheduled_at: float | None, now: float, scale: float = 1.0, pod: str = "") -> PodState:
    """The pod `now`, scheduled on a node at `scheduled_at` (None: still Pending, unschedulable). `scale`
    multiplies every kubelet duration (the fast test timings shrink them; the real timings keep 1.0)."""
    if scheduled_at is None:
        return _state("Pending", "Pending", health="Progressing")
    t = (now - scheduled_at) / scale
    if invalid_image(spec.image):
        message = (
            f'Failed to apply default image tag "{spec.image}": couldn\'t parse image name "{spec.image}": '
            "invalid reference format"
        )
        return _waiting(spec, "InvalidImageName", message)
    if spec.behaviour is None:
        return _pull_failing(spec, t)
    b = spec.behaviour
    if t < b.pull_seconds:
        return _state("Pending", "ContainerCreating", health="Progressing")
    if spec.config_error:
        return _waiting(spec, "CreateContainerConfigError", spec.config_error)
    return _running(spec, t - b.pull_seconds, pod)


def _pull_failing(spec: PodSpec, t: float) -> PodState:
    """ErrImagePull at each try, ImagePullBackOff between tries (tries at 2 s, then back-off 10 s doubling)."""
    if t < PULL_SECONDS:
        return _state("Pending", "ContainerCreating", health="Progressing")
    tried, wait = PULL_SECONDS, BACKOFF_START
    while tried + 1.0 + wait <= t:
        tried += 1.0 + wait
        wait = min(wait * 2, BACKOFF_CAP)
    if t < tried + 1.0:
        message = (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{spec.image}": '
            f'failed to resolve reference "{spec.image}": not found'
        )
        return _waiting(spec, "ErrImagePull", message)
    return _waiting(spec, "ImagePullBackOff", f'Back-off pulling image "{spec.image}"')


def _running(spec: PodSpec, t: float, pod: str) -> PodState:
    """`t` seconds after the image is pulled: running, exiting, waiting out the restart back-off."""
    b = spec.behaviour or ImageBehaviour()
    exits = 0.5 if spec.oom else b.crash_after
    if exits is None and b.exits_once_after is None:
        return _up(t, b, restarts=0, terminated=False)
    start, restarts, wait = 0.0, 0, BACKOFF_START
    while True:
        run_for = exits if exits is not None else (b.exits_once_after if restarts == 0 else None)
        if run_for is None:  # the once-failing container, started again: it stays up
            return _up(t - start, b, restarts, terminated=True)
        if t < start + run_for:
            # Running, not ready: after a first exit gitops-engine calls it Degraded (lastTerminationState set).
            return _state("Running", "Running", restarts=restarts, health="Degraded" if restarts else "Progressing")
        if spec.restart_policy != "Always":
            return _state(
                "Failed",
                "OOMKilled" if spec.oom else "Error",
                restarts=restarts,
                health="Degraded",
                message="OOMKilled" if spec.oom else f'container "{spec.container}" failed with exit code 1',
            )
        exited = start + run_for
        if t < exited + wait:
            message = f"back-off {go_duration(wait)} restarting failed container={spec.container} pod={pod}"
            return _waiting(spec, "CrashLoopBackOff", message, restarts + 1)
        start, restarts, wait = exited + wait, restarts + 1, min(wait * 2, BACKOFF_CAP)


def go_duration(seconds: float) -> str:
    """A whole number of seconds as Go's time.Duration prints it (the kubelet's messages): 10s, 1m20s, 5m0s."""
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def _up(t: float, b: ImageBehaviour, restarts: int, terminated: bool) -> PodState:
    if t >= b.ready_seconds:
        return _state("Running", "Running", ready=True, restarts=restarts, health="Healthy")
    return _state("Running", "Running", restarts=restarts, health="Degraded" if terminated else "Progressing")


def _waiting(spec: PodSpec, reason: str, message: str, restarts: int = 0) -> PodState:
    """A container waiting with `reason`: gitops-engine makes the pod Degraded when the reason starts with Err or
    ends with Error or BackOff, and only for restartPolicy Always (a hook's pod stays Progressing);
    InvalidImageName matches none of these, so Argo CD shows such a pod Progressing (phase Pending)."""
    phase = "Running" if reason == "CrashLoopBackOff" else "Pending"
    degraded = reason.startswith("Err") or reason.endswith(("Error", "BackOff"))
    if degraded and spec.restart_policy == "Always":
        return _state(phase, reason, restarts=restarts, health="Degraded", message=message)
    return _state(phase, reason, restarts=restarts, health="Progressing")


def _state(
    phase: str, reason: str, *, ready: bool = False, restarts: int = 0, health: str, message: str = ""
) -> PodState:
    return PodState(phase, reason, ready, restarts, health, message)


def pod_info(spec: PodSpec, state: PodState, node: str) -> list[dict[str, str]]:
    """The node's `info`, in argo-cd's order (controller/cache/info.go populatePodInfo): Status Reason, Node,
    Containers ready/total, Restart Count (only when > 0), then the requests (common.PodRequestsCPU "cpu" and
    PodRequestsMEM "memory", as milli-values) while the pod is not terminal."""
    info = [
        {"name": "Status Reason", "value": state.reason},
        {"name": "Node", "value": node},
        {"name": "Containers", "value": f"{int(state.ready)}/1"},
    ]
    if state.restarts:
        info.append({"name": "Restart Count", "value": str(state.restarts)})
    if state.phase not in ("Succeeded", "Failed"):
        info.append({"name": "cpu", "value": str(spec.cpu_millis)})
        info.append({"name": "memory", "value": str(spec.memory_bytes * 1000)})
    return info
