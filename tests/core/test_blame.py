"""Blame is pure: commits with their changed files in, culprits (or why not) out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from watcher.core.blame import AppSources, BlameOutcome, blame, helm_dirs, last_good_revision, touches
from watcher.domain import ChangedCommit, Commit

T = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
API_STG = AppSources(
    (
        "environments/argocd/apps/plate-api-stg.yaml",
        "helm/applications/plate-api",
        "helm/applications/plate-api/values-stg.yaml",
        "helm/shared/common.yaml",
    ),
    ("helm/applications/plate-api",),
)
WEB_STG = AppSources(
    ("helm/applications/plate-web", "helm/applications/plate-web/values-stg.yaml"), ("helm/applications/plate-web",)
)


def change(sha: str, *files: str, parents: int = 1) -> ChangedCommit:
    return ChangedCommit(Commit(sha, "Dev", T, f"subject {sha}", tuple(f"p{i}" for i in range(parents))), files)


@pytest.mark.parametrize(
    "path, expected",
    [
        ("helm/applications/plate-api/values-stg.yaml", True),  # its own values file
        ("helm/applications/plate-api/values.yaml", True),  # the chart's defaults apply to every env
        ("helm/applications/plate-api/templates/deployment.yaml", True),
        ("helm/applications/plate-api/values-prod.yaml", False),  # another env's values cannot break stg
        ("helm/applications/plate-api-v2/values.yaml", False),  # a prefix is not a directory
        ("environments/argocd/apps/plate-api-stg.yaml", True),  # the Application manifest itself
        ("helm/shared/common.yaml", True),  # a value file outside the chart
        ("README.md", False),
    ],
)
def test_which_paths_touch_an_app(path: str, expected: bool) -> None:
    assert touches(path, API_STG) is expected


@pytest.mark.parametrize(
    "own, history, failing, expected",
    [
        (("a", "b"), ("x",), "c", ("b", "watcher")),
        (("a", "c"), (), "c", ("a", "watcher")),  # healthy briefly on the failing revision: skip it
        ((), ("x", "y", "c"), "c", ("y", "argocd_history")),
        ((), ("c",), "c", (None, "")),
        ((), (), "c", (None, "")),
    ],
)
def test_last_good_revision(own: tuple[str, ...], history: tuple[str, ...], failing: str, expected: object) -> None:
    assert last_good_revision(own, history, failing) == expected


CASES = [
    # (name, changes newest first, last_good, ancestor, max, truncated, outcome, culprits)
    (
        "single culprit",
        [change("c3", "helm/applications/plate-api/values-stg.yaml")],
        "g",
        True,
        3,
        False,
        BlameOutcome.CULPRITS,
        ["c3"],
    ),
    (
        "good commits to other apps are not culprits",
        [
            change("c4", "helm/applications/plate-web/values-stg.yaml"),
            change("c3", "helm/applications/plate-api/values-stg.yaml"),
            change("c2", "helm/applications/plate-api/values-prod.yaml"),
        ],
        "g",
        True,
        3,
        False,
        BlameOutcome.CULPRITS,
        ["c3"],
    ),
    (
        "two culprits, newest first",
        [
            change("c4", "helm/applications/plate-api/values-stg.yaml"),
            change("c3", "helm/applications/plate-api/templates/deployment.yaml"),
        ],
        "g",
        True,
        3,
        False,
        BlameOutcome.CULPRITS,
        ["c4", "c3"],
    ),
    (
        "merge commit is one candidate",
        [change("m1", "helm/applications/plate-api/values.yaml", "x", parents=2)],
        "g",
        True,
        3,
        False,
        BlameOutcome.CULPRITS,
        ["m1"],
    ),
    (
        "nothing touched the app",
        [change("c3", "helm/applications/plate-web/values-stg.yaml")],
        "g",
        True,
        3,
        False,
        BlameOutcome.NO_TOUCH,
        [],
    ),
    (
        "too many",
        [change(f"c{i}", "helm/applications/plate-api/values-stg.yaml") for i in range(4)],
        "g",
        True,
        3,
        False,
        BlameOutcome.TOO_MANY,
        [],
    ),
    (
        "git cut the list at the bound",
        [change(f"c{i}", "helm/applications/plate-api/values.yaml") for i in range(3)],
        "g",
        True,
        3,
        True,
        BlameOutcome.TOO_MANY,
        [],
    ),
    (
        "no known good revision",
        [change("c3", "helm/applications/plate-api/values-stg.yaml")],
        None,
        False,
        3,
        False,
        BlameOutcome.UNKNOWN,
        [],
    ),
    (
        "history rewritten",
        [change("c3", "helm/applications/plate-api/values-stg.yaml")],
        "g",
        False,
        3,
        False,
        BlameOutcome.UNKNOWN,
        [],
    ),
]


@pytest.mark.parametrize("name, changes, last_good, ancestor, bound, truncated, outcome, culprits", CASES)
def test_blame_outcomes(
    name: str,
    changes: list[ChangedCommit],
    last_good: str | None,
    ancestor: bool,
    bound: int,
    truncated: bool,
    outcome: BlameOutcome,
    culprits: list[str],
) -> None:
    b = blame(
        "plate-api-stg", "head", last_good, ancestor, changes, API_STG, {"plate-web-stg": WEB_STG}, bound, truncated
    )
    assert b.outcome is outcome, b.reason
    assert [c.sha for c in b.culprits] == culprits


def test_culprit_that_changed_other_apps_is_reported_as_such() -> None:
    both = change("c3", "helm/applications/plate-api/values-stg.yaml", "helm/applications/plate-web/values-stg.yaml")
    b = blame(
        "plate-api-stg", "head", "g", True, [both], API_STG, {"plate-web-stg": WEB_STG, "plate-api-stg": API_STG}, 3
    )
    assert b.also_touched == {"c3": ("plate-web-stg",)}
    assert b.evidence()["culprits"][0]["also_touched"] == ["plate-web-stg"]  # type: ignore[index]


def test_no_paths_is_unknown_not_innocent() -> None:
    b = blame("x", "head", "g", True, [change("c", "a")], AppSources(()), {}, 3)
    assert b.outcome is BlameOutcome.UNKNOWN


def test_helm_dirs_from_mapping_fields() -> None:
    spec = {
        "spec": {
            "sources": [
                {"path": "helm/applications/plate-api", "helm": {"valueFiles": ["values-stg.yaml"]}},
                {"path": "manifests/raw"},
            ]
        }
    }
    assert helm_dirs(spec, ("helm/applications/plate-api", "manifests/raw")) == ("helm/applications/plate-api",)
