"""The watcher's own clone of the GitOps repo (GitPython): fetch, commit-graph, the history blame reads.

How git talks to the remote is git_transport, the revert (the one write) git_revert, the errors git_errors.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import git

from watcher.adapters import git_blobs
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
from watcher.domain import INCIDENT_TRAILER, REVERTS_TRAILER, ChangedCommit, Commit
from watcher.lease import ALONE_FENCE
from watcher.logs import get_logger
from watcher.ports import Fence, RevertResult
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

FIELD = "\x1f"
RECORD = "\x1e"
MAX_REVERT_CHAIN = 6  # revert, revert of the revert, ...: deeper chains are not worth the git calls
LOG_FORMAT = FIELD.join(["%H", "%an", "%cI", "%P", f"%(trailers:key={REVERTS_TRAILER},valueonly,separator=%x20)", "%s"])


class GitRepo:
    """A bare, partial clone that only this process writes; all methods are safe to call from any thread."""

    def __init__(self, cfg: GitSettings, revert: RevertSettings | None = None, fence: Fence = ALONE_FENCE):
        self.cfg = cfg
        revert = revert or RevertSettings()  # type: ignore[call-arg]
        # Only commits by this identity count as ours when a trailer is read back (crash recovery).
        self.identity = (revert.author_name, revert.author_email)
        self.path = Path(cfg.clone_dir)
        self.transport = GitTransport(cfg)
        self.known_hosts = self.transport.known_hosts
        self.trusted = self.transport.trusted  # (host, fingerprint) this process trusted on first use
        self.reverts = RevertWorktree(self, revert.signing_key_file, fence)  # the fence guards its pushes
        self._lock = threading.Lock()
        self._repo: git.Repo | None = None

    @property
    def remote_ref(self) -> str:
        return f"refs/remotes/origin/{self.cfg.branch}"

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
        """Clone or fetch, refresh the commit-graph, and return the branch head."""
        with self._lock:
            repo = self._open()
            with self.transport.watching():
                self.fetch(repo)
            # --split writes only the new commits as a layer: cheap after every fetch, fast path filters.
            repo.git.commit_graph("write", "--reachable", "--changed-paths", "--split")
            return self.rev(repo, self.remote_ref)

    def head(self) -> str:
        with self._lock:
            return self.rev(self._open(), self.remote_ref)

    @staticmethod
    def rev(repo: git.Repo, ref: str) -> str:
        try:
            return str(repo.git.rev_parse("--verify", ref + "^{commit}"))
        except git.GitCommandError:
            raise GitUnavailable(
                f"branch {ref.rsplit('/', 1)[-1]!r} not found on the remote; check WATCHER_GIT__BRANCH"
            ) from None

    def commits_touching(
        self, paths: Iterable[str], until: str, since: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        """Commits in (since, until] that changed any of `paths`, newest first (Bloom filters make it fast)."""
        args = [f"--format={LOG_FORMAT}"]
        if limit:
            args.append(f"--max-count={limit}")
        args.append(f"{since}..{until}" if since else until)
        args += ["--", *paths]
        with self._lock:
            out = self._open().git.log(*args)
        return [_parse(line) for line in out.splitlines() if line]

    def commit(self, sha: str) -> Commit | None:
        with self._lock:
            try:
                out = self._open().git.log("-1", f"--format={LOG_FORMAT}", sha, "--")
            except git.GitCommandError:
                return None
        return _parse(out) if out else None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        with self._lock:
            try:
                self._open().git.merge_base("--is-ancestor", ancestor, descendant)
                return True
            except git.GitCommandError:
                return False

    def changes(self, since: str, until: str, paths: Iterable[str], limit: int) -> tuple[list[ChangedCommit], bool]:
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
        with self._lock:
            out = self._open().git.log(*args)
        found = []
        for record in out.split(RECORD)[1:]:
            header, _, names = record.partition("\n")
            found.append(ChangedCommit(_parse(header), tuple(n for n in names.splitlines() if n)))
        return found[:limit], len(found) > limit

    def find_reverts(self, shas: Sequence[str]) -> dict[str, str]:
        """culprit sha -> the commit on the branch that undoes it now.

        A revert is our trailer or git's own "This reverts commit <sha>." line (a person's `git revert`). A
        revert that was itself reverted re-applies the change, so the chain counts only while it is odd.
        """
        found: dict[str, str] = {}
        with self._lock:
            repo = self._open()
            for sha in shas:
                chain = [sha]
                while len(chain) <= MAX_REVERT_CHAIN and (later := self._reverted_by(repo, chain[-1])):
                    chain.append(later)
                if len(chain) % 2 == 0:  # culprit, revert: undone; culprit, revert, revert of it: live again
                    found[sha] = chain[-1]
        return found

    def _reverted_by(self, repo: git.Repo, sha: str) -> str | None:
        """The oldest commit after `sha` on the branch whose message says it reverts `sha`."""
        greps = [f"--grep=^{REVERTS_TRAILER}: {sha}$", f"--grep=^This reverts commit {sha}"]
        try:
            out = repo.git.log("--format=%H", "--reverse", *greps, f"{sha}..{self.remote_ref}", "--")
        except git.GitCommandError:
            return None  # not on this branch's history
        return out.split()[0] if out.strip() else None

    def find_by_incident(self, incident_id: int, since: datetime) -> str | None:
        """Our commit on the branch (or a revert branch) that carries `Sync-Watcher-Incident: <id>`.

        Anyone can write the trailer; only a commit authored and committed as the watcher's identity is taken
        as the revert it made, so a forged trailer cannot make it believe a revert already landed.
        """
        with self._lock:
            out = self._open().git.log(
                f"--format=%H{FIELD}%an{FIELD}%ae{FIELD}%cn{FIELD}%ce",
                f"--grep=^{INCIDENT_TRAILER}: {incident_id}$",
                f"--since={since.isoformat()}",
                "--remotes=origin",
                "--",
            )
        for line in out.splitlines():
            sha, author, author_email, committer, committer_email = line.split(FIELD)
            if (author, author_email) == (committer, committer_email) == self.identity:
                return sha
        return None

    def revert(
        self,
        culprits: Sequence[Commit],
        message: str,
        author: tuple[str, str],
        push_branch: str | None,
        retries: int = 3,
    ) -> RevertResult:
        """See RevertWorktree.revert: the write path lives in its own module."""
        return self.reverts.revert(culprits, message, author, push_branch, retries)

    @contextmanager
    def locked(self) -> Iterator[git.Repo]:
        """The clone, with this repo's lock held: no fetch or read runs until the block ends."""
        with self._lock:
            yield self._open()

    def fetch(self, repo: git.Repo) -> None:
        try:
            repo.git.fetch("origin", "--prune", "--no-tags", kill_after_timeout=self._deadline)
        except git.GitCommandError as exc:
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

    def files_named(self, rev: str, directories: Iterable[str], names: Collection[str]) -> dict[str, str]:
        """Text of each file called one of `names` directly inside one of `directories` at `rev`."""
        with self._lock:
            repo = self._open()
            blobs = git_blobs.blobs_named(repo, rev, directories, names)
            return git_blobs.read(repo, blobs, self._deadline, self.cfg.partial_clone)


def _parse(line: str) -> Commit:
    sha, author, when, parents, reverts, subject = line.split(FIELD, 5)
    return Commit(sha, author, datetime.fromisoformat(when), subject, tuple(parents.split()), tuple(reverts.split()))
