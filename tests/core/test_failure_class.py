"""Failure classes, pure: each row is a message shape Argo CD (or the API server through it) writes, with where it
comes from (Argo CD at 37ee0097, gitops-engine inside it, apimachinery/apiserver) or the issue it was captured in."""

from __future__ import annotations

import pytest

from watcher.core.failure_class import FailureClass, ObjectRef, classify, classify_message, strip
from watcher.domain import Condition, ResourceResult

C, K, U = FailureClass.CONTENT, FailureClass.CLUSTER, FailureClass.UNKNOWN
KYVERNO_DOWN = (
    'Internal error occurred: failed calling webhook "validate.kyverno.svc-fail": failed to call webhook: Post '
    '"https://kyverno-svc.kyverno.svc:443/validate/fail?timeout=10s": context deadline exceeded'
)

ROWS = [
    # (message, class, row, source)
    (
        f"one or more objects failed to apply, reason: {KYVERNO_DOWN} (retried 5 times).",
        K,
        "C20",
        "sync_context.go:709 + apiserver pkg/util/webhook/error.go:34-39; deployKF/deployKF#174",
    ),
    (
        'one or more objects failed to apply, reason: error when replacing "/dev/shm/2766407957": Internal error '
        'occurred: failed calling webhook "validate-policy.kyverno.svc": failed to call webhook: Post '
        '"https://kyverno-svc.kyverno.svc:443/validate?timeout=10s": service "kyverno-svc" not found',
        K,
        "C20",
        "deployKF/deployKF#174 (captured)",
    ),
    (
        # The trap: a webhook whose path 404s carries the missing-kind words Argo CD rewrites (util/argo/argo.go:45).
        'Internal error occurred: failed calling webhook "v.ingress": failed to call webhook: the server could not '
        "find the requested resource",
        K,
        "C20",
        "apiserver webhook error.go:34-39 before apimachinery errors.go:450",
    ),
    (
        'admission webhook "validate.nginx.ingress.kubernetes.io" does not support dry run',
        K,
        "C21",
        "apiserver pkg/admission/plugin/webhook/errors/statuserror.go:61",
    ),
    (
        'admission webhook "validate.kyverno.svc-fail" denied the request: policy Deployment/plate-prod/plate-llm '
        "for resource violation: require-requests-limits: validate-resources: CPU and memory limits are required",
        C,
        "C19",
        "apiserver statuserror.go:29-51; kyverno/kyverno#2869 shape",
    ),
    (
        'admission webhook "gatekeeper" denied the request: unable to reach the data source: dial tcp 10.0.0.4:443: '
        "i/o timeout",
        U,
        "C19n",
        "research §3.5(a): a denial whose cause is a network failure",
    ),
    (
        "one or more objects failed to apply, reason: error validating data: failed to check CRD: failed to list "
        "CRDs: the server was unable to return a response in the time allotted, but may still be processing the "
        "request (retried 5 times).",
        K,
        "C8",
        "rht-labs/tech-exercise#296 (captured); before C7's schema errors",
    ),
    (
        "error validating data: ValidationError(CronJob.spec.jobTemplate.spec.template.spec.volumes[6].projected."
        'sources[0]): unknown field "name" in io.k8s.api.core.v1.VolumeProjection',
        C,
        "C6",
        "argoproj/argo-cd#4486 (captured; kubectl validation)",
    ),
    (
        "the server is currently unable to handle the request (put deployments.apps plate-api-stg)",
        K,
        "C22",
        "apimachinery pkg/api/errors/errors.go:481,494-499",
    ),
    (
        'Failed to load live state: failed to get cluster info for "https://kubernetes.default.svc/": error '
        "synchronizing cache state : error getting openapi resources: the server is currently unable to handle "
        "the request",
        K,
        "C22",
        "argoproj/argo-cd#17368 (captured)",
    ),
    (
        "Timeout: request did not complete within requested timeout - context deadline exceeded",
        K,
        "C23",
        "apimachinery errors.go:406",
    ),
    ("Internal error occurred: etcdserver: request timed out", K, "C26", "etcd through the API server"),
    (
        'services is forbidden: User "system:serviceaccount:openshift-gitops:openshift-gitops-argocd-application-'
        'controller" cannot create resource "services" in API group "" in the namespace "tekton-pipelines"',
        K,
        "C17",
        "redhat-appstudio/infra-deployments#157 (captured); apiserver responsewriters/errors.go:76",
    ),
    (
        "rpc error: code = PermissionDenied desc = permission denied: applications, create,",
        K,
        "D5",
        "util/rbac/rbac.go:351-353; argoproj/argo-cd#3887",
    ),
    (
        "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unavailable "
        'desc = connection error: desc = "transport: Error while dialing dial tcp 172.20.86.254:8081: i/o timeout"',
        K,
        "B13",
        "argoproj/argocd-example-apps#152 (captured): the repo server is unreachable",
    ),
    (
        "ComparisonError rpc error: code = DeadlineExceeded desc = context deadline exceeded",
        K,
        "B14",
        "argoproj/argo-cd#3864 (captured)",
    ),
    (
        "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown "
        "desc = failed to list refs: authentication required: Invalid username or token",
        K,
        "B11",
        "reposerver/repository/repository.go:3048 (git fetch); argoproj/argo-cd#13023",
    ),
    (
        "`kustomize build .` failed exit status 1: Error: accumulating resources: accumulation err='accumulating "
        "resources from 'https://github.com/myorg/base?ref=v0.3.5'': git cmd = '/usr/bin/git fetch --depth=1 "
        "origin v0.3.5': exit status 128",
        K,
        "B11",
        "argoproj/argo-cd#11318 (captured): a remote base git cannot fetch",
    ),
    (
        'pods "plate-api-7d9f-x" is forbidden: exceeded quota: plate-prod-compute, requested: requests.cpu=250m, '
        "used: requests.cpu=7900m, limited: requests.cpu=8",
        K,
        "C14",
        "apiserver resourcequota/controller.go:621-626: full by others",
    ),
    (
        'pods "plate-api-7d9f-x" is forbidden: exceeded quota: plate-prod-compute, requested: requests.cpu=10, '
        "used: requests.cpu=3, limited: requests.cpu=8",
        C,
        "C14",
        "apiserver resourcequota/controller.go:621-626: the object alone asks for more than the quota",
    ),
    (
        "resource :Namespace is not permitted in project foo",
        C,
        "D1",
        "controller/sync.go:760-761; argoproj/argo-cd#22869",
    ),
    ("namespace akv2k8s is not permitted in project 'argocd'", C, "D2", "controller/sync.go:769-770"),
    (
        'one or more objects failed to apply, reason: StatefulSet.apps "postgresql" is invalid: spec: Forbidden: '
        "updates to statefulset spec for fields other than 'replicas' are forbidden (retried 5 times).",
        C,
        "C1",
        "argoproj/argo-cd#20899 (captured); apimachinery errors.go:307-309",
    ),
    (
        'The Service "ingress-nginx-controller" is invalid: spec.clusterIP: Invalid value: "": field is immutable',
        C,
        "C2",
        "argoproj/argo-cd#2150 (captured)",
    ),
    (
        'strict decoding error: unknown field "spec.template.spec.containers[0].env[21].configMapKeyRef"',
        C,
        "C6",
        "argoproj/argo-cd#20114 (captured)",
    ),
    (
        "failed to create typed patch object (plate-prod/plate-api; apps/v1, Kind=Deployment): .spec.template.spec."
        'containers[name="plate-api"].env: duplicate entries for key [name="LOG_LEVEL"]',
        C,
        "SSA",
        "structured-merge-diff through sync_context.go:1477 (ServerSideApply=true)",
    ),
    (
        'no matches for kind "ServiceMonitor" in version "monitoring.coreos.com/v1"',
        C,
        "C11",
        "apimachinery pkg/api/meta/errors.go:114-118",
    ),
    (
        "The Kubernetes API could not find monitoring.coreos.com/ServiceMonitor for requested resource plate-stg/"
        'plate-api. Make sure the "ServiceMonitor" CRD is installed on the destination cluster.',
        C,
        "C9",
        "util/argo/argo.go:45-54",
    ),
    ('namespaces "plate-models" not found', C, "C12", "apiserver namespace/lifecycle/admission.go:162-165"),
    (
        "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc "
        "= Manifest generation error (cached): `helm template . --name-template pixelfed --include-crds` failed "
        'exit status 1: Error: template: pixelfed/templates/deployment.yaml:199:31: executing "pixelfed/templates/'
        'deployment.yaml" at <.Values.x.ports>: nil pointer evaluating interface {}.ports',
        C,
        "B1",
        "open-engineering-nl/pixelfed-chart#11 (captured); util/exec/exec.go:111-117",
    ),
    (
        "rpc error: code = Unknown desc = Failed to unmarshal manifest: error converting YAML to JSON: yaml: line "
        "19: could not find expected ':'",
        C,
        "B7",
        "VictoriaMetrics/VictoriaMetrics#196 (captured)",
    ),
    (
        "rpc error: code = Unknown desc = `kustomize build .components/image-controller/development` failed exit "
        "status 1: Error: accumulating resources: invalid Kustomization: json: cannot unmarshal string",
        C,
        "B4",
        "redhat-appstudio/infra-deployments#2052 (captured)",
    ),
    ("Sync operation blocked by sync window", U, "D8", "controller/sync.go:191-199"),
    (
        "rpc error: code = FailedPrecondition desc = another operation is already in progress",
        U,
        "D9",
        "util/argo/argo.go:41",
    ),
    (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas',
        U,
        "C28",
        "apiserver managedfields/internal/conflict.go:47",
    ),
    (
        'Operation cannot be fulfilled on horizontalpodautoscalers.autoscaling "plate-api": the object has been '
        "modified; please apply your changes to the latest version and try again",
        K,
        "C27",
        "apimachinery errors.go:242",
    ),
    ("one or more objects failed to apply (dry run)", U, "", "sync_context.go:553: no reason in the message"),
    ("operation is terminating due to timeout", U, "A8", "appcontroller.go:1604"),
    (  # gitops-engine's Terminate (sync_context.go:762), then the controller's cause and retry count
        "Operation terminated, triggered by controller sync timeout (retried 2 times).",
        U,
        "A8",
        "appcontroller.go:1692-1696",
    ),
    ("Job has reached the specified backoff limit", U, "", "gitops-engine pkg/health/health_job.go:41"),
]


