"""The simulator's read-only renderer endpoints: an app's manifests at a revision, from the same repo server the
controller deploys with, and the clusters list with the cluster's version.

Shapes (argo-cd at 37ee0097, swagger's repositoryManifestResponse and v1alpha1ClusterList):
- GET /api/v1/applications/{name}/manifests?revision= | revisions=&sourcePositions=: the app's own spec with the
  revision put in its source (multi-source: sources[position-1], server/application/application.go:528-551),
  rendered; the answer holds only `manifests`, JSON strings (application.go:626-649); a position out of range is
  `source position is out of range` (application.go:533-534). A render error is the repo-server's text with gRPC
  code 2 (util/grpc/errors.go:94-99 keeps only the nested status's code and message) -> HTTP 500
  {"error","code","message"}, grpc-gateway v1.16's default error body (go.mod:71,332; swagger runtimeError). An
  unknown app: apimachinery errors.go:155 `applications.argoproj.io "<name>" not found`, code 5 -> 404.
- GET /api/v1/clusters: {metadata, items:[{server, name, info:{connectionState, serverVersion, cacheInfo,
  applicationsCount, apiVersions}, serverVersion, connectionState}]} (server/cluster/cluster.go:53-90,473-482);
  serverVersion is v<major>.<minor>.<patch> since Argo CD 3.4 (gitops-engine pkg/utils/kube/ctl.go:355-375).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import git
import yaml

from watcher.sim.controller import Controller
from watcher.sim.repo_server import Rendered, RenderError

IN_CLUSTER = "https://kubernetes.default.svc"
SERVER_VERSION = "v1.30.2"
UNKNOWN, NOT_FOUND = 2, 5


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": message, "code": code, "message": message}


def manifests(
    controller: Controller, name: str, revision: str, revisions: Sequence[str], positions: Sequence[str]
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of GET .../manifests for the app `name`."""
    with controller.lock:
        app = controller.apps.get(name)
        manifest = copy.deepcopy(app.manifest) if app is not None else None
    if manifest is None:
        return _error(404, NOT_FOUND, f'applications.argoproj.io "{name}" not found')
    spec = manifest["spec"]
    server = controller.repo_server
    if spec.get("sources"):
        sources = spec["sources"]
        for i, pos in enumerate(positions):
            p = int(pos)
            if p <= 0 or p > len(sources) or i >= len(revisions):
                return _error(500, UNKNOWN, "source position is out of range")
            sources[p - 1]["targetRevision"] = revisions[i]
        ours = [s for s in sources if s.get("repoURL") == controller.repo_url]
        target = str(ours[0].get("targetRevision", "")) if ours else ""
    else:
        if revision:
            spec["source"]["targetRevision"] = revision
        target = str(spec["source"].get("targetRevision", ""))
    with controller.lock:
        _fetch_unknown(server.git(), target)
        rev = server.resolve(target)
        if rev is None:
            return _error(500, UNKNOWN, f"unable to resolve '{target}' to a commit SHA")
        try:
            rendered = server.render(manifest, rev)
        except RenderError as exc:
            return _error(500, UNKNOWN, str(exc))
        objects = _objects(controller, manifest, rev, rendered)
    return 200, ({"manifests": [json.dumps(o, separators=(",", ":")) for o in objects]} if objects else {})


def _fetch_unknown(repo: git.Repo, target: str) -> None:
    """A commit pushed after the last poll: fetched, as Argo CD's repo server does for a revision it lacks."""
    if len(target) != 40:
        return
    try:
        repo.git.cat_file("-e", f"{target}^{{commit}}")
    except git.GitCommandError:
        repo.git.fetch("origin", "--prune", "--force")


def _objects(controller: Controller, manifest: dict[str, Any], rev: str, r: Rendered) -> list[dict[str, Any]]:
    """What the render stands for, as Kubernetes objects: the chart's Deployment (and ConfigMap), else the YAML
    documents of the app's directory."""
    name = str(manifest["metadata"]["name"])
    namespace = str((manifest["spec"].get("destination") or {}).get("namespace", ""))
    if not r.workload:
        source: dict[str, Any] = manifest["spec"].get("source") or next(iter(manifest["spec"].get("sources") or []), {})
        path = str(source.get("path", ""))
        docs: list[dict[str, Any]] = []
        for _, text in sorted(controller.repo_server.dir_files(rev, path).items()):
            docs += [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        return docs
    container: dict[str, Any] = {"name": name, "image": r.image}
    resources: dict[str, Any] = {}
    if r.memory is not None:
        resources["limits"] = {"memory": r.memory}
    if r.cpu is not None:
        resources["requests"] = {"cpu": r.cpu}
    if resources:
        container["resources"] = resources
    labels = {"app.kubernetes.io/instance": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": r.replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config", "namespace": namespace, "labels": labels},
        "data": {"fingerprint": r.config},
    }
    return [config, deployment]


def clusters(controller: Controller, server: str = "") -> dict[str, Any]:
    """GET /api/v1/clusters (the simulator has one cluster, in-cluster)."""
    state = {"status": "Successful", "message": "", "attemptedAt": "2026-01-01T00:00:00Z"}
    info = {
        "connectionState": state,
        "serverVersion": SERVER_VERSION,
        "cacheInfo": {"resourcesCount": 0, "apisCount": 0, "lastCacheSyncTime": "2026-01-01T00:00:00Z"},
        "applicationsCount": len(controller.names()),
        "apiVersions": ["v1", "apps/v1"],
    }
    item = {"server": IN_CLUSTER, "name": "in-cluster", "info": info, "serverVersion": SERVER_VERSION,
            "connectionState": state}  # fmt: skip
    items = [item] if server in ("", IN_CLUSTER) else []
    return {"metadata": {}, "items": items}
