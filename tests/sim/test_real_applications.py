"""Real Argo CD Applications (tests/fixtures/applications, see SOURCES.md there) against the CRD, the swagger,
the values Argo CD sets, and what the adapter and the repo mapping make of them."""

from __future__ import annotations

import copy
import functools
from datetime import datetime
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.real_applications import FIXTURES, NAMES, fixture
from tests.support.swagger import unknown_fields
from tests.support.tools import reference
from watcher.core.appmap import app_paths, mapping_fields
from watcher.core.branches import following
from watcher.core.snapshots import snapshot_from_app


def test_every_fixture_is_listed_in_sources() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text()
    assert NAMES and all(f"`{name}.json`" in sources for name in NAMES)


# -- the CRD ----------------------------------------------------------------------------------------
@functools.cache
def crd_validator() -> jsonschema.Draft4Validator:
    crd = yaml.safe_load(reference("argocd", "application-crd.yaml").read_text())
    schema = copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    _structural(schema)
    formats = jsonschema.FormatChecker()
    formats.checks("date-time", raises=ValueError)(_rfc3339)
    formats.checks("int64")(lambda v: not isinstance(v, int) or -(2**63) <= v < 2**63)
    return jsonschema.Draft4Validator(schema, format_checker=formats)


def _structural(node: Any) -> None:
    """What the API server does with a structural schema: fields it does not list are pruned (so a served
    object cannot have them), int-or-string takes either; the rest of `x-kubernetes-*` changes nothing here."""
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string"):
            node.setdefault("type", ["integer", "string"])
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _structural(value)
    elif isinstance(node, list):
        for value in node:
            _structural(value)


def _rfc3339(value: Any) -> bool:
    # jsonschema checks date-time only with rfc3339-validator installed; it is not, so check it here.
    return not isinstance(value, str) or bool(datetime.fromisoformat(value))


def test_crd_validator_rejects_a_misspelt_status_field_and_a_bad_time() -> None:
    app = copy.deepcopy(fixture("auto-sync-app-of-apps"))
    app["status"]["operationState"]["finishdAt"] = app["status"]["operationState"].pop("finishedAt")
    with pytest.raises(jsonschema.ValidationError):
        crd_validator().validate(app)
    app = copy.deepcopy(fixture("auto-sync-app-of-apps"))
    app["status"]["reconciledAt"] = "yesterday"
    with pytest.raises(jsonschema.ValidationError):
        crd_validator().validate(app)


@pytest.mark.parametrize("name", NAMES)
def test_fixture_validates_against_the_crd(name: str) -> None:
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in crd_validator().iter_errors(fixture(name))]
    assert errors == []


# -- the swagger --------------------------------------------------------------------------------------
# Fields real objects carry that swagger.json (generated from the gRPC types) does not describe:
# kubectl's apiVersion/kind (argocd-server drops them), managedFields' fieldsV1 (swagger: an object with one
# `Raw` string) and `syncStrategy.hook.force` (Go inlines SyncStrategyApply into SyncStrategyHook; swagger nests
# it under `syncStrategyApply`, so the simulator's strict swagger check would refuse the real shape).
def _swagger_blind_spot(path: str) -> bool:
    return (
        path in ("apiVersion", "kind")
        or path.startswith("metadata.managedFields[].fieldsV1.")
        or path.endswith("sync.syncStrategy.hook.force")
    )


@pytest.mark.parametrize("name", NAMES)
def test_fixture_fields_are_ones_the_swagger_defines(name: str) -> None:
    assert [p for p in unknown_fields(fixture(name)) if not _swagger_blind_spot(p)] == []


