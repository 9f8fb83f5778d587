"""A simulated Helm chart repository, for multi-source Applications (`spec.sources`, Argo CD >= 2.6).

The common shape in production: the chart comes from a Helm repository at a chart version (its
`targetRevision`), the values from the GitOps repo through a `ref` source (`$values/...`). Argo CD reports a
chart version, not a commit, as that source's revision. Each chart here is the GitOps repo's own chart for the
service, with a few published versions; one of them is broken the way a bad chart release is.
"""

from __future__ import annotations

from typing import Any

HELM_REPO_URL = "https://charts.plate.example/stable"

# chart version -> the chart's own defaults on top of the service's values.yaml.
VERSIONS: dict[str, dict[str, Any]] = {
    "0.1.0": {},
    "0.2.0": {"podAnnotations": {"chart": "0.2.0"}},
    "0.3.0": {},
}
# A bad release: its Deployment template renders `replicas: "two"` whatever the values say (the API refuses it).
BROKEN_VERSIONS = frozenset({"0.3.0"})
BROKEN_REPLICAS = "two"


class ChartNotFound(Exception):
    pass


def chart_defaults(chart: str, version: str) -> dict[str, Any]:
    """The defaults a chart version adds; raises ChartNotFound for a version the repository does not have."""
    if version not in VERSIONS:
        raise ChartNotFound(f'chart "{chart}" version "{version}" not found in repository {HELM_REPO_URL}')
    return dict(VERSIONS[version])


def is_chart_source(source: dict[str, Any]) -> bool:
    return bool(source.get("chart")) and str(source.get("repoURL", "")) == HELM_REPO_URL
