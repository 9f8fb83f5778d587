"""Which watched branch an app follows, from its sources' targetRevision: pure tables."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.adapters.gitrepo import parse_ls_remote
from watcher.core.appmap import mapping_fields
from watcher.core.branches import Follow, Following, RemoteBranches, following

REPO = "https://github.com/plate/gitops"
WATCHED = ("main", "release-1.x")
REMOTE = RemoteBranches({"main": "a" * 40, "release-1.x": "b" * 40}, "main", frozenset({*WATCHED, "release-0.9"}))
CHART = {"repoURL": "https://charts.example.com", "chart": "redis", "targetRevision": "19.0.1"}  # another repo


def app(*targets: str | None) -> dict[str, Any]:
    """An Application with a Helm chart from elsewhere and one source in the watched repo per target."""
    ours = [{"repoURL": "git@github.com:plate/gitops.git", "path": f"helm/api{i}"} for i, _ in enumerate(targets)]
    for source, target in zip(ours, targets, strict=True):
        if target is not None:
            source["targetRevision"] = target
    return mapping_fields({"metadata": {"name": "plate-api-stg"}, "spec": {"sources": [CHART, *ours]}})


@pytest.mark.parametrize(
    ("target", "kind", "branch"),
    [
        ("main", Follow.BRANCH, "main"),
        ("refs/heads/main", Follow.BRANCH, "main"),
        ("release-1.x", Follow.BRANCH, "release-1.x"),
        ("refs/heads/release-1.x", Follow.BRANCH, "release-1.x"),
        ("HEAD", Follow.BRANCH, "main"),  # the remote's default branch
        ("", Follow.BRANCH, "main"),
        (None, Follow.BRANCH, "main"),  # no targetRevision at all: Argo CD's HEAD
        ("release-0.9", Follow.UNWATCHED, "release-0.9"),  # the remote has it; nobody watches it
        ("refs/heads/feature/x", Follow.UNWATCHED, "feature/x"),  # a branch, by its full name
        ("v1.4.0", Follow.PINNED, None),  # a tag
        ("refs/tags/v1.4.0", Follow.PINNED, None),
        ("3f2a9c1e", Follow.PINNED, None),  # a commit
        ("3f2a9c1e" * 5, Follow.PINNED, None),
        (">=1.2.0 <2.0.0", Follow.PINNED, None),  # a semver range over tags
        ("1.2.*", Follow.PINNED, None),
    ],
)
def test_the_followed_branch_from_one_target_revision(target: str | None, kind: Follow, branch: str | None) -> None:
    found = following(app(target), REPO, WATCHED, REMOTE)
    assert (found.kind, found.branch) == (kind, branch)
    if kind is Follow.PINNED:
        assert found.pinned == target


@pytest.mark.parametrize(
    ("targets", "kind", "branch"),
    [
        (("main", "HEAD", ""), Follow.BRANCH, "main"),  # three spellings of one branch
        (("release-1.x", "refs/heads/release-1.x"), Follow.BRANCH, "release-1.x"),
        (("main", "release-1.x"), Follow.MIXED, None),  # a revert on one branch would not be the whole fix
        (("main", "release-0.9"), Follow.MIXED, None),
        (("main", "v1.4.0"), Follow.PINNED, None),  # any pinned source: nothing on a branch is the whole story
        (("release-0.9", "release-0.9"), Follow.UNWATCHED, "release-0.9"),
    ],
)
def test_an_app_with_several_sources_in_the_repo(targets: tuple[str, ...], kind: Follow, branch: str | None) -> None:
    found = following(app(*targets), REPO, WATCHED, REMOTE)
    assert (found.kind, found.branch) == (kind, branch)
    assert found.targets == targets
    if kind is Follow.MIXED:
        assert len(found.branches) == 2


def test_an_app_without_a_source_in_the_repo_follows_the_first_branch_where_its_manifest_lives() -> None:
    chart_only = mapping_fields({"metadata": {"name": "redis"}, "spec": {"source": CHART}})
    assert following(chart_only, REPO, WATCHED, REMOTE) == Following(Follow.BRANCH, "main")


@pytest.mark.parametrize(
    ("remote", "kind", "branch", "assumed", "note"),
    [
        (REMOTE, Follow.BRANCH, "main", False, "HEAD is the remote's default branch main"),
        (RemoteBranches({}, "release-1.x"), Follow.BRANCH, "release-1.x", False, "default branch release-1.x"),
        (RemoteBranches({}, "master"), Follow.UNWATCHED, "master", False, "default branch master"),
        (RemoteBranches({}, None), Follow.BRANCH, "main", True, "HEAD taken as main, the first watched branch"),
        (None, Follow.BRANCH, "main", True, "the remote did not say"),  # git not read (yet)
    ],
)
def test_head_is_the_remotes_default_branch_or_said_to_be_assumed(
    remote: RemoteBranches | None, kind: Follow, branch: str, assumed: bool, note: str
) -> None:
    found = following(app("HEAD"), REPO, WATCHED, remote)
    assert (found.kind, found.branch, found.head_assumed) == (kind, branch, assumed)
    assert note in found.note
    assert found.evidence()["head_assumed"] is assumed


def test_a_bare_name_the_remote_was_not_asked_about_is_taken_as_a_pin_never_a_revert() -> None:
    unknown = RemoteBranches({"main": "a" * 40}, "main", None)
    assert following(app("release-0.9"), REPO, WATCHED, unknown).kind is Follow.PINNED
    assert following(app("release-1.x"), REPO, WATCHED, unknown).kind is Follow.BRANCH  # watched: a branch


@pytest.mark.parametrize(
    ("out", "default", "names"),
    [
        (
            "ref: refs/heads/main\tHEAD\naaa\tHEAD\naaa\trefs/heads/main\nbbb\trefs/heads/release-1.x\n",
            "main",
            {"main", "release-1.x"},
        ),
        ("aaa\trefs/heads/main\n", None, {"main"}),  # HEAD names a branch that does not exist: not advertised
        ("ref: refs/heads/gone\tHEAD\naaa\trefs/heads/main\n", None, {"main"}),
        ("", None, set()),
    ],
)
def test_the_remotes_default_branch_from_ls_remote(out: str, default: str | None, names: set[str]) -> None:
    assert parse_ls_remote(out) == (default, frozenset(names))
