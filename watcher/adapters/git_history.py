"""The history reads blame, narrowing, verification and crash recovery make of the clone: `git log`, `diff`,
`merge-base`. Each takes the open clone; the caller (GitRepo) holds its lock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import git

from watcher.domain import INCIDENT_TRAILER, REVERTS_TRAILER, ChangedCommit, Commit

FIELD = "\x1f"
RECORD = "\x1e"
MAX_REVERT_CHAIN = 6  # revert, revert of the revert, ...: deeper chains are not worth the git calls
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
    try:
        out = repo.git.log("-1", f"--format={LOG_FORMAT}", sha, "--")
    except git.GitCommandError:
        return None
    return _parse(out) if out else None


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
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


def find_reverts(repo: git.Repo, shas: Sequence[str], ref: str) -> dict[str, str]:
    """culprit sha -> the commit on `ref` that undoes it now.

    A revert is our trailer or git's own "This reverts commit <sha>." line (a person's `git revert`). A
    revert that was itself reverted re-applies the change, so the chain counts only while it is odd.
    """
    found: dict[str, str] = {}
    for sha in shas:
        chain = [sha]
        while len(chain) <= MAX_REVERT_CHAIN and (later := _reverted_by(repo, chain[-1], ref)):
            chain.append(later)
        if len(chain) % 2 == 0:  # culprit, revert: undone; culprit, revert, revert of it: live again
            found[sha] = chain[-1]
    return found


def _reverted_by(repo: git.Repo, sha: str, ref: str) -> str | None:
    """The oldest commit after `sha` on `ref` whose message says it reverts `sha`."""
    greps = [f"--grep=^{REVERTS_TRAILER}: {sha}$", f"--grep=^This reverts commit {sha}"]
    try:
        out = repo.git.log("--format=%H", "--reverse", *greps, f"{sha}..{ref}", "--")
    except git.GitCommandError:
        return None  # not on this branch's history
    return out.split()[0] if out.strip() else None


def find_by_incident(repo: git.Repo, incident_id: int, since: datetime, identity: tuple[str, str]) -> str | None:
    """Our commit on the branch (or a revert branch) that carries `Sync-Watcher-Incident: <id>`.

    Anyone can write the trailer; only a commit authored and committed as the watcher's `identity` is taken
    as the revert it made, so a forged trailer cannot make it believe a revert already landed.
    """
    out = repo.git.log(
        f"--format=%H{FIELD}%an{FIELD}%ae{FIELD}%cn{FIELD}%ce",
        f"--grep=^{INCIDENT_TRAILER}: {incident_id}$",
        f"--since={since.isoformat()}",
        "--remotes=origin",
        "--",
    )
    for line in out.splitlines():
        sha, author, author_email, committer, committer_email = line.split(FIELD)
        if (author, author_email) == (committer, committer_email) == identity:
            return sha
    return None


def patch(repo: git.Repo, sha: str, paths: Iterable[str], max_chars: int) -> str:
    """What `sha` changed in `paths` against its first parent (a merge: its whole branch), as a patch."""
    try:
        out = repo.git.diff(f"{sha}^1", sha, "--no-color", "--no-ext-diff", "--", *paths)
    except git.GitCommandError:
        return ""  # a root commit, or one the clone does not have: no text to narrow by
    return str(out)[:max_chars]


def _parse(line: str) -> Commit:
    sha, author, when, parents, reverts, subject = line.split(FIELD, 5)
    return Commit(sha, author, datetime.fromisoformat(when), subject, tuple(parents.split()), tuple(reverts.split()))