# The values Argo CD sets for the string fields swagger leaves free (it has no enums): Go constants in
# argoproj/argo-cd 37ee0097 (the commit of reference/argocd), gitops-engine/pkg/sync/common/types.go,
# gitops-engine/pkg/health/health.go and pkg/apis/application/v1alpha1/types.go.
SYNC_CODES = {"Synced", "OutOfSync", "Unknown"}
HEALTH_CODES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
OPERATION_PHASES = {"Running", "Terminating", "Failed", "Error", "Succeeded"}
SOURCE_TYPES = {"Helm", "Kustomize", "Directory", "Plugin"}
RESULT = "status.operationState.syncResult.resources[]."
ARGO_VALUES: dict[str, set[str]] = {
    "status.sync.status": SYNC_CODES,
    "status.health.status": HEALTH_CODES,
    "status.resources[].status": SYNC_CODES,
    "status.resources[].health.status": HEALTH_CODES,
    "status.operationState.phase": OPERATION_PHASES,
    RESULT + "status": {"Synced", "SyncFailed", "Pruned", "PruneSkipped"},
    RESULT + "hookPhase": OPERATION_PHASES,
    RESULT + "hookType": {"PreSync", "Sync", "PostSync", "Skip", "SyncFail"},
    RESULT + "syncPhase": {"PreSync", "Sync", "PostSync", "SyncFail"},
    "status.conditions[].type": {
        "DeletionError",
        "InvalidSpecError",
        "ComparisonError",
        "SyncError",
        "UnknownError",
        "SharedResourceWarning",
        "RepeatedResourceWarning",
        "ExcludedResourceWarning",
        "OrphanedResourceWarning",
    },
    "status.sourceType": SOURCE_TYPES,
    "status.sourceTypes[]": SOURCE_TYPES,
    "status.resourceHealthSource": {"appTree"},
}


def string_values(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(field path, value) for every string in `node`, paths written like field_paths'."""
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in string_values(v, f"{path}.{k}".lstrip("."))]
    if isinstance(node, list):
        return [pair for v in node for pair in string_values(v, f"{path}[]")]
    return [(path, node)] if isinstance(node, str) else []


@pytest.mark.parametrize("name", NAMES)
def test_fixture_status_values_are_ones_argo_cd_sets(name: str) -> None:
    odd = [(p, v) for p, v in string_values(fixture(name)) if p in ARGO_VALUES and v not in ARGO_VALUES[p]]
    assert odd == []


# -- what the adapter and the mapping make of them -------------------------------------------------------
def facts(name: str, watched_repo: str, branch: str) -> dict[str, Any]:
    app = fixture(name)
    snap = snapshot_from_app(app, complete=True, watched_repo=watched_repo)
    return {
        "sync_status": snap.sync_status and snap.sync_status.value,
        "health": snap.health and snap.health.value,
        "phase": snap.phase and snap.phase.value,
        "sync_revision": snap.sync_revision,
        "operation_revision": snap.operation_revision,
        "history_revisions": snap.history_revisions,
        "initiated_by": snap.initiated_by,
        "auto_sync": snap.auto_sync,
        "retry_count": snap.retry_count,
        "conditions": tuple(c.type for c in snap.conditions),
        "degraded_resources": snap.degraded_resources,
        "changed_resources": snap.changed_resources,
        # the production path: revert_facts reads branches.following from the stored mapping fields (the
        # remote not asked: a name that is not the watched branch is a pin)
        "pinned": following(mapping_fields(app), watched_repo, (branch,)).pinned,
        "paths": app_paths(app, watched_repo),
    }


