"""Pure: which watched branch an app follows, read from its sources' targetRevision, or why it follows none.

Blame, "is a fix on the branch", and the revert (push or pull-request base) all use the branch found here; an app
pinned to a tag, a commit or a semver range, or following a branch nobody watches, is never a reason to revert a
watched branch.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watcher.core.appmap import normalize_repo_url

HEAD_NAMES = frozenset({"", "HEAD"})  # Argo CD: the remote's default branch


@dataclass(frozen=True, slots=True)
class RemoteBranches:
    """What the remote said at one fetch: each watched branch's head, and what its HEAD points to."""

    heads: Mapping[str, str]  # watched branch -> head sha
    default: str | None = None  # the branch the remote's HEAD points to; None: the remote did not say
    names: frozenset[str] | None = None  # every branch the remote has; None: not asked


class Follow(enum.StrEnum):
    """How an app relates to the watched branches; every value but BRANCH is the policy rule that alerts."""

    BRANCH = "branch"  # a watched branch: blame and revert there
    PINNED = "pinned_revision"  # a tag, a commit, a semver range: nothing on a branch to revert
    UNWATCHED = "unwatched_branch"  # a branch that is not in WATCHER_GIT__BRANCHES
    MIXED = "mixed_branches"  # its sources in the watched repo follow different branches


@dataclass(frozen=True, slots=True)
class Following:
    kind: Follow
    branch: str | None = None  # the followed branch (kind BRANCH or UNWATCHED)
    targets: tuple[str, ...] = ()  # each watched-repo source's targetRevision, as written
    pinned: str | None = None  # the targetRevision that is no branch (kind PINNED)
    branches: tuple[str, ...] = ()  # the branches the sources follow (kind MIXED: more than one)
    note: str = ""  # how HEAD was resolved, when a source follows it
    head_assumed: bool = False  # the remote did not say its default branch: HEAD taken as the first watched

    def evidence(self) -> dict[str, Any]:
        return {
            "follows": self.kind.value,
            "branch": self.branch,
            "target_revisions": list(self.targets),
            "head": self.note or None,
            "head_assumed": self.head_assumed,
        }


def following(
    app: Mapping[str, Any], repo_url: str, watched: Sequence[str], remote: RemoteBranches | None = None
) -> Following:
    """The branch `app` deploys from the watched repo (`app` as appmap.mapping_fields keeps it; `watched` is never
    empty). An app with no source in the repo is defined only by its manifest, which lives on the first branch."""
    repo = normalize_repo_url(repo_url)
    spec = app.get("spec") or {}
    sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
    targets = tuple(
        str(s.get("targetRevision") or "").strip()
        for s in sources
        if isinstance(s, Mapping) and normalize_repo_url(str(s.get("repoURL", ""))) == repo
    )
    if not targets:
        return Following(Follow.BRANCH, watched[0])
    default = remote.default if remote is not None and remote.default else None
    note, assumed = "", False
    if HEAD_NAMES & set(targets):
        assumed = default is None
        note = (
            f"HEAD taken as {watched[0]}, the first watched branch: the remote did not say its default"
            if assumed
            else f"HEAD is the remote's default branch {default}"
        )
    default = default or watched[0]
    branches: list[str] = []
    for target in targets:
        branch = branch_of(target, watched, default, remote.names if remote else None)
        if branch is None:
            return Following(Follow.PINNED, targets=targets, pinned=target, note=note, head_assumed=assumed)
        if branch not in branches:
            branches.append(branch)
    if len(branches) > 1:
        return Following(Follow.MIXED, targets=targets, branches=tuple(branches), note=note, head_assumed=assumed)
    kind = Follow.BRANCH if branches[0] in watched else Follow.UNWATCHED
    return Following(kind, branches[0], targets, note=note, head_assumed=assumed)


def branch_of(target: str, watched: Sequence[str], default: str, remote_names: frozenset[str] | None) -> str | None:
    """The branch a targetRevision follows, or None when it names no branch (a tag, a commit, a semver range).

    A bare name is a branch when it is watched or the remote has a branch of that name; Argo CD would resolve
    it the same way. Unknown to the remote (or the remote not asked), it is taken as a pin: never a revert."""
    if target in HEAD_NAMES:
        return default
    if target.startswith("refs/heads/"):
        return target.removeprefix("refs/heads/")
    if target.startswith("refs/"):
        return None  # refs/tags/..., a pull request's ref
    if target in watched or (remote_names is not None and target in remote_names):
        return target
    return None
