"""What a renderer reads outside an app's directory: Helm file:// dependencies, Kustomize references, closure."""

from __future__ import annotations

import pytest

from watcher.core.render_inputs import MAX_DEPTH, DirectoryRefs, RendererInputs, closure, references

WEB = "helm/applications/plate-web"
OVERLAY = "kustomize/docs/overlays/stg"


@pytest.mark.parametrize(
    ("directory", "files", "follow", "read"),
    [
        pytest.param(
            WEB,
            {
                "Chart.yaml": """
apiVersion: v2
name: plate-web
dependencies:
  - {name: common, version: 0.1.0, repository: "file://../../library/common"}
  - {name: redis, version: 18.0.0, repository: https://charts.bitnami.com/bitnami}
  - {name: pg, version: 1.0.0, repository: oci://registry.example.com/charts}
  - {name: alias, version: 1.0.0, repository: "@stable"}
  - {name: vendored, version: 1.0.0}
  - {name: abs, version: 1.0.0, repository: "file:///opt/charts/abs"}
  - {name: escapes, version: 1.0.0, repository: "file://../../../../elsewhere"}
""",
            },
            ("helm/library/common",),
            (),
            id="helm: only file:// inside the repo; remote, alias, vendored, absolute and escaping ignored",
        ),
        pytest.param(
            "charts/legacy",
            {
                "Chart.yaml": "apiVersion: v1\nname: legacy\n",
                "requirements.yaml": ("dependencies:\n  - {name: base, repository: 'file://../base'}\n"),
            },
            ("charts/base",),
            (),
            id="helm v1: requirements.yaml",
        ),
        pytest.param(
            OVERLAY,
            {
                "kustomization.yaml": """
resources:
  - ../../base
  - namespace.yaml
  - ../../shared/configmap.yaml
  - https://github.com/org/repo//deploy?ref=v1.2.0
  - github.com/org/repo/deploy?ref=v1
  - git@github.com:org/repo.git//deploy
  - git::https://gitlab.example.com/org/repo//deploy
  - ../../../../../outside
  - /etc/absolute
components:
  - ../../components/tls
patches:
  - path: ../../patches/replicas.yaml
  - patch: |-
      - op: replace
        path: /spec/replicas
        value: 3
patchesStrategicMerge:
  - ../../patches/memory.yaml
  - |-
    apiVersion: apps/v1
    kind: Deployment
patchesJson6902:
  - {target: {kind: Deployment, name: docs}, path: ../../patches/json.yaml}
configMapGenerator:
  - name: docs
    files: [greeting=../../config/greeting.txt, local.txt]
    envs: [../../config/docs.env]
secretGenerator:
  - {name: s, env: ../../config/secret.env}
crds: [../../crds/docs.yaml]
generators: [../../generators]
transformers:
  - |-
    apiVersion: builtin
    kind: LabelTransformer
""",
            },
            ("kustomize/docs/base", "kustomize/docs/components/tls", "kustomize/docs/generators"),
            (
                "kustomize/docs/overlays/stg/namespace.yaml",
                "kustomize/docs/shared/configmap.yaml",
                "kustomize/docs/crds/docs.yaml",
                "kustomize/docs/patches/memory.yaml",
                "kustomize/docs/patches/replicas.yaml",
                "kustomize/docs/patches/json.yaml",
                "kustomize/docs/config/greeting.txt",
                "kustomize/docs/overlays/stg/local.txt",
                "kustomize/docs/config/docs.env",
                "kustomize/docs/config/secret.env",
            ),
            id="kustomize: every local path, remote and inline ones skipped",
        ),
        pytest.param(
            "kustomize/base",
            {"Kustomization": "bases: [../common]\n"},
            ("kustomize/common",),
            (),
            id="kustomize: the file named Kustomization, deprecated bases",
        ),
        pytest.param(
            "kustomize/charts-app",
            {
                "kustomization.yml": """
helmGlobals: {chartHome: ../../charts}
helmCharts:
  - {name: docs, valuesFile: values-stg.yaml, additionalValuesFiles: [../shared/values.yaml]}
  - {name: redis, repo: https://charts.bitnami.com/bitnami, valuesFile: ../redis-values.yaml}
""",
            },
            ("charts/docs",),
            ("kustomize/charts-app/values-stg.yaml", "kustomize/shared/values.yaml", "kustomize/redis-values.yaml"),
            id="kustomize: helmCharts, a local chart under chartHome",
        ),
        pytest.param(WEB, {"Chart.yaml": "dependencies: [\n"}, (), (), id="unparsable YAML names nothing"),
        pytest.param(WEB, {"Chart.yaml": "- just\n- a list\n"}, (), (), id="not a mapping"),
        pytest.param(WEB, {}, (), (), id="no definition files: a plain directory"),
    ],
)
def test_references_of_one_directory(
    directory: str, files: dict[str, str], follow: tuple[str, ...], read: tuple[str, ...]
) -> None:
    assert references(directory, files) == DirectoryRefs(follow, read)


