"""Resource trees in Argo CD's shape: failing and healthy rollouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

SYNC = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


OLD_IMAGE = "registry.example/plate-api:2.4.0"


NEW_IMAGE = "registry.example/plate-api:2.5.0"


def at(seconds: float) -> str:
    return (SYNC + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ref(kind: str, name: str, group: str = "") -> dict[str, Any]:
    return {"group": group, "version": "v1", "kind": kind, "namespace": "plate", "name": name, "uid": f"uid-{name}"}


DEPLOY = ref("Deployment", "plate-api", "apps")


def rs(name: str, revision: int, created: float, health: str = "Healthy") -> dict[str, Any]:
    return ref("ReplicaSet", name, "apps") | {
        "parentRefs": [DEPLOY],
        "createdAt": at(created),
        "health": {"status": health},
        "info": [{"name": "Revision", "value": f"Rev:{revision}"}],
    }


def pod(
    name: str,
    owner: dict[str, Any],
    created: float,
    reason: str = "Running",
    restarts: int = 0,
    health: str = "Healthy",
    image: str = NEW_IMAGE,
    ready: bool = True,
) -> dict[str, Any]:
    info = [
        {"name": "Status Reason", "value": reason},
        {"name": "Node", "value": "node-1"},
        {"name": "Containers", "value": f"{int(ready)}/1"},
    ]
    if restarts:
        info.append({"name": "Restart Count", "value": str(restarts)})
    return ref("Pod", name) | {
        "parentRefs": [owner],
        "createdAt": at(created),
        "health": {"status": health},
        "images": [image],
        "info": info,
    }


OLD_RS = rs("plate-api-6d4f", 4, -86400)


NEW_RS = rs("plate-api-7c9b", 5, 1, "Progressing")


def tree(*pods: dict[str, Any], extra: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    deployment = DEPLOY | {"createdAt": at(-86400 * 30), "health": {"status": "Progressing"}}
    return {"nodes": [deployment, OLD_RS, NEW_RS, *pods, *extra]}


OLD = ref("ReplicaSet", "plate-api-6d4f")


OLD_POD = pod("plate-api-6d4f-aaaaa", OLD, -86400, image=OLD_IMAGE)


NEW = ref("ReplicaSet", "plate-api-7c9b")


JOB = ref("Job", "db-migrate", "batch")


FAILING = {
    "crash_loop": tree(OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "CrashLoopBackOff", 3, "Degraded", ready=False)),
    "restarting_running": tree(OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "Running", 2, "Healthy", ready=False)),
    "bad_image": tree(OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "ImagePullBackOff", 0, "Degraded", ready=False)),
    "err_image_pull": tree(OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "ErrImagePull", 0, "Degraded", ready=False)),
    "config_error": tree(
        OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "CreateContainerConfigError", 0, "Degraded", ready=False)
    ),
    # gitops-engine leaves InvalidImageName Progressing: the reason, not the pod's health, decides.
    "invalid_image_name": tree(
        OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "InvalidImageName", 0, "Progressing", ready=False)
    ),
    "init_crash_loop": tree(
        OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "Init:CrashLoopBackOff", 3, "Degraded", ready=False)
    ),
    "failed_hook_job": tree(
        OLD_POD,
        extra=(
            JOB | {"createdAt": at(0), "health": {"status": "Degraded", "message": "Job has reached the backoff"}},
            pod("db-migrate-q7x2m", JOB, 0, "Error", 0, "Degraded", "registry.example/plate-migrate:1.1.0", False),
        ),
    ),
}


HEALTHY = {
    "all_ready": tree(OLD_POD, pod("plate-api-7c9b-x1", NEW, 1)),
    "briefly_not_ready": tree(OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "Running", 0, "Progressing", ready=False)),
    "one_restart_while_a_dependency_starts": tree(
        OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "CrashLoopBackOff", 1, "Degraded", ready=False)
    ),
    "restarted_twice_then_ready": tree(OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "Running", 2, "Healthy")),
    "slow_image_pull": tree(
        OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "ContainerCreating", 0, "Progressing", ready=False)
    ),
    "surge_pending_on_a_full_node": tree(
        OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "Pending", 0, "Progressing", ready=False)
    ),
    "scale_down_old_pods_terminating": tree(
        pod("plate-api-6d4f-aaaaa", OLD, -86400, "Terminating", 5, "Degraded", OLD_IMAGE)
    ),
    "old_replicaset_pod_crashing_after_the_sync": tree(
        pod("plate-api-6d4f-bbbbb", OLD, 30, "CrashLoopBackOff", 6, "Degraded", OLD_IMAGE),
        pod("plate-api-7c9b-x1", NEW, 1),
    ),
    "registry_outage_new_pod_pulls_the_old_image": tree(
        OLD_POD, pod("plate-api-7c9b-x1", NEW, 1, "ImagePullBackOff", 0, "Degraded", OLD_IMAGE, False)
    ),
    "hook_job_completed": tree(
        OLD_POD,
        pod("plate-api-7c9b-x1", NEW, 1),
        extra=(
            JOB | {"createdAt": at(0), "health": {"status": "Healthy"}},
            pod("db-migrate-q7x2m", JOB, 0, "Completed", 0, "Healthy", "registry.example/plate-migrate:1.0.0", False),
        ),
    ),
    "failed_job_from_an_earlier_sync": tree(
        OLD_POD,
        pod("plate-api-7c9b-x1", NEW, 1),
        extra=(JOB | {"createdAt": at(-3600), "health": {"status": "Degraded"}},),
    ),
}
