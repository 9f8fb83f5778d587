"""The history reads blame, narrowing, verification and crash recovery make of the clone: `git log`, `diff`,
`merge-base`. Each takes the open clone; the caller (GitRepo) holds its lock."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import git

from watcher.adapters.git_errors import raise_if_timed_out
from watcher.domain import REVERTS_TRAILER, ChangedCommit, Commit

FIELD = "\x1f"
RECORD = "\x1e"
# A read that must not reach the network: a partial clone fetches a missing object from its promisor remote
# on demand, with no deadline (47 s against a silent remote, all detection waiting). No transport allowed: the
# read fails at once instead. (GIT_NO_LAZY_FETCH says it directly, from git 2.44; Debian 12 ships 2.39.)
LOCAL_ONLY = {"GIT_ALLOW_PROTOCOL": "none"}
LOG_FORMAT = FIELD.join(["%H", "%an", "%cI", "%P", f"%(trailers:key={REVERTS_TRAILER},valueonly,separator=%x20)", "%s"])


def commits_touching(
    repo: git.Repo, paths: Iterable[str], until: str, since: str | None = None, limit: int | None = None
) -> list[Commit]:
    """Commits in (since, until] that changed any of `paths`, newest first (Bloom filters make it fast)."""
    args = [f"--format={LOG_FORMAT}"]
    if limit:
        args.append(f"--max-count={limit}")
    args.append(f"{since}..{until}" if since else until)
    args += ["--", *paths]
    out = repo.git.log(*args)
    return [_parse(line) for line in out.splitlines() if line]


def commit(repo: git.Repo, sha: str) -> Commit | None:
    """What the last fetch brought: a commit the partial clone lacks is None, never fetched lazily."""
    try:
        out = repo.git.log("-1", f"--format={LOG_FORMAT}", sha, "--", env=LOCAL_ONLY)
    except git.GitCommandError:
        return None
    return _parse(out) if out else None


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    """False for a commit the last fetch did not bring: merge-base would fetch it lazily, under the clone's lock and
    with no deadline (the verifier asks about Argo CD's revision every pass; the next git poll brings it)."""
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant, env=LOCAL_ONLY)
        return True
    except git.GitCommandError:
        return False


def changes(
    repo: git.Repo, since: str, until: str, paths: Iterable[str], limit: int
) -> tuple[list[ChangedCommit], bool]:
    """Mainline commits in (since, until] that changed `paths`, newest first, with every file each changed.

    A merge counts as one commit whose change is its diff against the first parent (what `revert -m 1`
    undoes). Returns the commits and whether `limit` cut the list short.
    """
    args = [
        "--first-parent",
        "--diff-merges=first-parent",
        "--full-diff",
        "--name-only",
        "--no-renames",
        f"--max-count={limit + 1}",
        f"--format={RECORD}{LOG_FORMAT}",
        f"{since}..{until}",
        "--",
        *paths,
    ]
    out = repo.git.log(*args)
    found = []
    for record in out.split(RECORD)[1:]:
        header, _, names = record.partition("\n")
        found.append(ChangedCommit(_parse(header), tuple(n for n in names.splitlines() if n)))
    return found[:limit], len(found) > limit


def patch(repo: git.Repo, sha: str, paths: Iterable[str], max_chars: int, timeout: float) -> str:
    """What `sha` changed in `paths` against its first parent (a merge: its whole branch), as a patch. A partial
    clone fetches the blobs it lacks on its own, with no deadline of git's: killed after `timeout` seconds
    (GitUnavailable: unknown, not an empty change)."""
    try:
        out = repo.git.diff(f"{sha}^1", sha, "--no-color", "--no-ext-diff", "--", *paths, kill_after_timeout=timeout)
    except git.GitCommandError as exc:
        raise_if_timed_out(exc, f"diff of {sha[:12]}")
        return ""  # a root commit, or one the clone does not have: no text to narrow by
    return str(out)[:max_chars]


def _parse(line: str) -> Commit:
    sha, author, when, parents, reverts, subject = line.split(FIELD, 5)
    return Commit(sha, author, datetime.fromisoformat(when), subject, tuple(parents.split()), tuple(reverts.split()))
