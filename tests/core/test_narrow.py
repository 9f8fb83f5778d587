"""Narrowing, pure: which of several commits introduced what fails, from Argo CD's words and each commit's render
or diff; and the split of one culprit's revert to the failing app's files."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from watcher.core.blame import AppSources, Blame, BlameOutcome
from watcher.core.narrow import Candidate, Clues, FieldClue, Rendered, clues_of, narrow, narrowed, split
from watcher.domain import Commit

T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
IMAGE = "harbor.plate.local/plate/plate-api:9.9.9"
REPLICAS = (
    'one or more objects failed to apply, reason: Deployment.apps "plate-api-stg" is invalid: spec.replicas: '
    "Invalid value: -1: must be greater than or equal to 0"
)
MEMORY = (
    'Deployment.apps "plate-api-stg" is invalid: spec.template.spec.containers[0].resources.limits[memory]: '
    'Invalid value: "12x": quantities must match the regular expression'
)
RENDER = (
    "rpc error: code = Unknown desc = `helm template . --name-template plate-api-stg --values values-stg.yaml` "
    'failed exit status 1: Error: template: plate-api/templates/deployment.yaml:9:20: executing "plate-api/'
    'templates/deployment.yaml" at <.Values.image.nope>: nil pointer evaluating interface {}.nope'
)
VALUES = "helm/applications/plate-api/values-stg.yaml"


def commit(name: str, *parents: str) -> Commit:
    return Commit(name * 40, "Dev", T, f"commit {name}", parents or ("p" * 40,))


A, B, C = commit("a"), commit("b"), commit("c")


def deployment(
    replicas: object = 1, image: str = "harbor.plate.local/plate/plate-api:2.4.0", mem: str = "512Mi"
) -> Any:
    container = {"name": "app", "image": image, "resources": {"limits": {"memory": mem}}}
    return {
        "kind": "Deployment",
        "metadata": {"name": "plate-api-stg"},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}},
    }


def rendered(**fields: Any) -> Rendered:
    return Rendered((deployment(**fields),))


def diff(*added: str) -> str:
    return f"--- a/{VALUES}\n+++ b/{VALUES}\n@@ -1 +1 @@\n" + "".join(f"+{line}\n" for line in added)


GOOD_TEXT = diff("  pullPolicy: Always")  # a config change in the same values file


@pytest.mark.parametrize(
    ("kind", "evidence", "expected"),
    [
        (
            "sync_failed",
            {"message": REPLICAS},
            Clues(fields=(FieldClue("Deployment", "plate-api-stg", "spec.replicas", "-1"),)),
        ),
        (
            "sync_failed",
            {"message": MEMORY},
            Clues(
                fields=(
                    FieldClue(
                        "Deployment",
                        "plate-api-stg",
                        "spec.template.spec.containers[0].resources.limits[memory]",
                        "12x",
                    ),
                )
            ),
        ),
        (
            "degraded",
            {"health_message": f'ImagePullBackOff: Back-off pulling image "{IMAGE}"'},
            Clues(images=(IMAGE,)),
        ),
        ("rollout_failing", {"failing_images": [IMAGE], "message": ""}, Clues(images=(IMAGE,))),
        (
            "degraded",
            {"health_message": 'failed to pull and unpack image "docker.io/library/nginx:1.99": not found'},
            Clues(images=("docker.io/library/nginx:1.99",)),
        ),
        ("degraded", {"health_message": 'Back-off pulling image "nginx:1.25.9"'}, Clues(images=("nginx:1.25.9",))),
        (
            "manifest_error",
            {"conditions": [{"type": "ComparisonError", "message": RENDER}]},
            Clues(files=("templates/deployment.yaml",), render_failed=True),
        ),
        (
            "manifest_error",
            {"conditions": [{"message": "Error: failed to parse values-stg.yaml: error converting YAML to JSON"}]},
            Clues(files=("values-stg.yaml",), render_failed=True),
        ),
        ("degraded", {"health_message": "CrashLoopBackOff: back-off restarting failed container app"}, Clues()),
    ],
    ids=[
        "replicas",
        "memory",
        "image-pull",
        "rollout-images",
        "containerd",
        "no-registry",
        "render-error",
        "values-error",
        "nothing-named",
    ],
)
def test_clues_are_read_from_argo_cds_words(kind: str, evidence: dict[str, object], expected: Clues) -> None:
    assert clues_of(kind, evidence) == expected


REPLICAS_CLUE = Clues(fields=(FieldClue("Deployment", "plate-api-stg", "spec.replicas", "-1"),))
MEMORY_CLUE = clues_of("sync_failed", {"message": MEMORY})
IMAGE_CLUE = Clues(images=(IMAGE,))


@pytest.mark.parametrize(
    ("candidates", "clues", "named", "how"),
    [
        (  # the render: B set replicas to -1, A (newer) changed something else
            [
                Candidate(A, (VALUES,), GOOD_TEXT, rendered(replicas=-1), rendered(replicas=-1)),
                Candidate(B, (VALUES,), diff("replicaCount: -1"), rendered(), rendered(replicas=-1)),
            ],
            REPLICAS_CLUE,
            B,
            "set spec.replicas of Deployment/plate-api-stg to -1",
        ),
        (  # the render: the memory limit, a field path with an index and a bracketed key
            [
                Candidate(A, (VALUES,), diff('    memory: "12x"'), rendered(), rendered(mem="12x")),
                Candidate(B, (VALUES,), GOOD_TEXT, rendered(), rendered()),
            ],
            MEMORY_CLUE,
            A,
            "set spec.template.spec.containers[0].resources.limits[memory] of Deployment/plate-api-stg to 12x",
        ),
        (  # the render: the image, and the object it is in
            [
                Candidate(A, (VALUES,), GOOD_TEXT, rendered(image=IMAGE), rendered(image=IMAGE)),
                Candidate(B, (VALUES,), diff("  tag: 9.9.9"), rendered(), rendered(image=IMAGE)),
            ],
            IMAGE_CLUE,
            B,
            f"introduced image {IMAGE} in Deployment/plate-api-stg",
        ),
        (  # render tie: set, unset, set again: the newest setting is the one deployed
            [
                Candidate(A, (VALUES,), "", rendered(), rendered(replicas=-1)),
                Candidate(B, (VALUES,), "", rendered(replicas=-1), rendered()),
                Candidate(C, (VALUES,), "", rendered(), rendered(replicas=-1)),
            ],
            REPLICAS_CLUE,
            A,
            "set spec.replicas of Deployment/plate-api-stg to -1",
        ),
        (  # the render broke at B: its parent rendered, it does not
            [
                Candidate(A, (VALUES,), "", Rendered(error="x"), Rendered(error="x")),
                Candidate(
                    B, ("helm/applications/plate-api/templates/deployment.yaml",), "", rendered(), Rendered(error="x")
                ),
            ],
            Clues(render_failed=True),
            B,
            "broke the render",
        ),
        (  # no render (not Helm, or no engine): the diff's added lines name the image's tag
            [
                Candidate(A, (VALUES,), GOOD_TEXT),
                Candidate(B, (VALUES,), diff("image:", "  tag: 9.9.9")),
            ],
            IMAGE_CLUE,
            B,
            f"introduced image {IMAGE}",
        ),
        (  # no render: the refused value in an added line (not "-10", not in a comment)
            [
                Candidate(A, (VALUES,), diff("replicaCount: -10", "# was -1")),
                Candidate(B, (VALUES,), diff("replicaCount: -1")),
            ],
            REPLICAS_CLUE,
            B,
            "set spec.replicas of Deployment/plate-api-stg to -1",
        ),
        (  # no render: the file a render error names
            [
                Candidate(A, ("helm/applications/plate-api/templates/deployment.yaml",)),
                Candidate(B, (VALUES.replace("stg", "prod"),)),
            ],
            clues_of("manifest_error", {"conditions": [{"message": RENDER}]}),
            A,
            "changed templates/deployment.yaml, which the render error names",
        ),
    ],
    ids=["replicas", "memory", "image", "newest-setting", "render-broke", "diff-image", "diff-value", "diff-file"],
)
def test_the_commit_that_introduced_what_fails_is_named(
    candidates: list[Candidate], clues: Clues, named: Commit, how: str
) -> None:
    found = narrow(candidates, clues)
    assert found.commit == named and found.how == how


@pytest.mark.parametrize(
    ("candidates", "clues", "why"),
    [
        (  # both diffs add the value: a tie in text names nobody
            [Candidate(A, (VALUES,), diff("replicaCount: -1")), Candidate(B, (VALUES,), diff("minReplicas: -1"))],
            REPLICAS_CLUE,
            f"could not narrow: set spec.replicas of Deployment/plate-api-stg to -1 in 2 commits ({A.sha[:12]}, "
            f"{B.sha[:12]})",
        ),
        (
            [Candidate(A, (VALUES,), GOOD_TEXT), Candidate(B, (VALUES,), GOOD_TEXT)],
            IMAGE_CLUE,
            f"could not narrow: no commit's render or diff shows {IMAGE}",
        ),
        (
            [Candidate(A, (VALUES,), GOOD_TEXT), Candidate(B, (VALUES,), GOOD_TEXT)],
            Clues(),
            "could not narrow: the failure names no image, field or file",
        ),
    ],
    ids=["tie", "no-match", "no-clue"],
)
def test_nothing_narrows_says_why(candidates: list[Candidate], clues: Clues, why: str) -> None:
    found = narrow(candidates, clues)
    assert found.commits == () and found.how == why


MERGE = commit("m", "f" * 40, "s" * 40)
SIDE_GOOD, SIDE_BAD = commit("g"), commit("h")


def test_every_field_the_api_server_lists_names_its_commit() -> None:
    both = (
        'Deployment.apps "plate-api-stg" is invalid: [spec.replicas: Invalid value: -1: must be greater than or '
        'equal to 0, spec.template.spec.containers[0].resources.limits[memory]: Invalid value: "12x": quantities '
        "must match the regular expression]"
    )
    candidates = [
        Candidate(A, (VALUES,), diff("replicaCount: -1")),
        Candidate(B, (VALUES,), GOOD_TEXT),
        Candidate(C, (VALUES,), diff('    memory: "12x"')),
    ]
    found = narrow(candidates, clues_of("sync_failed", {"message": both}))
    assert found.commits == (A, C) and found.via == "diff"
    one_unknown = narrow(candidates[:2], clues_of("sync_failed", {"message": both}))
    assert one_unknown.commits == ()  # the memory change is in no candidate: keep them all


def test_inside_a_merge_the_branch_commit_that_did_it_is_named() -> None:
    side = (
        Candidate(SIDE_GOOD, (VALUES,), GOOD_TEXT, rendered(replicas=-1), rendered(replicas=-1)),
        Candidate(SIDE_BAD, (VALUES,), diff("replicaCount: -1"), rendered(), rendered(replicas=-1)),
    )
    merged = Candidate(MERGE, (VALUES,), diff("replicaCount: -1"), rendered(), rendered(replicas=-1), side)
    found = narrow([merged], REPLICAS_CLUE)
    assert found.commits == (SIDE_BAD,) and found.merges == (MERGE,)
    assert found.how.endswith(f"in {SIDE_BAD.sha[:12]} on the branch merged by {MERGE.sha[:12]}")


API = AppSources(("helm/applications/plate-api/values-stg.yaml", "helm/applications/plate-api"))
WEB = AppSources(("helm/applications/plate-web/values-stg.yaml", "helm/applications/plate-web"))
WEB_VALUES = "helm/applications/plate-web/values-stg.yaml"


def blamed(*culprits: Commit) -> Blame:
    return Blame(
        BlameOutcome.CULPRITS, f"{len(culprits)} commit(s) changed plate-api-stg", "f" * 40, "0" * 40, culprits
    )


def test_narrowed_blame_keeps_one_culprit_and_says_how() -> None:
    candidates = [
        Candidate(A, (VALUES,), GOOD_TEXT, rendered(replicas=-1), rendered(replicas=-1)),
        Candidate(B, (VALUES,), diff("replicaCount: -1"), rendered(), rendered(replicas=-1)),
    ]
    b = narrowed("plate-api-stg", blamed(A, B), candidates, REPLICAS_CLUE, API, {"plate-web-stg": WEB}, True)
    assert b.culprits == (B,)
    assert f"narrowed to {B.sha[:12]} (commit b): set spec.replicas of Deployment/plate-api-stg to -1" in b.reason
    assert b.evidence()["named"].endswith("(seen in the render)")


def test_narrowing_off_keeps_every_culprit_and_the_reason_as_it_was() -> None:
    candidates = [
        Candidate(A, (VALUES,), GOOD_TEXT, rendered(replicas=-1), rendered(replicas=-1)),
        Candidate(B, (VALUES,), diff("replicaCount: -1"), rendered(), rendered(replicas=-1)),
    ]
    b = narrowed("plate-api-stg", blamed(A, B), candidates, REPLICAS_CLUE, API, {}, True, narrow_on=False)
    assert b.culprits == (A, B) and b.reason == blamed(A, B).reason and b.named == ""


def test_not_narrowed_blame_keeps_every_culprit_and_says_so() -> None:
    candidates = [Candidate(A, (VALUES,), GOOD_TEXT), Candidate(B, (VALUES,), GOOD_TEXT)]
    b = narrowed("plate-api-stg", blamed(A, B), candidates, IMAGE_CLUE, API, {}, True)
    assert b.culprits == (A, B) and b.reason.endswith(
        f"could not narrow: no commit's render or diff shows {IMAGE}: reverting all 2"
    )


@pytest.mark.parametrize(
    ("files", "only", "kept"),
    [
        ((VALUES, WEB_VALUES), {A.sha: (VALUES,)}, {A.sha: (WEB_VALUES,)}),
        ((VALUES,), {}, {}),  # nothing to keep: the whole commit is reverted
    ],
    ids=["two-apps", "own-only"],
)
def test_split_keeps_what_does_not_change_the_app(
    files: tuple[str, ...], only: dict[str, tuple[str, ...]], kept: dict[str, tuple[str, ...]]
) -> None:
    cut = split([(A, files)], lambda f: f == VALUES or f.startswith("helm/applications/plate-api/"))
    assert (dict(cut.only), dict(cut.kept)) == (only, kept)


def test_split_keeps_only_a_healthy_apps_change() -> None:
    candidates = [Candidate(A, (VALUES, WEB_VALUES))]
    others, healthy = {"plate-web-stg": WEB}, frozenset({"plate-web-stg"})
    on = narrowed("plate-api-stg", blamed(A), candidates, Clues(), API, others, True, healthy)
    off = narrowed("plate-api-stg", blamed(A), candidates, Clues(), API, others, False, healthy)
    sick = narrowed("plate-api-stg", blamed(A), candidates, Clues(), API, others, True, frozenset())
    assert dict(on.only) == {A.sha: (VALUES,)} and not on.also_touched
    assert not off.only and dict(off.also_touched) == {A.sha: ("plate-web-stg",)}
    assert not sick.only and dict(sick.also_touched) == {A.sha: ("plate-web-stg",)}  # web broke too, or unknown
