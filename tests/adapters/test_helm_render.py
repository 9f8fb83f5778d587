"""The demo's charts rendered by the real Helm engine, as narrowing renders an app at a commit: the chart, its
file:// library dependency, the app's value files; the engine's error when it cannot; nothing without it."""

from __future__ import annotations

import pytest

from watcher.adapters import helm_render
from watcher.sim.gitops_repo import REGISTRY, repo_files

pytest.importorskip("helm_python")

FILES = repo_files("git://example/gitops.git")
WEB = "helm/applications/plate-web"


def test_a_chart_with_a_library_dependency_renders_with_the_apps_values() -> None:
    files = FILES | {f"{WEB}/values-stg.yaml": "replicaCount: -1\nimage: {tag: 9.9.9}\n"}
    out = helm_render.render_app(files, WEB, ["values-stg.yaml"], "plate-web-stg", "plate-stg")
    assert out is not None and out.error is None
    (deployment,) = [o for o in out.objects if o["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "plate-web-stg"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "plate-web"  # from the common library
    assert deployment["spec"]["replicas"] == -1  # the value file over the chart's values.yaml
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{REGISTRY}/plate-web:9.9.9"


def test_a_broken_template_is_the_engines_error_naming_the_file() -> None:
    files = FILES | {f"{WEB}/templates/deployment.yaml": "spec: {{ .Values.nope.deeper }}\n"}
    out = helm_render.render_app(files, WEB, ["values-stg.yaml"], "plate-web-stg", "plate-stg")
    assert out is not None and out.objects == () and "plate-web/templates/deployment.yaml" in str(out.error)


def test_a_value_file_that_does_not_parse_is_an_error_naming_it() -> None:
    files = FILES | {f"{WEB}/values-stg.yaml": "replicaCount: [1\n"}
    out = helm_render.render_app(files, WEB, ["values-stg.yaml"], "plate-web-stg", "plate-stg")
    assert out is not None and str(out.error).startswith("Error: failed to parse values-stg.yaml")


def test_without_the_engine_nothing_is_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helm_render, "helm_python", None)
    assert helm_render.render_app(FILES, WEB, ["values-stg.yaml"], "plate-web-stg", "plate-stg") is None
