"""The simulated API server's refusals of a sync that are not about one field of the app's Deployment: an admission
webhook that cannot be called or that denies, an API server that is unavailable, `kubectl replace` of the app's
Service (Replace=true), and the Application CRD's schema for the children of the app-of-apps.

Each is what Argo CD then shows: the operation's message (gitops-engine/pkg/sync/sync_context.go:709,716 with
executeSyncFailPhase :926-935 joining the failed tasks' messages with "," after `one or more objects failed to
apply, reason: `, :932) and the failed `syncResult.resources[]` entries with the object and its own message
(sync_context.go:1786-1826). Real entries also carry `hookPhase: Failed` (operationPhases, :1610-1615, set at
:1771-1777); the simulator leaves it out (tests/sim/test_sim_contract.py SIM_LACKS lists it).

The texts inside are the Kubernetes API server's (k8s.io/apimachinery @ eed236ce, k8s.io/apiserver @ 24a394e51,
mirrored beside argo-cd; /work/research/failure_messages.md section 1.4 has the table), and for Kyverno's and
kubectl's parts the captured messages of the issues named below.
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
        # apimachinery pkg/api/errors/errors.go:479-481 (503) with the verb lowercased, the resource and the name in
        # parentheses (:495-496). The verb is the simulator's choice: a client-side `kubectl apply` of an existing
        # object GETs then PATCHes, so a real one may read `(get ...)` or `(patch ...)`; the watcher reads the class.
        text = f"the server is currently unable to handle the request (put deployments.apps {name})"
        return _deployment_refused(namespace, name, text)
    if admission.webhook_unreachable:
        # apiserver pkg/admission/plugin/webhook/validating/dispatcher.go:311 wraps the call's error as
        # `failed to call webhook: %w`, pkg/util/webhook/error.go:36 prefixes `failed calling webhook "<name>": `,
        # and a fail-closed webhook turns it into apimachinery errors.go:395 `Internal error occurred: ` (dispatcher.go
        # :217-218). The call's own error is net/http's `Post "<url>": context deadline exceeded`; the URL carries the
        # webhook's timeout as `?timeout=10s` (dispatcher.go:277-295; 10 s is admissionregistration's default
        # timeoutSeconds, in k8s.io/api, not mirrored).
        # Kyverno's webhook name, Service and path, in this very form: captured in kyverno/kyverno#8190 (Kyverno 1.8,
        # Kubernetes 1.25); kyverno/kyverno#2869 has an older one (no `failed to call webhook: `, path /validate).
        host = "kyverno-svc.kyverno.svc:443"
        text = (
            f'Internal error occurred: failed calling webhook "{admission.webhook}": failed to call webhook: Post '
            f'"https://{host}/validate/fail?timeout=10s": context deadline exceeded'
        )
        return _deployment_refused(namespace, name, text)
    if admission.webhook_denies:
        # apiserver pkg/admission/plugin/webhook/errors/statuserror.go:29,47 (`: <message>`; :51 without one).
        text = f'admission webhook "{admission.webhook}" denied the request: {admission.webhook_denies}'
        return _deployment_refused(namespace, name, text)
    if admission.require_limits and desired.memory is None:
        # Kyverno's require-requests-limits policy in the older Kyverno wording `policy <Kind>/<ns>/<name> for
        # resource violation: ` (no captured object found for it; kyverno/kyverno#2869, once cited here, is about an
        # unreachable webhook). Newer Kyverno writes `resource <Kind>/<ns>/<name> was blocked due to the following
        # policies` (tests/fixtures/scenarios/evidence.yaml webhook-denied-limits-removed). Either way the text after
        # `denied the request: ` is the webhook's own (statuserror.go:47).
        text = (
            f'admission webhook "{admission.webhook}" denied the request: policy Deployment/{namespace}/{name} for '
            "resource violation: require-requests-limits: validate-resources: validation error: CPU and memory "
            "resource requests and limits are required. rule validate-resources failed at path "
            "/spec/template/spec/containers/0/resources/limits/memory/"
        )
        return _deployment_refused(namespace, name, text)
    if "Replace=true" in sync_options:
        # Replace=true runs `kubectl replace` (sync_context.go:1434,1452-1467; gitops-engine pkg/utils/kube/
        # resource_ops.go:302-315) on every object, the app's Service too, from a temp file in /dev/shm
        # (resource_ops.go:163, gitops-engine pkg/utils/io/io.go:11-13) whose `error when replacing "<file>": ` prefix
        # kubectl adds and Argo CD keeps (gitops-engine pkg/utils/kube/kube.go:222-240 strips only `error when
        # creating`). A Service replaced without the clusterIP the API server assigned it is refused: apimachinery
        # errors.go:309 (`<Kind> "<name>" is invalid: `), field/errors.go:105-106,131,155-156 for the cause, detail
        # pkg/api/validation/objectmeta.go:37 `field is immutable` (captured: kubernetes/kubectl#798, argo-cd#2150).
        text = (
            f'error when replacing "/dev/shm/{zlib.crc32(name.encode())}": Service "{name}" is invalid: '
            'spec.clusterIP: Invalid value: "": field is immutable'
        )
        return _refused([result_entry("", "Service", namespace, name, "SyncFailed", text)])
    return None


def _invalid_children(children: Sequence[dict[str, Any]]) -> Refusal | None:
    """The Application CRD's structural schema (reference/argocd/application-crd.yaml: retry.backoff.duration is
    `type: string`) refusing a child Application of the app-of-apps, in the API server's words for a type mismatch:
    apimachinery errors.go:309 `<Kind>.<group> "<name>" is invalid: <causes>`, each cause a field.TypeInvalid
    (field/errors.go:257-263) written `<path>: Invalid value: "<type>": <detail>` (:105-106, :131, :155-156,
    :247-248); the detail `<path> in body must be of type string: "<type>"` is kube-openapi's (not mirrored;
    captured, /work/research/scenarios.yaml app-of-apps-root-invalid-child)."""
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
        namespace = str(child["metadata"].get("namespace") or "argocd")
        failed.append(result_entry("argoproj.io", "Application", namespace, name, "SyncFailed", text))
    return _refused(failed) if failed else None


def invalid_child(child: dict[str, Any]) -> bool:
    """The API server would refuse this child Application: Argo CD never creates it."""
    return _invalid_children([child]) is not None


def _refused(results: list[dict[str, Any]]) -> Refusal:
    return Refusal(APPLY_FAILED + ",".join(r["message"] for r in results), results)


def _deployment_refused(namespace: str, name: str, text: str) -> Refusal:
    return _refused([result_entry("apps", "Deployment", namespace, name, "SyncFailed", text)])


def result_entry(group: str, kind: str, namespace: str, name: str, status: str, message: str) -> dict[str, Any]:
    """One `syncResult.resources[]` entry of the Sync phase (sync_context.go:1798-1807; hookPhase left out)."""
    return {
        "group": group,
        "version": "v1alpha1" if group == "argoproj.io" else "v1",
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "status": status,
        "message": message,
        "syncPhase": "Sync",
    }
