"""FleetMap on an in-memory repo: an app's paths include what its renderer reads, and only those files are read."""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Iterable

from watcher.core.appmap import Fields, compact_fields
from watcher.domain import Commit
from watcher.observe.fleet_map import FleetMap

REPO = "https://git.example.com/platform/gitops"
CHART = "apiVersion: v2\nname: {name}\ndependencies:\n  - {{name: common, repository: 'file://../../library/common'}}\n"


class FilesAt:
    """A WatchedRepo over one dict of files per revision; it records which directories were asked for."""

    def __init__(self, revisions: dict[str, dict[str, str]]):
        self.revisions = revisions
        self.asked: list[set[str]] = []

    def sync(self) -> str:
        return next(iter(self.revisions))

    def commit(self, sha: str) -> Commit | None:
        return None

    def yaml_files(self, rev: str, directories: Iterable[str]) -> dict[str, str]:
        return {}

    def files_named(self, rev: str, directories: Iterable[str], names: Collection[str]) -> dict[str, str]:
        wanted = set(directories)
        self.asked.append(wanted)
        return {
            p: t
            for p, t in self.revisions[rev].items()
            if posixpath.dirname(p) in wanted and posixpath.basename(p) in names
        }


def app(name: str, path: str) -> Fields:
    return compact_fields(
        {"metadata": {"name": name, "namespace": "argocd"}, "spec": {"source": {"repoURL": REPO, "path": path}}}
    )


FILES = {
    "helm/applications/web/Chart.yaml": CHART.format(name="web"),
    "helm/applications/web/values.yaml": "replicaCount: 1\n",
    "helm/applications/api/Chart.yaml": "apiVersion: v2\nname: api\n",
    "helm/library/common/Chart.yaml": "apiVersion: v2\nname: common\ntype: library\n",
    "helm/library/unused/Chart.yaml": "apiVersion: v2\nname: unused\ntype: library\n",
    "kustomize/docs/overlays/stg/kustomization.yaml": "resources: [../../base]\n",
    "kustomize/docs/base/kustomization.yaml": "resources: [deployment.yaml]\n",
}


def test_paths_include_the_library_chart_and_the_kustomize_base_and_nothing_else_is_read() -> None:
    repo = FilesAt({"r1": FILES})
    fleet = FleetMap(repo, REPO)
    fleet.update(
        {
            "argocd/web": app("web", "helm/applications/web"),
            "argocd/api": app("api", "helm/applications/api"),
            "argocd/docs": app("docs", "kustomize/docs/overlays/stg"),
        }
    )
    fleet.remap("r1")
    assert fleet.paths_of("argocd/web") == ("helm/applications/web", "helm/library/common")
    assert fleet.paths_of("argocd/api") == ("helm/applications/api",)
    assert fleet.paths_of("argocd/docs") == ("kustomize/docs/base", "kustomize/docs/overlays/stg")
    # One round per level of references; the unused library is never read.
    assert repo.asked == [
        {"helm/applications/web", "helm/applications/api", "kustomize/docs/overlays/stg"},
        {"helm/library/common", "kustomize/docs/base"},
    ]


def test_a_new_app_at_the_same_head_reads_only_directories_nobody_reached() -> None:
    repo = FilesAt({"r1": FILES, "r2": FILES | {"helm/library/common/Chart.yaml": CHART.format(name="common")}})
    fleet = FleetMap(repo, REPO)
    fleet.update({"argocd/web": app("web", "helm/applications/web")})
    fleet.remap("r1")
    fleet.update({"argocd/web-prod": app("web-prod", "helm/applications/web")})
    fleet.remap("r1")
    assert len(repo.asked) == 2  # the second app shares the chart: nothing more to read
    assert fleet.paths_of("argocd/web-prod") == ("helm/applications/web", "helm/library/common")
    # At a new head everything reached is read again: here the library grew a dependency on itself (a cycle).
    fleet.remap("r2")
    assert fleet.paths_of("argocd/web") == ("helm/applications/web", "helm/library/common")
