"""The one git path that writes to the remote: revert culprits on the current head in a private work tree,
commit (signed when a key is set), push, and redo it on the new head when someone pushed first.

With two replicas the push is fenced and idempotent: the fence (ports.Fence) is asked right before every push,
and every attempt first looks for this incident's revert already on the branch. A push a dead or cut-off
leader left in flight either lands first (this attempt finds it and adopts it) or is refused by the remote
because the branch moved under it (a push only lands on the head it was made on): never two reverts."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import git

from watcher.adapters import git_content
from watcher.adapters.git_errors import NothingToRevert, PushRejected, RevertConflict, SigningFailed, _stderr
from watcher.adapters.git_transport import GitTransport
from watcher.adapters.signing import Signing, SigningUnavailable, signing_for
from watcher.core.lease import ALONE_FENCE
from watcher.domain import INCIDENT_TRAILER, Commit, NotLeader, RetryLater, RevertResult
from watcher.ports import Fence
from watcher.settings import GitSettings, state_dir


class Clone(Protocol):
    """What the revert needs of the watcher's clone (GitRepo): the clone under its lock, a fetch, a ref."""

    cfg: GitSettings
    path: Path
    transport: GitTransport

    def ref_of(self, branch: str | None = None) -> str: ...
    def locked(self) -> AbstractContextManager[git.Repo]: ...
    def fetch(self, repo: git.Repo) -> None: ...
    def rev(self, repo: git.Repo, ref: str) -> str: ...


