"""The simulated API server's refusals of a sync that are not about one field of the app's Deployment: an admission
webhook that cannot be called or that denies, an API server that is unavailable, `kubectl replace` of the app's
Service (Replace=true), and the Application CRD's schema for the children of the app-of-apps.

Each is what Argo CD then shows: the operation's message (gitops-engine/pkg/sync/sync_context.go:709,926-935 join
the failed tasks' messages after `one or more objects failed to apply, reason: `) and the failed
`syncResult.resources[]` entries with the object and its own message (sync_context.go:1786-1826).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from watcher.sim.repo_server import Rendered

APPLY_FAILED = "one or more objects failed to apply, reason: "


@dataclass
class Admission:
    """What the cluster does to writes, set by a test or the demo while the simulator runs."""

    webhook: str = "validate.kyverno.svc-fail"  # a validating webhook on Deployments (Kyverno's name for it)
    webhook_unreachable: bool = False  # its Service does not answer: every write of a Deployment fails
    webhook_denies: str = ""  # not empty: the webhook denies every Deployment with this message
    api_unavailable: bool = False  # the API server answers 503 to every write
    require_limits: bool = False  # the webhook denies a Deployment without a memory limit (Kyverno's policy)


@dataclass(frozen=True)
class Refusal:
    message: str  # the operation's message (before Argo CD's retry suffixes)
    resources: list[dict[str, Any]] = field(default_factory=list)  # the failed syncResult.resources[] entries


def refusal(
    admission: Admission,
    name: str,
    namespace: str,
    desired: Rendered,
    sync_options: Sequence[str],
    children: Sequence[dict[str, Any]] = (),
) -> Refusal | None:
    """Why the API server refuses this sync of app `name` (None: it does not)."""
    if not desired.workload:
        return _invalid_children(children)
    if admission.api_unavailable:
        # apimachinery pkg/api/errors/errors.go:481 (503) with the request in parentheses (:494-499).
        text = f"the server is currently unable to handle the request (put deployments.apps {name})"
        return _refused([_result("apps", "Deployment", namespace, name, text)])
    if admission.webhook_unreachable:
        # apiserver pkg/util/webhook/error.go:34-39 inside apimachinery errors.go:395 ("Internal error occurred");
        # the call's own error as net/http writes it (captured in deployKF/deployKF#174, kyverno/kyverno#2869).
        host = "kyverno-svc.kyverno.svc:443"
        text = (
            f'Internal error occurred: failed calling webhook "{admission.webhook}": failed to call webhook: Post '
            f'"https://{host}/validate/fail?timeout=10s": context deadline exceeded'
        )
        return _refused([_result("apps", "Deployment", namespace, name, text)])
    if admission.webhook_denies:
        # apiserver pkg/admission/plugin/webhook/errors/statuserror.go:29-51.
        text = f'admission webhook "{admission.webhook}" denied the request: {admission.webhook_denies}'
        return _refused([_result("apps", "Deployment", namespace, name, text)])
    if admission.require_limits and desired.memory is None:
        # Kyverno's require-requests-limits policy, in the words its webhook denies with (kyverno/kyverno#2869).
        text = (
            f'admission webhook "{admission.webhook}" denied the request: policy Deployment/{namespace}/{name} for '
            "resource violation: require-requests-limits: validate-resources: validation error: CPU and memory "
            "resource requests and limits are required. rule validate-resources failed at path "
            "/spec/template/spec/containers/0/resources/limits/memory/"
        )
        return _refused([_result("apps", "Deployment", namespace, name, text)])
    if "Replace=true" in sync_options:
        # Replace=true runs `kubectl replace` (sync_context.go:1434,1461; pkg/utils/kube/resource_ops.go:302) on
        # every object, the app's Service too: a Service replaced without the clusterIP the API server assigned it
        # is refused (kubernetes/kubectl#798, argoproj/argo-cd#2150, both captured).
        text = (
            f'error when replacing "/dev/shm/{zlib.crc32(name.encode())}": Service "{name}" is invalid: '
            'spec.clusterIP: Invalid value: "": field is immutable'
        )
        return _refused([_result("", "Service", namespace, name, text)])
    return None


def _invalid_children(children: Sequence[dict[str, Any]]) -> Refusal | None:
    """The Application CRD's structural schema (reference/argocd/application-crd.yaml: retry.backoff.duration is
    `type: string`) refusing a child Application of the app-of-apps, in the API server's words for a type mismatch
    (apiextensions validation through apimachinery errors.go:307: `<path>: Invalid value: "integer": <path> in body
    must be of type string: "integer"`)."""
    failed = []
    for child in children:
        backoff = (((child.get("spec") or {}).get("syncPolicy") or {}).get("retry") or {}).get("backoff") or {}
        duration = backoff.get("duration")
        if duration is None or isinstance(duration, str):
            continue
        path = "spec.syncPolicy.retry.backoff.duration"
        got = "integer" if isinstance(duration, int) else "number"
        name = str(child["metadata"]["name"])
        text = (
            f'Application.argoproj.io "{name}" is invalid: {path}: Invalid value: "{got}": {path} in body must be '
            f'of type string: "{got}"'
        )
        failed.append(
            _result("argoproj.io", "Application", str(child["metadata"].get("namespace") or "argocd"), name, text)
        )
    return _refused(failed) if failed else None


def invalid_child(child: dict[str, Any]) -> bool:
    """The API server would refuse this child Application: Argo CD never creates it."""
    return _invalid_children([child]) is not None


def _refused(results: list[dict[str, Any]]) -> Refusal:
    return Refusal(APPLY_FAILED + ",".join(r["message"] for r in results), results)


def _result(group: str, kind: str, namespace: str, name: str, message: str) -> dict[str, Any]:
    return {
        "group": group,
        "version": "v1alpha1" if group == "argoproj.io" else "v1",
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "status": "SyncFailed",
        "message": message,
        "syncPhase": "Sync",
    }
