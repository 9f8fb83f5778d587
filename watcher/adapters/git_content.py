"""What git content says about a change: is it still on the branch, and does a commit undo others.

Messages, trailers and identities are only hints here (core/undo.py says why); these reads compare trees.
Every function runs under the clone's lock (GitRepo holds it) and reads only what the clone has or the
reverter already reads (blobs of the culprit's files). In a partial clone a diff or an apply fetches the blobs it
lacks on its own, with no deadline of git's: each command that reads content is killed after `timeout` seconds
(the git timeout), so a silent remote cannot hold the lock, and every poll behind it, for good; the read then
raises GitUnavailable (unknown), never answers "no change" or "not undone".
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import git

from watcher.adapters.git_errors import raise_if_timed_out
from watcher.core.undo import Delta, delta_of_diff, undoes
from watcher.domain import INCIDENT_TRAILER

DELTA_ARGS = (
    "--no-color",
    "--no-ext-diff",
    "--no-renames",
    "-U0",
    "--full-index",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


def delta(repo: git.Repo, sha: str, timeout: float, paths: Sequence[str] = ()) -> Delta:
    """What `sha` changed against its first parent (a merge: its branch), in `paths` (empty: everywhere)."""
    try:
        out = repo.git(c="core.quotePath=false").diff(
            *DELTA_ARGS, f"{sha}^1", sha, "--", *paths, kill_after_timeout=timeout
        )
    except git.GitCommandError as exc:
        raise_if_timed_out(exc, f"diff of {sha[:12]}")
        return {}  # a root commit, or one the clone lacks: nothing it can be shown to undo
    return delta_of_diff(str(out))


def reverts(repo: git.Repo, sha: str, claimed: Sequence[str], timeout: float) -> bool:
    """Is `sha` the inverse of `claimed` (added up) on every file it touched, touching no other file?
    A revert that undid only some files of a culprit (a split revert) counts: the rest of it is not compared."""
    mine = delta(repo, sha, timeout)
    if not mine or not claimed:
        return False
    return undoes(mine, [delta(repo, c, timeout, tuple(mine)) for c in claimed])


def undone_at(repo: git.Repo, sha: str, head: str, paths: Sequence[str], timeout: float) -> bool:
    """Is `sha`'s change in `paths` no longer at `head`? Asked of git apply on a scratch index of `head`: the
    change cannot be taken out (it is not there) and could be put back (what it replaced is there again).
    Both failing means later commits changed those lines again: not undone, whatever a message says."""
    try:
        patch = str(
            repo.git.diff(
                "--binary", "--full-index", "--no-color", "--no-renames", f"{sha}^1", sha, "--", *paths,
                kill_after_timeout=timeout,
            )
        )  # fmt: skip
    except git.GitCommandError as exc:
        raise_if_timed_out(exc, f"diff of {sha[:12]}")
        return False
    if not patch.strip():
        return False
    with tempfile.TemporaryDirectory(prefix="sync-watcher-undo-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        patch_file = Path(scratch) / "change.patch"
        patch_file.write_text(patch + "\n", encoding="utf-8")  # GitPython strips the last newline git apply needs
        repo.git.read_tree(head, env=env)
        if _applies(repo, patch_file, env, timeout, reverse=True):
            return False
        return _applies(repo, patch_file, env, timeout, reverse=False)


def _applies(repo: git.Repo, patch: Path, env: dict[str, str], timeout: float, reverse: bool) -> bool:
    try:
        args = ["--cached", "--check", *(["-R"] if reverse else []), str(patch)]
        repo.git.apply(*args, env=env, kill_after_timeout=timeout)
        return True
    except git.GitCommandError as exc:
        raise_if_timed_out(exc, "apply --check")
        return False


def last_change(repo: git.Repo, sha: str, head: str, paths: Sequence[str]) -> str:
    """The newest commit after `sha` up to `head` that changed what `sha` changed in `paths`: what undid it."""
    try:
        files = str(repo.git.diff("--name-only", "--no-renames", f"{sha}^1", sha, "--", *paths)).split("\n")
        out = str(repo.git.log("-1", "--format=%H", f"{sha}..{head}", "--", *[f for f in files if f]))
    except git.GitCommandError:
        return head
    return out.strip() or head


def undone_on(repo: git.Repo, shas: Sequence[str], head: str, paths: Sequence[str], timeout: float) -> dict[str, str]:
    """culprit sha -> the commit after which its change in `paths` is no longer at `head` (undone_at)."""
    return {sha: last_change(repo, sha, head, paths) for sha in shas if undone_at(repo, sha, head, paths, timeout)}


def find_by_incident(
    repo: git.Repo, uid: str, culprits: Sequence[str], since: str, timeout: float, where: str = "--remotes=origin"
) -> str | None:
    """The commit since `since` (a git date) on `where` (any remote branch, or one ref) that carries
    `Sync-Watcher-Incident: <uid>` and undoes `culprits` by content. Name and email are not looked at: anyone
    types them, and a trailer alone proves nothing."""
    if not uid:
        return None
    out = repo.git.log("--format=%H", f"--grep=^{INCIDENT_TRAILER}: {uid}$", f"--since={since}", where, "--")
    return next((sha for sha in str(out).split() if reverts(repo, sha, culprits, timeout)), None)
