"""The git adapter's errors, named by what the caller does (RetryLater, NeedsHuman); never a credential."""

from __future__ import annotations

from pathlib import Path

import git

from watcher.domain import NeedsHuman, RetryLater, RevertState
from watcher.settings import without_credentials


class GitError(Exception):
    """Base of this adapter's errors; messages never contain credentials. Raised only as one of its subclasses,
    each also RetryLater or NeedsHuman: that is what the wings catch."""


class GitUnavailable(GitError, RetryLater):
    """Clone or fetch failed: the remote is unreachable or refused us."""


class RevisionUnreadable(GitError, RetryLater):
    """The clone cannot show a revision's files (not fetched yet, or gone from the remote)."""


class HostKeyRejected(GitUnavailable):
    """ssh refused the remote's host key: it changed since we first trusted it, or it is not in known_hosts."""


HOST_KEY_FAILURES = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED")


class RevertConflict(GitError, NeedsHuman):
    """The revert does not apply on the current head; nothing was committed or pushed."""

    outcome = RevertState.CONFLICT

    def __init__(self, files: list[str]):
        super().__init__(f"revert conflicts in {', '.join(files) or 'the working tree'}")
        self.files = files


class NothingToRevert(GitError, NeedsHuman):
    """Reverting changes nothing at the current head: the change is already undone."""

    outcome = RevertState.ALREADY_UNDONE


class SigningFailed(GitError, NeedsHuman):
    """WATCHER_REVERT__SIGNING_KEY_FILE is set but the revert could not be signed; nothing was committed."""

    outcome = RevertState.FAILED


class PushRejected(GitError, NeedsHuman):
    """The remote refused the push after the bounded retries (someone kept pushing, or no write access)."""

    outcome = RevertState.PUSH_FAILED


def _stderr(exc: git.GitCommandError) -> str:
    text = str(exc.stderr or exc).strip().replace("\n", " ")
    return without_credentials(text)[:300]


def _unavailable(step: str, exc: git.GitCommandError, known_hosts: Path) -> GitUnavailable:
    text = str(exc.stderr or exc)
    if any(failure in text for failure in HOST_KEY_FAILURES):
        changed = "CHANGED" in text
        return HostKeyRejected(
            f"{step} refused: the remote's host key "
            + ("differs from the one trusted in " if changed else "is not among the shipped forge keys nor in ")
            + f"{known_hosts}; someone may be posing as the git host. If the key really "
            + ("changed, remove the old line (ssh-keygen -R <host> -f <file>) and restart" if changed else "is right "
               "(compare ssh-keyscan's fingerprint with the one your git host publishes), give it in "
               "WATCHER_GIT__SSH_KNOWN_HOSTS_FILE, or set WATCHER_GIT__SSH_HOST_KEY_CHECKING=accept-new")
        )  # fmt: skip
    return GitUnavailable(f"{step} failed: {_stderr(exc)}")


def raise_if_timed_out(exc: git.GitCommandError, step: str) -> None:
    """A read GitPython killed at its deadline (kill_after_timeout) did not answer: its answer is unknown, never
    "no change". In a partial clone it was most likely fetching blobs the clone lacks from a silent remote."""
    if "Timeout: the command" in str(exc.stderr or ""):
        raise GitUnavailable(
            f"{step}: no answer within WATCHER_GIT__TIMEOUT_SECONDS (fetching file content from the remote?)"
        ) from None