@pytest.mark.parametrize(
    ("message", "cls", "row", "source"), ROWS, ids=[f"{r[2] or 'none'}-{i}" for i, r in enumerate(ROWS)]
)
def test_each_message_shape_is_classed_by_its_row(message: str, cls: FailureClass, row: str, source: str) -> None:
    verdict = classify_message(message)
    assert (verdict.cls, verdict.row) == (cls, row), source


@pytest.mark.parametrize(
    ("message", "inner"),
    [
        (
            'one or more objects failed to apply, reason: Deployment.apps "a" is invalid: x. Retrying attempt #2 '
            "at 10:02AM.",
            'Deployment.apps "a" is invalid: x',
        ),
        (
            "Failed last sync attempt to [abc]: one or more objects failed to apply, reason: boom (retried 5 times).",
            "boom",
        ),
        (
            "ComparisonError: Failed to load target state: failed to generate manifest for source 1 of 2: rpc error: "
            "code = Unknown desc = Manifest generation error (cached): oops",
            "oops",
        ),
    ],
)
def test_envelopes_and_retry_suffixes_are_stripped(message: str, inner: str) -> None:
    assert strip(message) == inner


def test_the_webhook_cause_names_the_webhook_and_no_commit() -> None:
    failure = classify(f"one or more objects failed to apply, reason: {KYVERNO_DOWN}")
    assert failure.cls is K
    assert failure.cause.startswith("the admission webhook validate.kyverno.svc-fail is unreachable")
    assert failure.cause.endswith("no commit is at fault")