def refs(**graph: tuple[str, ...]) -> dict[str, DirectoryRefs]:
    """directory (with / written as __) -> the directories it follows."""
    return {d.replace("__", "/"): DirectoryRefs(follow) for d, follow in graph.items()}


@pytest.mark.parametrize(
    ("roots", "graph", "expected"),
    [
        pytest.param(
            (WEB,),
            {
                WEB: DirectoryRefs(("helm/library/common",)),
                "helm/library/common": DirectoryRefs(("helm/library/base",)),
                "helm/library/base": DirectoryRefs(),
            },
            RendererInputs(("helm/library/base", "helm/library/common")),
            id="nested dependencies are followed",
        ),
        pytest.param(
            (WEB,),
            {WEB: DirectoryRefs(("helm/library/common",))},
            RendererInputs(("helm/library/common",), unread=("helm/library/common",)),
            id="a directory not read yet is reported",
        ),
        pytest.param(
            ("k/a",),
            refs(k__a=("k/b",), k__b=("k/c",), k__c=("k/a",)),
            RendererInputs(("k/b", "k/c")),
            id="a cycle ends where it meets a directory already seen",
        ),
        pytest.param(
            ("k/overlay",),
            {
                "k/overlay": DirectoryRefs(("k/base",), ("k/overlay/patch.yaml", "k/base/deploy.yaml", "k/p.yaml")),
                "k/base": DirectoryRefs(),
            },
            RendererInputs(("k/base", "k/p.yaml")),
            id="paths under a root or under another path are not repeated",
        ),
        pytest.param(
            ("a", "b"),
            {"a": DirectoryRefs(("b",)), "b": DirectoryRefs(("a/x",)), "a/x": DirectoryRefs()},
            RendererInputs(()),
            id="roots that point at each other add nothing (a directory under a root is still followed)",
        ),
    ],
)
def test_closure(roots: tuple[str, ...], graph: dict[str, DirectoryRefs], expected: RendererInputs) -> None:
    assert closure(roots, graph) == expected


def test_a_chain_deeper_than_the_bound_is_cut_and_says_so() -> None:
    chain = {f"d{i}": DirectoryRefs((f"d{i + 1}",)) for i in range(MAX_DEPTH + 5)}
    found = closure(("d0",), chain)
    assert found.truncated and len(found.paths) == MAX_DEPTH + 1 and not found.unread


def test_closure_over_references_of_real_files() -> None:
    """The two steps together, as fleet_map runs them: read, parse once, follow."""
    repo = {
        OVERLAY: {"kustomization.yaml": "resources: [../../base]\ncomponents: [../../../components/probes]\n"},
        "kustomize/docs/base": {"kustomization.yaml": "resources: [deployment.yaml, ../../shared/labels]\n"},
        "kustomize/shared/labels": {"kustomization.yaml": "resources: [../../docs/base]\n"},  # a cycle back
        "kustomize/components/probes": {"kustomization.yaml": "patches: [{path: probes.yaml}]\n"},
    }
    parsed = {d: references(d, files) for d, files in repo.items()}
    assert closure((OVERLAY,), parsed) == RendererInputs(
        ("kustomize/components/probes", "kustomize/docs/base", "kustomize/shared/labels")
    )
