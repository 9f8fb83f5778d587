"""A culprit must touch what failed, pure: which candidates changed the failing object (render, else the files that
define it) or the Application's sync options, policy or sources; and the evidence line each decision carries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from watcher.core.culprit import evidence, spec_change
from watcher.core.failure_class import classify
from watcher.core.narrow import Candidate, Rendered
from watcher.domain import Commit, ResourceResult

T = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
MANIFEST = "environments/argocd/apps/plate-api-stg.yaml"
CHART = "helm/applications/plate-api"
VALUES = f"{CHART}/values-stg.yaml"
# kubectl replace's words (Replace=true: gitops-engine sync_context.go:1434,1461), a Service as in argo-cd#2150.
REPLACED = (
    'error when replacing "/dev/shm/1234": Service "plate-api-stg" is invalid: spec.clusterIP: Invalid value: "": '
    "field is immutable"
)
SERVICE = ResourceResult("Service", "plate-api-stg", "plate-stg", "", REPLACED)
# The CRD's schema refusing a child Application in the app-of-apps root (apiextensions validation through
# apimachinery errors.go:307), as scenario app-of-apps-root-invalid-child has it.
CHILD = ResourceResult(
    "Application",
    "plate-search-stg",
    "argocd",
    "argoproj.io",
    'Application.argoproj.io "plate-search-stg" is invalid: spec.syncPolicy.retry.backoff.duration: Invalid value: '
    '"integer": spec.syncPolicy.retry.backoff.duration in body must be of type string: "integer"',
)
DEPLOYMENT = ResourceResult(
    "Deployment",
    "plate-api-stg",
    "plate-stg",
    "apps",
    'Deployment.apps "plate-api-stg" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0',
)


def commit(name: str, subject: str = "") -> Commit:
    return Commit(name * 40, "Dev", T, subject or f"commit {name}", ("p" * 40,))


def patch(path: str, *lines: str, new: bool = False) -> str:
    head = f"diff --git a/{path} b/{path}\n" + ("new file mode 100644\n" if new else "")
    return head + f"--- a/{path}\n+++ b/{path}\n@@ -1,3 +1,4 @@\n" + "".join(f"{line}\n" for line in lines)


def deployment(replicas: int = 1, tag: str = "2.4.0") -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "plate-api-stg"},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": f"plate-api:{tag}"}]}}},
    }


REPLACE_ADDED = patch(MANIFEST, "   syncPolicy:", "+    syncOptions:", "+      - Replace=true", "     automated:")
IMAGE_BUMP = patch(VALUES, " image:", "-  tag: 2.4.0", "+  tag: 2.4.1")
SPEC_A, IMAGE_B = commit("a", "plate-api-stg: sync with Replace=true"), commit("b", "plate-api-stg: 2.4.1")


@pytest.mark.parametrize(
    ("case", "results", "candidates", "culprits", "line"),
    [
        (
            "the sync option's commit, not the innocent commit whose sync first used it",
            (SERVICE,),
            (Candidate(IMAGE_B, (VALUES,), IMAGE_BUMP), Candidate(SPEC_A, (MANIFEST,), REPLACE_ADDED)),
            ("a",),
            "Service/plate-stg/plate-api-stg refused by kubectl replace with Replace=true; Replace=true was added by "
            "aaaaaaa (plate-api-stg: sync with Replace=true)",
        ),
        (
            "the one commit that added the child Application the root failed on",
            (CHILD,),
            (
                Candidate(
                    commit("c"),
                    ("environments/argocd/apps/plate-api-stg.yaml",),
                    patch("environments/argocd/apps/plate-api-stg.yaml", "   metadata:", "+    labels: {team: api}"),
                ),
                Candidate(
                    commit("b"),
                    ("environments/argocd/apps/plate-search-stg.yaml",),
                    patch(
                        "environments/argocd/apps/plate-search-stg.yaml",
                        "+kind: Application",
                        "+metadata:",
                        "+  name: plate-search-stg",
                        new=True,
                    ),
                ),
            ),
            ("b",),
            "Application/argocd/plate-search-stg: bbbbbbb changed environments/argocd/apps/plate-search-stg.yaml, "
            "which defines Application/plate-search-stg",
        ),
        (
            "the render says which commit changed the Deployment; the other changed the ConfigMap only",
            (DEPLOYMENT,),
            (
                Candidate(commit("c"), (VALUES,), "x", Rendered((deployment(),)), Rendered((deployment(),))),
                Candidate(commit("b"), (VALUES,), "x", Rendered((deployment(),)), Rendered((deployment(-1),))),
            ),
            ("b",),
            "Deployment/plate-stg/plate-api-stg: bbbbbbb changed Deployment/plate-api-stg in the rendered output",
        ),
        (
            "no render: a value file of the app's chart feeds every object of the release",
            (DEPLOYMENT,),
            (Candidate(commit("b"), (VALUES,), IMAGE_BUMP),),
            ("b",),
            "Deployment/plate-stg/plate-api-stg: bbbbbbb changed helm/applications/plate-api/values-stg.yaml, from "
            "which the chart renders Deployment/plate-api-stg (not rendered here)",
        ),
        (
            "a change to the Application's sync policy counts even where the object did not change",
            (DEPLOYMENT,),
            (
                Candidate(
                    commit("a"),
                    (MANIFEST,),
                    patch(MANIFEST, "   syncPolicy:", "-    automated: {}", "+    automated: {prune: true}"),
                ),
                Candidate(commit("b"), (VALUES,), "x", Rendered((deployment(),)), Rendered((deployment(),))),
            ),
            ("a",),
            "Deployment/plate-stg/plate-api-stg: aaaaaaa changed the Application's automated",
        ),
        (
            "nobody touched it: the render is final, and no spec change",
            (DEPLOYMENT,),
            (Candidate(commit("b"), (VALUES,), IMAGE_BUMP, Rendered((deployment(),)), Rendered((deployment(),))),),
            (),
            "Deployment/plate-stg/plate-api-stg failed, but none of the candidates (bbbbbbb) changed it",
        ),
        (
            "nothing could be read: the missing evidence is named",
            (DEPLOYMENT,),
            (Candidate(commit("b"), (VALUES,)),),
            (),
            "no diff or render could be read for bbbbbbb",
        ),
        (
            "Replace=true failed but no candidate added it: the objects decide, and none changed",
            (SERVICE,),
            (
                Candidate(
                    IMAGE_B, (VALUES,), IMAGE_BUMP, Rendered((deployment(),)), Rendered((deployment(tag="2.4.1"),))
                ),
            ),
            (),
            "failed with Replace=true (no candidate added it)",
        ),
    ],
)
def test_a_culprit_touched_what_failed(
    case: str,
    results: tuple[ResourceResult, ...],
    candidates: tuple[Candidate, ...],
    culprits: tuple[str, ...],
    line: str,
) -> None:
    failure = classify("one or more objects failed to apply, reason: …", (), results)
    found = evidence(failure, candidates, (MANIFEST,), (), (CHART,))
    assert found is not None, case
    assert tuple(c.sha[0] for c in found.commits) == culprits, case
    assert line in found.line, case


def test_a_failure_that_names_no_object_leaves_blame_alone() -> None:
    failure = classify(
        "Failed to load target state: … rpc error: code = Unknown desc = failed to parse values-stg.yaml"
    )
    assert evidence(failure, (Candidate(commit("b"), (VALUES,), IMAGE_BUMP),), (MANIFEST,)) is None


def test_server_side_apply_words_blame_the_commit_that_turned_it_on() -> None:
    """scenario ssa-option-added-earlier-unexercised: the operation used ServerSideApply=true (its syncOptions)."""
    ssa = ResourceResult(
        "Deployment",
        "plate-api",
        "plate-prod",
        "apps",
        "failed to create typed patch object (plate-prod/plate-api; apps/v1, Kind=Deployment): .spec.template.spec."
        'containers[name="plate-api"].env: duplicate entries for key [name="LOG_LEVEL"]',
    )
    on = patch(MANIFEST, "     syncOptions:", "+      - ServerSideApply=true")
    candidates = (Candidate(IMAGE_B, (VALUES,), IMAGE_BUMP), Candidate(SPEC_A, (MANIFEST,), on))
    found = evidence(classify("", (), (ssa,)), candidates, (MANIFEST,), ("ServerSideApply=true",))
    assert found is not None and [c.sha[0] for c in found.commits] == ["a"]
    assert "ServerSideApply=true was added by aaaaaaa" in found.line


@pytest.mark.parametrize(
    ("lines", "keys", "added"),
    [
        (("+    syncOptions:", "+      - Replace=true"), ("syncOptions",), ("Replace=true",)),
        (("-      - Replace=true",), ("syncOptions",), ()),
        (("-    targetRevision: main", "+    targetRevision: release-1"), ("targetRevision",), ()),
        ((" metadata:", "+  labels: {a: b}"), None, None),
    ],
)
def test_what_a_commit_changed_in_the_application_spec(
    lines: tuple[str, ...], keys: tuple[str, ...] | None, added: tuple[str, ...] | None
) -> None:
    change = spec_change(patch(MANIFEST, *lines), (MANIFEST,))
    if keys is None:
        assert change is None
    else:
        assert change is not None and change.keys == keys and change.added_options == added
    assert spec_change(patch(VALUES, *lines), (MANIFEST,)) is None  # a value file is no Application
