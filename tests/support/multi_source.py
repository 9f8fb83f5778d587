"""Turn a demo app into a multi-source Application: a chart from the simulator's Helm repository, its value files
from the GitOps repo (`$values/...`), as Argo CD >= 2.6 serves it (`spec.sources`, `status.sync.revisions`)."""

from __future__ import annotations

import yaml

from watcher.sim.chart_repo import HELM_REPO_URL
from watcher.sim.world import SimWorld


def make_multi_source(world: SimWorld, name: str, version: str = "0.1.0") -> str:
    """Commit and push the change to `name`'s Application; the commit's sha."""
    path = f"environments/argocd/apps/{name}.yaml"
    manifest = yaml.safe_load(world.work.read(path))
    own = manifest["spec"].pop("source")
    values = [f"$values/{own['path']}/{f}" for f in own["helm"]["valueFiles"]]
    chart_name = own["path"].rstrip("/").rsplit("/", 1)[-1]
    chart = {"repoURL": HELM_REPO_URL, "chart": chart_name, "targetRevision": version, "helm": {"valueFiles": values}}
    manifest["spec"]["sources"] = [chart, {"repoURL": own["repoURL"], "targetRevision": "main", "ref": "values"}]
    world.work.git("pull", "-q", "--rebase", "origin", "main")
    sha = world.work.commit(f"{name}: chart from the Helm repository", {path: yaml.safe_dump(manifest)})
    world.work.push()
    return sha
