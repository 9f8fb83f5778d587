"""The watcher's own clone of the GitOps repo (GitPython): clone, fetch, commit-graph, and its lock.

How git talks to the remote is git_transport, the history reads git_history, the files at a revision git_blobs,
the revert (the one write) git_revert, the errors git_errors.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import git

from watcher.adapters import git_blobs, git_content, git_history
from watcher.adapters.file_lock import CloneLock
from watcher.adapters.git_errors import (  # re-exported: callers name the errors from here
    GitError,
    GitUnavailable,
    HostKeyRejected,
    NothingToRevert,
    PushRejected,
    RevertConflict,
    SigningFailed,
    _unavailable,
)
from watcher.adapters.git_revert import RevertWorktree
from watcher.adapters.git_transport import GitTransport
from watcher.core.branches import RemoteBranches
from watcher.core.lease import ALONE_FENCE
from watcher.domain import ChangedCommit, Commit, RevertResult
from watcher.logs import get_logger
from watcher.ports import Fence
from watcher.settings import GitSettings, RevertSettings, without_credentials

__all__ = [
    "GitError",
    "GitRepo",
    "GitUnavailable",
    "HostKeyRejected",
    "NothingToRevert",
    "PushRejected",
    "RevertConflict",
    "SigningFailed",
]

MISSING_REF = re.compile(r"couldn't find remote ref refs/heads/(\S+)")


class GitRepo:
    """A bare, partial clone that only this process writes; all methods are safe to call from any thread."""

    def __init__(self, cfg: GitSettings, revert: RevertSettings | None = None, fence: Fence = ALONE_FENCE):
        self.cfg = cfg
        revert = revert or RevertSettings()  # type: ignore[call-arg]
        self.branches = cfg.watched_branches
        self.revert_prefix = revert.branch_prefix
        self.path = Path(cfg.clone_dir)
        self.transport = GitTransport(cfg)
        self.known_hosts = self.transport.known_hosts
        self.trusted = self.transport.trusted  # (host, fingerprint) this process trusted on first use
        self.reverts = RevertWorktree(self, revert.signing_key_file, fence)  # the fence guards its pushes
        # Threads of this process and other processes on the same directory (`run --once` beside the daemon).
        self._lock = CloneLock(self.path, 4 * cfg.timeout_seconds)
        self._repo: git.Repo | None = None

    def ref_of(self, branch: str | None = None) -> str:
        """The remote-tracking ref of a watched branch (None: the first, where app-of-apps manifests are read)."""
        return f"refs/remotes/origin/{branch or self.branches[0]}"

    def _open(self) -> git.Repo:
        if self._repo is None:
            if (self.path / "HEAD").exists():
                self._repo = git.Repo(self.path)
                self._replace_if_another_remote(self._repo)
            if self._repo is None:
                self._clone()
            assert self._repo is not None
            self._repo.git.update_environment(**self.transport.env())
        return self._repo

    def _replace_if_another_remote(self, repo: git.Repo) -> None:
        """The clone is a cache of one remote: after WATCHER_GIT__URL changed it would silently keep watching
        (and pushing reverts to) the old one. Start over from the configured remote instead."""
        try:
            url = str(repo.git.config("--get", "remote.origin.url"))
        except git.GitCommandError:
            url = ""
        if url == self.cfg.url:
            return
        get_logger().warning(
            "git_clone_replaced",
            clone_dir=str(self.path),
            was=without_credentials(url),
            now=without_credentials(self.cfg.url),
        )
        shutil.rmtree(self.path)
        shutil.rmtree(self.worktree_path, ignore_errors=True)
        self._repo = None

    def _clone(self) -> None:
        """init + fetch rather than `git clone`: GitPython can put a deadline on a fetch, not on a clone, and a
        fetch that was cut short is simply resumed by the next one (sync fetches right after this)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repo = git.Repo.init(self.path, bare=True)
        repo.git.update_environment(**self.transport.env())
        repo.git.remote("add", "origin", self.cfg.url)
        repo.git.config("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
        if self.cfg.partial_clone:  # git falls back to a full fetch if the server does not filter
            repo.git.config("remote.origin.promisor", "true")
            repo.git.config("remote.origin.partialclonefilter", "blob:none")
        repo.git.config("core.commitGraph", "true")
        self._repo = repo

    def sync(self) -> str:
        """Clone or fetch every watched branch, refresh the commit-graph, and return the first one's head."""
        with self._lock:
            return self.rev(self._fetched(), self.ref_of())

    def branch_heads(self) -> RemoteBranches:
        """Fetch as `sync` does, then ask the remote which branch its HEAD is (what Argo CD's `HEAD` and an empty
        targetRevision follow) and which branches it has, within what is left of the same deadline. A remote that
        does not say is no error: HEAD is then taken as the first watched branch, and the evidence says so."""
        with self._lock:
            started = time.monotonic()
            repo = self._fetched()
            heads = {b: self.rev(repo, self.ref_of(b)) for b in self.branches}
            left = self._deadline - (time.monotonic() - started)
            default, names = self._remote_head(repo, left) if left > 0 else (None, None)
            return RemoteBranches(heads, default, names)

    def _fetched(self) -> git.Repo:
        repo = self._open()
        with self.transport.watching():
            self.fetch(repo)
        # --split writes only the new commits as a layer: cheap after every fetch, fast path filters.
        repo.git.commit_graph("write", "--reachable", "--changed-paths", "--split")
        return repo

    def _remote_head(self, repo: git.Repo, deadline: float) -> tuple[str | None, frozenset[str] | None]:
        try:
            with self.transport.watching():
                out = repo.git.ls_remote("--symref", "origin", "HEAD", "refs/heads/*", kill_after_timeout=deadline)
        except git.GitCommandError as exc:
            error = _unavailable("ls-remote", exc, self.known_hosts)
            get_logger().warning("git_default_branch_unknown", error=str(error), head_taken_as=self.branches[0])
            return None, None
        return parse_ls_remote(str(out))

    def local_heads(self) -> dict[str, str]:
        """Each watched branch's head as last fetched (no fetch: the git poll fetches); {} before the first."""
        with self._lock:
            if self._repo is None and not (self.path / "HEAD").exists():
                return {}
            repo = self._open()
            return {b: self.rev(repo, self.ref_of(b)) for b in self.branches}

    def head(self) -> str:
        with self._lock:
            return self.rev(self._open(), self.ref_of())

    @staticmethod
    def rev(repo: git.Repo, ref: str) -> str:
        try:
            return str(repo.git.rev_parse("--verify", ref + "^{commit}"))
        except git.GitCommandError:
            raise GitUnavailable(
                f"branch {ref.removeprefix('refs/remotes/origin/')!r} not found on the remote; check "
                "WATCHER_GIT__BRANCHES (or WATCHER_GIT__BRANCH)"
            ) from None

    def commits_touching(
        self, paths: Iterable[str], until: str, since: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        """Commits in (since, until] that changed any of `paths`, newest first (git_history has each read)."""
        with self._lock:
            return git_history.commits_touching(self._open(), paths, until, since, limit)

    def commit(self, sha: str) -> Commit | None:
        """What the last fetch brought: a commit the partial clone lacks is None, never fetched lazily."""
        with self._lock:
            return git_history.commit(self._open(), sha)

    def fetch_commits(self, shas: Sequence[str]) -> None:
        with self._lock:
            try:
                self._open().git.fetch(
                    "origin", "--no-tags", "--no-write-fetch-head", *shas, kill_after_timeout=self._deadline
                )
            except git.GitCommandError as exc:
                get_logger().info(
                    "commits_not_fetched", count=len(shas), error=str(_unavailable("fetch", exc, self.known_hosts))
                )

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        with self._lock:
            return git_history.is_ancestor(self._open(), ancestor, descendant)

    def changes(self, since: str, until: str, paths: Iterable[str], limit: int) -> tuple[list[ChangedCommit], bool]:
        with self._lock:
            return git_history.changes(self._open(), since, until, paths, limit)

    def find_reverts(
        self, shas: Sequence[str], branch: str | None = None, paths: Sequence[str] = (), at: str | None = None
    ) -> dict[str, str]:
        """culprit sha -> the commit on `branch` (None: the first watched; `at`: up to that revision instead of
        the head) after which its change in `paths` is no longer there: decided by content
        (git_content.undone_on), never by a message or a trailer."""
        with self._lock:
            repo = self._open()
            return git_content.undone_on(repo, shas, at or self.rev(repo, self.ref_of(branch)), paths, self._deadline)

    def confirmed_reverts(self, commit: Commit) -> tuple[str, ...]:
        """The commits `commit` says it reverts (its trailer: a hint), if its content undoes them; else ()."""
        if not commit.reverts:
            return ()
        with self._lock:
            return (
                commit.reverts if git_content.reverts(self._open(), commit.sha, commit.reverts, self._deadline) else ()
            )

    def find_by_incident(self, uid: str, culprits: Sequence[str], since: datetime) -> str | None:
        """The revert of incident `uid` (crash recovery): its trailer, and content that undoes `culprits`."""
        with self._lock:
            return git_content.find_by_incident(self._open(), uid, culprits, since.isoformat(), self._deadline)

    def patch(self, sha: str, paths: Iterable[str], max_chars: int = 200_000) -> str:
        with self._lock:
            return git_history.patch(self._open(), sha, paths, max_chars, self._deadline)

    def revert(
        self,
        culprits: Sequence[Commit],
        message: str,
        author: tuple[str, str],
        push_branch: str | None,
        retries: int = 3,
        onto: str | None = None,
        only: Mapping[str, Sequence[str]] | None = None,
    ) -> RevertResult:
        """See RevertWorktree.revert: the write path lives in its own module."""
        branch = onto or self.branches[0]
        return self.reverts.revert(culprits, message, author, push_branch, retries, branch, only or {})

    @contextmanager
    def locked(self) -> Iterator[git.Repo]:
        """The clone, with this repo's lock held: no fetch or read runs until the block ends."""
        with self._lock:
            yield self._open()

    def fetch(self, repo: git.Repo) -> None:
        """One fetch of the watched branches and of our revert branches (crash recovery looks for a revert's
        trailer there), not of every branch on the remote."""
        refspecs = [f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in self.branches]
        if self.revert_prefix:
            refspecs.append(f"+refs/heads/{self.revert_prefix}*:refs/remotes/origin/{self.revert_prefix}*")
        try:
            repo.git.fetch("origin", "--prune", "--no-tags", *refspecs, kill_after_timeout=self._deadline)
        except git.GitCommandError as exc:
            if missing := MISSING_REF.search(str(exc.stderr or "")):
                raise GitUnavailable(
                    f"fetch failed: branch {missing[1]!r} not found on the remote; check WATCHER_GIT__BRANCHES "
                    "(or WATCHER_GIT__BRANCH)"
                ) from None
            first = not repo.git.for_each_ref("--count=1", "refs/remotes/origin").strip()
            raise _unavailable("clone" if first else "fetch", exc, self.known_hosts) from None

    @property
    def _deadline(self) -> float:
        """Seconds a command that talks to the remote may take: git has no overall timeout of its own, and a
        remote that accepts and never answers would hold the git lock (and every reader behind it) forever."""
        return self.cfg.timeout_seconds

    @property
    def worktree_path(self) -> Path:
        return self.reverts.worktree_path

    def yaml_files(self, rev: str, directories: Iterable[str]) -> dict[str, str]:
        """Text of every *.yaml / *.yml file under `directories` at `rev` (blobs fetched in one batch)."""
        with self._lock:
            repo = self._open()
            blobs = git_blobs.blobs_under(repo, rev, directories, lambda path: path.endswith((".yaml", ".yml")))
            return git_blobs.read(repo, blobs, self._deadline, self.cfg.partial_clone)

    def files_under(self, rev: str, directories: Iterable[str]) -> dict[str, str]:
        """Text of every file under `directories` at `rev`: what Helm reads to render a chart there."""
        with self._lock:
            repo = self._open()
            blobs = git_blobs.blobs_under(repo, rev, directories, lambda path: True)
            return git_blobs.read(repo, blobs, self._deadline, self.cfg.partial_clone)

    def files_named(self, rev: str, directories: Iterable[str], names: Collection[str]) -> dict[str, str]:
        """Text of each file called one of `names` directly inside one of `directories` at `rev`."""
        with self._lock:
            repo = self._open()
            blobs = git_blobs.blobs_named(repo, rev, directories, names)
            return git_blobs.read(repo, blobs, self._deadline, self.cfg.partial_clone)


def parse_ls_remote(out: str) -> tuple[str | None, frozenset[str]]:
    """`git ls-remote --symref origin HEAD refs/heads/*` -> the branch HEAD points to (None: the remote did not
    say, e.g. its HEAD names a branch that does not exist) and every branch name."""
    default = None
    names: set[str] = set()
    for line in out.splitlines():
        left, _, ref = line.partition("\t")
        if left.startswith("ref: refs/heads/") and ref == "HEAD":
            default = left.removeprefix("ref: refs/heads/")
        elif ref.startswith("refs/heads/"):
            names.add(ref.removeprefix("refs/heads/"))
    return (default if default in names else None), frozenset(names)
