"""Which repo paths define an Application: the seeds' layout, value files outside the path, multi-source."""

from __future__ import annotations

import json

import pytest
import yaml

from watcher.core.appmap import (
    app_paths,
    application_manifests,
    manifest_directories,
    normalize_repo_url,
)
from watcher.sim.gitops_repo import repo_files

REPO = "https://git.example.com/platform/gitops"


@pytest.mark.parametrize(
    "url",
    [
        "git@git.example.com:platform/gitops.git",
        "https://git.example.com/platform/gitops",
        "https://git.example.com/platform/gitops.git/",
        "ssh://git@git.example.com:22/platform/gitops.git",
        "https://token:x-oauth@GIT.example.com/platform/gitops",
    ],
)
def test_repo_urls_that_name_the_same_repo_are_equal(url: str) -> None:
    assert normalize_repo_url(url) == "git.example.com/platform/gitops"


def test_different_repos_differ() -> None:
    assert normalize_repo_url("git@git.example.com:platform/other.git") != normalize_repo_url(REPO)
    assert normalize_repo_url("/srv/git/gitops.git") == "/srv/git/gitops"


def test_seed_layout_maps_chart_values_and_manifest() -> None:
    files = repo_files(REPO)
    manifests = application_manifests(files)
    app = yaml.safe_load(files["environments/argocd/apps/plate-api-stg.yaml"])
    assert manifests["plate-api-stg"] == "environments/argocd/apps/plate-api-stg.yaml"
    assert app_paths(app, "git@git.example.com:platform/gitops.git", manifests["plate-api-stg"]) == (
        "environments/argocd/apps/plate-api-stg.yaml",
        "helm/applications/plate-api",
        "helm/applications/plate-api/values-stg.yaml",
    )


def test_value_files_outside_the_path_are_resolved() -> None:
    app = {
        "spec": {
            "source": {
                "repoURL": REPO,
                "path": "helm/applications/plate-web",
                "helm": {
                    "valueFiles": ["values-stg.yaml", "../../shared/common.yaml", "https://example.com/remote.yaml"]
                },
            }
        }
    }
    assert app_paths(app, REPO) == (
        "helm/applications/plate-web",
        "helm/applications/plate-web/values-stg.yaml",
        "helm/shared/common.yaml",
    )


def test_multi_source_with_ref_value_files() -> None:
    app = {
        "spec": {
            "sources": [
                {
                    "repoURL": "https://charts.bitnami.com/bitnami",
                    "chart": "redis",
                    "targetRevision": "18.0.0",
                    "helm": {"valueFiles": ["$values/helm/applications/plate-cache/values-prod.yaml", "$other/x.yaml"]},
                },
                {"repoURL": REPO + ".git", "targetRevision": "main", "ref": "values"},
                {"repoURL": "https://git.example.com/platform/other", "ref": "other"},
                {"repoURL": REPO, "path": "environments/extra/plate-cache"},
            ]
        }
    }
    assert app_paths(app, REPO) == ("environments/extra/plate-cache", "helm/applications/plate-cache/values-prod.yaml")


def test_app_from_another_repo_has_no_paths() -> None:
    app = {"spec": {"source": {"repoURL": "https://git.example.com/platform/other", "path": "x"}}}
    assert app_paths(app, REPO) == ()


def test_parent_paths_come_from_tracking_annotations() -> None:
    parent = {
        "metadata": {"name": "app-of-apps"},
        "spec": {"source": {"repoURL": REPO, "path": "environments/argocd/apps"}},
    }
    child = {
        "metadata": {
            "name": "plate-web-stg",
            "annotations": {
                "argocd.argoproj.io/tracking-id": "app-of-apps:argoproj.io/Application:argocd/plate-web-stg"
            },
        },
        "spec": {"source": {"repoURL": REPO, "path": "helm/applications/plate-web"}},
    }
    assert manifest_directories([parent, child], REPO) == ("environments/argocd/apps",)
    assert manifest_directories([{**child, "metadata": {"name": "x"}}], REPO) == ("helm/applications/plate-web",)


def test_broken_yaml_defines_no_app() -> None:
    assert application_manifests({"a.yaml": "kind: Application\n  bad: [", "b.yaml": "kind: ConfigMap\n"}) == {}


def test_renderer_inputs_file_parameters_and_components_count() -> None:
    """`--set-file` parameters resolve like value files; the Application's own Kustomize components are
    directories the renderer starts from, as its source path is; both survive mapping_fields."""
    from watcher.core.appmap import mapping_fields, render_roots

    app = mapping_fields(
        {
            "metadata": {"name": "docs-stg"},
            "spec": {
                "sources": [
                    {
                        "repoURL": REPO,
                        "path": "kustomize/docs/overlays/stg",
                        "kustomize": {"components": ["../../components/tls", "https://example.com/remote"]},
                    },
                    {
                        "repoURL": REPO,
                        "path": "helm/applications/plate-web",
                        "helm": {"fileParameters": [{"name": "config", "path": "../../shared/config.json"}]},
                    },
                ]
            },
        }
    )
    assert render_roots(app, REPO) == (
        "kustomize/docs/overlays/stg",
        "kustomize/docs/components/tls",
        "helm/applications/plate-web",
    )
    assert app_paths(app, REPO, None, ["helm/library/common"]) == (
        "helm/applications/plate-web",
        "helm/library/common",
        "helm/shared/config.json",
        "kustomize/docs/components/tls",
        "kustomize/docs/overlays/stg",
    )


def test_mapping_fields_keep_what_mapping_reads_and_nothing_else() -> None:
    from watcher.core.appmap import compact_fields, expand_fields

    app = {
        "metadata": {
            "name": "plate-api-stg",
            "namespace": "argocd",
            "annotations": {"argocd.argoproj.io/tracking-id": "root:argoproj.io/Application:argocd/x", "note": "n"},
            "labels": {"env": "stg", "team": "plate"},
        },
        "spec": {
            "project": "default",
            "sources": [
                {"repoURL": "https://charts.example.com", "chart": "redis", "targetRevision": "19.0.1"},
                {
                    "repoURL": "git@github.com:plate/gitops.git",
                    "path": "helm/api",
                    "ref": "values",
                    "targetRevision": "main",
                    "helm": {"valueFiles": ["values-stg.yaml"], "parameters": []},
                },
            ],
            "destination": {"namespace": "plate-stg"},
        },
        "status": {"sync": {"status": "Synced"}},
    }
    kept = compact_fields(app)
    assert kept == compact_fields(json.loads(json.dumps(app)))  # equal for equal apps: a poll keeps the held one
    assert expand_fields(kept) == {
        "metadata": {
            "name": "plate-api-stg",
            "namespace": "argocd",
            "annotations": {"argocd.argoproj.io/tracking-id": "root:argoproj.io/Application:argocd/x"},
            "labels": {"env": "stg"},
        },
        "spec": {
            "sources": [
                {"repoURL": "https://charts.example.com", "chart": "redis", "targetRevision": "19.0.1"},
                {
                    "repoURL": "git@github.com:plate/gitops.git",
                    "path": "helm/api",
                    "ref": "values",
                    "targetRevision": "main",
                    "helm": {"valueFiles": ["values-stg.yaml"]},
                },
            ]
        },
    }