def test_resource_results_come_before_the_operation_message_and_name_the_object() -> None:
    """The operation message joins reasons with bare commas (sync_context.go:926-935): each result is classed."""
    results = (
        ResourceResult("Deployment", "plate-api", "plate-prod", "apps", KYVERNO_DOWN),
        ResourceResult(
            "Service", "plate-api", "plate-prod", "", 'Service "plate-api" is invalid: x: field is immutable'
        ),
    )
    failure = classify("one or more objects failed to apply, reason: …", (), results)
    assert failure.cls is K  # a cluster fault can hide content errors behind it
    assert failure.objects == (
        ObjectRef("Deployment", "plate-api", "plate-prod"),
        ObjectRef("Service", "plate-api", "plate-prod"),
    )
    content = classify("", (), results[1:])
    assert (content.cls, content.verdicts[0].row) == (C, "C2")


def test_a_render_failure_is_classed_from_the_comparison_error_condition() -> None:
    conditions = (
        Condition(
            "ComparisonError",
            "Failed to load target state: failed to generate manifest for source 1 of 1: "
            "rpc error: code = Unknown desc = failed to list refs: authentication required",
        ),
    )
    assert classify("", conditions).cls is K
    assert classify("", ()).cls is U  # nothing said: unknown, never content


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            'Deployment.apps "plate-api" is invalid: spec.replicas: Invalid value: -1',
            ObjectRef("Deployment", "plate-api"),
        ),
        (
            'services "plate-api" is forbidden: exceeded quota: q, requested: a=1, used: a=1, limited: a=1',
            ObjectRef("services", "plate-api"),
        ),
        (
            "The Kubernetes API could not find monitoring.coreos.com/ServiceMonitor for requested resource plate-stg/"
            'plate-api. Make sure the "ServiceMonitor" CRD is installed on the destination cluster.',
            ObjectRef("ServiceMonitor", "plate-api", "plate-stg"),
        ),
    ],
)
def test_the_object_a_message_names(text: str, named: ObjectRef) -> None:
    assert classify_message(text).object == named
    assert named.same("Service" if named.kind == "services" else named.kind, named.name)