# Per case: the fixture, the repo and branch a watcher of it would watch, and what a platform engineer reads
# off the object. A chart-only app's "watched repo" is the GitOps repo its Application would live in: the
# chart comes from a Helm repository, so no path of the watched repo can change it.
CASES: dict[str, dict[str, Any]] = {
    "auto-sync-app-of-apps": {
        "watch": ("https://github.com/larntz/argocd-dev.git", "main"),
        "sync_status": "Synced",
        "health": "Healthy",
        "phase": "Succeeded",
        "sync_revision": "4512623916d78eb8c04de558e6f5a913153cce9a",
        "operation_revision": "4512623916d78eb8c04de558e6f5a913153cce9a",
        "history_revisions": ("4512623916d78eb8c04de558e6f5a913153cce9a",),
        "initiated_by": "automated",
        "auto_sync": True,
        "retry_count": 0,
        "conditions": (),
        "degraded_resources": (),
        "changed_resources": tuple(
            f"Application/argocd/{a}" for a in ("prometheus", "apps", "webapp", "argocd", "traefik")
        ),
        "pinned": None,
        "paths": ("kind/apps",),
    },
    "sync-failed-helm-path-stream": {
        "watch": ("https://gitlab.com/devtron-prod-gitops/bluecopa-dcd-gitsensor.git", "master"),
        "sync_status": "OutOfSync",
        "health": "Healthy",
        "phase": "Failed",
        "sync_revision": "d4482964ef6179da5bcd8e2ce6db58411e312e94",
        "operation_revision": "d4482964ef6179da5bcd8e2ce6db58411e312e94",
        "history_revisions": (),  # the stream frame carried no history
        "initiated_by": "admin",
        "auto_sync": True,
        "retry_count": 1,
        "conditions": ("SyncError",),
        "degraded_resources": (),
        "changed_resources": (),  # the only result is the ServiceMonitor that failed
        "pinned": None,
        "paths": ("bluecopa-dcd-gitsensor-bcopa-dcd", "bluecopa-dcd-gitsensor-bcopa-dcd/values.yaml"),
    },
    "helm-chart-sync-failed-retried": {
        "watch": ("https://github.com/pluhin/sa.it-academy.by", "main"),
        "sync_status": "OutOfSync",
        "health": "Healthy",
        "phase": "Failed",
        "sync_revision": "0.1.0",  # a Helm repository's revision is the chart version
        "operation_revision": "0.1.0",
        "history_revisions": (),
        "initiated_by": "automated",
        "auto_sync": True,
        "retry_count": 5,
        "conditions": ("SyncError",),
        "degraded_resources": (),  # the ServiceAccount that failed is Missing, not Degraded
        "changed_resources": ("Deployment/jenkins-helm/jenkins-helm",),
        "pinned": None,
        "paths": (),
    },
    "helm-chart-version-history": {
        "watch": ("https://github.com/pluhin/sa.it-academy.by", "main"),
        "sync_status": "Synced",
        "health": "Healthy",
        "phase": "Succeeded",
        "sync_revision": "0.11.0",
        "operation_revision": "0.11.0",
        "history_revisions": ("0.9.0", "0.9.0", "0.10.0", "0.10.0", "0.11.0"),
        "initiated_by": "automated",
        "auto_sync": True,
        "retry_count": 0,
        "conditions": (),
        "degraded_resources": (),
        "changed_resources": ("Deployment/ci-cd/jenkins", "Ingress/ci-cd/ingress-jenkins"),
        "pinned": None,
        "paths": (),
    },
    "comparison-error-path-missing": {
        "watch": ("https://github.com/noam-codefresh/git-source.git", "main"),
        "sync_status": "Unknown",
        "health": "Healthy",
        "phase": "Succeeded",  # the last operation, before the path went missing
        "sync_revision": None,  # nothing could be compared, so no revision
        "operation_revision": "a656a333006bb50b480d00c42370bbbd1f45555d",
        "history_revisions": ("50240d9d473c490f6b1263c3c50f6369a446dce1", "a656a333006bb50b480d00c42370bbbd1f45555d"),
        "initiated_by": "admin",
        "auto_sync": True,
        "retry_count": 0,
        "conditions": ("ComparisonError",),
        "degraded_resources": (),
        "changed_resources": (),  # every result says "unchanged"
        "pinned": None,
        "paths": ("git-source-2",),
    },
    "sync-running-waiting-healthy": {
        "watch": ("https://github.com/BlurryToast/media-construct.git", "main"),
        "sync_status": "OutOfSync",
        "health": "Missing",
        "phase": "Running",
        "sync_revision": "6342d89e6bc526800cb4be2845437e756440eb96",  # git moved on while the sync waits
        "operation_revision": "2444b147fcda72dbc040a631f2e7b095a5197480",
        "history_revisions": (),
        "initiated_by": "automated",
        "auto_sync": True,
        "retry_count": 0,
        "conditions": (),
        "degraded_resources": (),
        "changed_resources": ("Service/media/radarr-svc", "Ingress/media/radarr-ingress"),
        "pinned": None,
        "paths": ("argocd/radarr",),
    },
    "manual-sync-requested": {
        "watch": ("https://github.com/backstage/backstage20220408139.git", "main"),
        "sync_status": "Synced",
        "health": "Healthy",
        "phase": None,  # requested (top-level `operation`), not started: no operationState yet
        "sync_revision": "38554e11dbe1d68790c9f0567eaf31dedd4c3638",
        "operation_revision": None,
        "history_revisions": ("38554e11dbe1d68790c9f0567eaf31dedd4c3638",) * 2,
        "initiated_by": "",
        "auto_sync": True,
        "retry_count": 0,
        "conditions": (),
        "degraded_resources": (),
        "changed_resources": None,
        "pinned": None,
        "paths": ("k8s/nonprod",),
    },
    "manual-sync-plugin-branch": {
        "watch": ("https://github.com/foo/manifests-velero.git", "main"),
        "sync_status": "Synced",
        "health": "Healthy",
        "phase": "Succeeded",
        "sync_revision": "rev1",  # as the fixture's authors left it (SOURCES.md)
        "operation_revision": "ea8759964626a583667a2bfd08f334ec2070040a",
        "history_revisions": ("ea8759964626a583667a2bfd08f334ec2070040a",) * 10,
        "initiated_by": "foo@example.com",
        "auto_sync": False,
        "retry_count": 0,
        "conditions": (),
        "degraded_resources": (),
        "changed_resources": ("Service/test-lla/test-lla", "Deployment/test-lla/test-lla"),
        "pinned": "test-lla",  # deploys another branch than the watched one
        "paths": ("instances/test",),
    },
    "manual-sync-appset-child-branch": {
        "watch": ("https://github.com/abryson-redhat/argocd-demo.git", "main"),
        "sync_status": "Synced",
        "health": "Healthy",
        "phase": "Succeeded",
        "sync_revision": "72de7430c679cd7e781ccc2eeee029b90cb2eda6",
        "operation_revision": "4c59f8af1b70f5a02417b6c85209e28a6d792222",
        "history_revisions": ("4c59f8af1b70f5a02417b6c85209e28a6d792222",),
        "initiated_by": "admin",
        "auto_sync": False,
        "retry_count": 0,
        "conditions": (),
        "degraded_resources": (),
        "changed_resources": tuple(
            f"{kind}/appteam1-demo-dev/springboot-demo" for kind in ("ServiceAccount", "Service", "Deployment", "Route")
        ),
        "pinned": "helm",
        "paths": (
            "gitops/manifests/busunit1/integration/teams/appteam1/apps/springboot-demo",
            "gitops/manifests/busunit1/integration/teams/appteam1/apps/springboot-demo/configs/dev/values.yaml",
        ),
    },
}
# The multi-source app, watched from either of its repos: spec.sources[i] and status.sync.revisions[i] (likewise
# syncResult.revisions, operation.sync.revisions, history[].revisions) line up, so the revision of the watched
# repo is the one at the index of its source. Sources 0-1 are cfrepo02 (branch dev), 2-3 cfrepo01 (main).
CURRENT_01, CURRENT_02 = "CURRENT_REPO_01_000000000000000000000000", "CURRENT_REPO_02_000000000000000000000000"
MULTI_SOURCE = {
    "sync_status": "Synced",
    "health": "Healthy",
    "phase": "Succeeded",
    "initiated_by": "automated",
    "auto_sync": True,
    "retry_count": 0,
    "conditions": (),
    "degraded_resources": (),
    "changed_resources": tuple(f"ConfigMap/demo-ms-a/config-cm-ms{n}" for n in ("02a", "02b", "01b", "01a")),
}
CASES["multi-source-placeholder-revisions@cfrepo01"] = MULTI_SOURCE | {
    "watch": ("https://github.com/dudinea/cfrepo01.git", "main"),
    "sync_revision": CURRENT_01,
    "operation_revision": CURRENT_01,
    "history_revisions": ("HISTORY-1_REPO01_00000000000000000000000", CURRENT_01, CURRENT_01),
    "pinned": None,
    "paths": ("demo-applications/try-ms01a", "demo-applications/try-ms01b"),
}
CASES["multi-source-placeholder-revisions@cfrepo02"] = MULTI_SOURCE | {
    "watch": ("https://github.com/dudinea/cfrepo02.git", "main"),
    "sync_revision": CURRENT_02,
    "operation_revision": CURRENT_02,
    "history_revisions": (
        "HISTORY-2_REPO02_00000000000000000000000",
        "HISTORY-1_REPO02_00000000000000000000000",
        "HISTORY-1_REPO02_00000000000000000000000",
    ),
    "pinned": "dev",
    "paths": ("demo-applications/try-ms02a", "demo-applications/try-ms02b"),
}

# Assertions today's code gets wrong, with why (strict xfails: they fail once fixed, so the list stays true).
WRONG_TODAY: dict[tuple[str, str], str] = {}


def expectations() -> list[Any]:
    params = []
    for case, expected in CASES.items():
        for field, value in expected.items():
            if field == "watch":
                continue
            reason = WRONG_TODAY.get((case, field))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(case, field, value, id=f"{case}-{field}", marks=marks))
    return params


@pytest.mark.parametrize(("case", "field", "expected"), expectations())
def test_what_the_watcher_reads_off_a_real_application(case: str, field: str, expected: Any) -> None:
    repo, branch = CASES[case]["watch"]
    assert facts(case.split("@")[0], repo, branch)[field] == expected


def test_every_fixture_has_a_case() -> None:
    assert {case.split("@")[0] for case in CASES} == set(NAMES)