class RevertWorktree:
    """Reverts through `repo`'s clone, under its lock (no fetch or read of the clone runs meanwhile)."""

    def __init__(self, repo: Clone, signing_key: Path | None, fence: Fence = ALONE_FENCE):
        self.repo = repo
        self.signing_key = signing_key
        self.fence = fence
        self._signing: Signing | None = None

    def revert(
        self,
        culprits: Sequence[Commit],
        message: str,
        author: tuple[str, str],
        push_branch: str | None,
        retries: int,
        onto: str,
        only: Mapping[str, Sequence[str]] | None = None,
    ) -> RevertResult:
        """Revert `culprits` (newest first) as one commit on the current head of `onto`; push it to `push_branch`
        (`onto` itself in push mode, a revert branch whose pull request targets `onto` otherwise).

        `only` limits a culprit's revert to some of its files (sha -> paths): the reverse of what it changed
        there, applied with a three-way merge as `git revert` would; its other files keep their change.
        With `push_branch=None` it is a dry run. A rejected push is retried on the new head, at most
        `retries` times. The scratch work tree is reset before and after: a conflict leaves nothing behind.
        """
        with self.repo.locked() as repo:
            for attempt in range(1, retries + 2):
                if attempt > 1 and not self.fence.confirm():  # a rejected push: redo it only as the leader
                    raise NotLeader("not the leader any more: the push was refused and is not redone")
                self.repo.fetch(repo)
                base = self.repo.rev(repo, self.repo.ref_of(onto))
                landed = self._landed(repo, message, culprits, onto) if push_branch == onto else None
                if landed is not None:
                    diffstat = str(repo.git.show("--stat", "--format=", landed)).strip()
                    return RevertResult(landed, str(repo.git.rev_parse(f"{landed}^")), diffstat, attempt, adopted=True)
                tree = self._worktree(repo, base)
                try:
                    for c in culprits:
                        self._undo(tree, c, (only or {}).get(c.sha))
                except git.GitCommandError:
                    conflicted = tree.diff("--name-only", "--diff-filter=U").split()
                    self._clean(tree, base)
                    raise RevertConflict(conflicted) from None
                if not tree.diff("--cached", "--name-only").strip():
                    self._clean(tree, base)
                    raise NothingToRevert("the reverted change is already undone at the branch head")
                name, email = author
                identity = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
                identity |= {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
                self._commit(tree, base, message, identity)
                sha = str(tree.rev_parse("HEAD"))
                diffstat = str(tree.show("--stat", "--format=", "HEAD")).strip()
                if push_branch is None:
                    self._clean(tree, base)
                    return RevertResult(None, base, diffstat, attempt)
                if not self.fence.confirm():
                    self._clean(tree, base)
                    raise NotLeader("not the leader any more: nothing pushed; the leader decides again")
                try:
                    tree.push(
                        "origin", f"{sha}:refs/heads/{push_branch}", kill_after_timeout=self.repo.cfg.timeout_seconds
                    )
                except git.GitCommandError as exc:
                    self._clean(tree, base)
                    if attempt > retries:
                        raise PushRejected(f"push to {push_branch} refused {attempt} times: {_stderr(exc)}") from None
                    continue  # someone pushed first: redo the revert on their head
                try:
                    self.repo.fetch(repo)
                except RetryLater:
                    pass  # the push landed; the next poll fetches it
                return RevertResult(sha, base, diffstat, attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _undo(tree: git.Git, c: Commit, paths: Sequence[str] | None) -> None:
        """Stage the undoing of `c` (a merge: of its branch), whole or only in `paths`."""
        if not paths:
            tree.revert("--no-commit", *(["-m", "1"] if c.is_merge else []), c.sha)
            return
        patch = str(tree.diff(f"{c.sha}^1", c.sha, "--binary", "--no-color", "--", *paths))
        if not patch.strip():
            return
        with tempfile.NamedTemporaryFile("w", suffix=".patch", encoding="utf-8") as f:
            f.write(patch + "\n")  # GitPython strips the output's last newline; git apply needs it
            f.flush()
            tree.apply("-R", "--3way", "--index", f.name)

    def _landed(self, repo: git.Repo, message: str, culprits: Sequence[Commit], onto: str) -> str | None:
        """This incident's revert among the branch's recent commits (pushed by an earlier leader whose push
        landed late): its random `Sync-Watcher-Incident` trailer, and content that undoes the culprits
        (git_content.reverts). Never name or email: anyone types those, and an old revert of another app by
        this bot, or another watcher's, must not be taken for this one."""
        prefix = f"{INCIDENT_TRAILER}: "
        uid = next((line.removeprefix(prefix) for line in message.splitlines() if line.startswith(prefix)), "")
        shas = [c.sha for c in culprits]
        timeout = self.repo.cfg.timeout_seconds
        return git_content.find_by_incident(repo, uid, shas, "7.days", timeout, self.repo.ref_of(onto))

    def _commit(self, tree: git.Git, base: str, message: str, identity: dict[str, str]) -> None:
        """Commit the staged revert, signed when a key is set; an unsigned revert is never made instead."""
        if not self.signing_key:
            tree.commit("-q", "--no-verify", "--no-gpg-sign", "-m", message, env=identity)
            return
        try:
            if self._signing is None:
                self._signing = signing_for(self.signing_key, state_dir(self.repo.cfg) / "gnupg")
            signing = self._signing
            tree(c=list(signing.config)).commit(
                "-q", "--no-verify", f"--gpg-sign={signing.key_id}", "-m", message, env=identity | signing.env
            )
        except (SigningUnavailable, git.GitCommandError) as exc:
            self._clean(tree, base)
            detail = str(exc) if isinstance(exc, SigningUnavailable) else _stderr(exc)
            raise SigningFailed(f"revert not committed, nothing pushed: signing failed: {detail}") from None

    @property
    def worktree_path(self) -> Path:
        return self.repo.path.with_name(self.repo.path.name + "-worktree")

    def _worktree(self, repo: git.Repo, base: str) -> git.Git:
        """A private work tree at `base`, cleaned of anything an earlier run (or crash) left."""
        path = self.worktree_path
        tree = git.Git(path)
        tree.update_environment(**self.repo.transport.env())
        if (path / ".git").exists():
            try:
                self._clean(tree, base)
                return tree
            except git.GitCommandError:
                shutil.rmtree(path)  # left by another clone of the repo: make a new one
        repo.git.worktree("prune")
        repo.git.worktree("add", "--detach", "--force", str(path), base)
        self._clean(tree, base)
        return tree

    @staticmethod
    def _clean(tree: git.Git, base: str) -> None:
        try:
            tree.revert("--quit")
        except git.GitCommandError:
            pass  # no revert in progress
        tree.reset("-q", "--hard", base)
        tree.clean("-q", "-fdx")
