"""Argo CD's renderer, read-only: an app's manifests at a revision, and the version of the cluster it deploys to.

GET /api/v1/applications/{name}/manifests renders exactly the revision asked for with Argo CD's repo-server
(argo-cd server/application/application.go:490-650): RBAC `applications, get` only, no refresh, no sync, no
status written. The reply holds only `manifests`, each a JSON string (application.go:626-649). A render error
comes back as the repo-server's gRPC status, code and message only (util/grpc/errors.go:94-99): code 2 (Unknown)
-> HTTP 500, body `{"error", "code", "message"}` (swagger runtimeError). It is asked once and never retried here:
the repo-server caches an app's manifest-generation error after 3 failures, for an hour
(reposerver/repository/repository.go:1042-1133), and a retry loop would only make that happen.
"""

from __future__ import annotations

import json
from typing import Any

from watcher.adapters.argocd import Answer, ArgoCDClient, ArgoCDError
from watcher.core.preflight import Render

UNKNOWN = 2  # gRPC codes.Unknown: what the repo-server's render errors carry
NOT_FOUND = 5  # a glob that matches no file (repository.go:726-731), or the app itself
CLUSTERS = "/api/v1/clusters"


class ArgoCDRenders:
    """ports.Renderer over the watcher's Argo CD client (its token, TLS and deadline)."""

    def __init__(self, client: ArgoCDClient):
        self.client = client
        self.calls = 0  # requests made: what bench/preflight.py counts per judged commit

    def manifests(self, name: str, namespace: str, revision: str, position: int) -> Render:
        """The app rendered at `revision`; `position` (1-based) names the watched repo's source. Both spellings go:
        a single-source app reads `revision`, a multi-source app `revisions` by `sourcePositions`
        (application.go:528-551), each ignoring the other's."""
        params: dict[str, Any] = {"appNamespace": namespace} if namespace else {}
        params |= {"revision": revision, "revisions": [revision], "sourcePositions": [str(position)]}
        self.calls += 1
        try:
            r = self.client.answer("GET", f"/api/v1/applications/{name}/manifests", params)
        except ArgoCDError as exc:
            return Render(unreachable=str(exc))
        return render_of(r, name)

    def cluster_version(self, server: str) -> str | None:
        """`info.serverVersion` of the cluster at `server` (v1.30.2 since Argo CD 3.4, 1.30 before:
        gitops-engine pkg/utils/kube/ctl.go:355-375); None when Argo CD does not say (RBAC `clusters, get`)."""
        self.calls += 1
        try:
            r = self.client.answer("GET", CLUSTERS, {"server": server} if server else None)
        except ArgoCDError:
            return None
        body = _json(r)
        if r.status != 200 or not isinstance(body, dict):
            return None
        for item in body.get("items") or []:
            if isinstance(item, dict) and (not server or item.get("server") == server):
                version = (item.get("info") or {}).get("serverVersion") or item.get("serverVersion")
                return str(version) if version else None
        return None


def render_of(r: Answer, name: str) -> Render:
    """One answer of the manifests endpoint -> a Render: the manifests, Argo CD's render error, or unreachable."""
    body = _json(r)
    if r.status == 200:
        if not isinstance(body, dict) or not isinstance(body.get("manifests", []), list):
            return Render(unreachable=f"manifests of {name}: the answer is not the spec's ManifestResponse")
        try:
            objects = tuple(json.loads(m) for m in body.get("manifests") or [])
        except (TypeError, json.JSONDecodeError):
            return Render(unreachable=f"manifests of {name}: an entry is not a JSON object")
        return Render(manifests=tuple(o for o in objects if isinstance(o, dict)))
    message = str(body.get("message") or body.get("error") or "") if isinstance(body, dict) else ""
    code = body.get("code") if isinstance(body, dict) else None
    app_missing = f'"{name}" not found' in message
    if (r.status == 500 and code == UNKNOWN) or (r.status == 404 and code == NOT_FOUND and not app_missing):
        return Render(error=message or f"HTTP {r.status}")
    if r.status in (401, 403):
        return Render(unreachable=f"HTTP {r.status}: the watcher's account needs RBAC `applications, get`")
    return Render(unreachable=f"HTTP {r.status}: {message[:200]}" if message else f"HTTP {r.status}")


def _json(r: Answer) -> Any:
    try:
        return json.loads(r.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
