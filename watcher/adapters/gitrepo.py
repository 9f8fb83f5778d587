"""The watcher's own clone of the GitOps repo (GitPython): fetch, commit-graph, commits touching paths."""

from __future__ import annotations

import base64
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import git

from watcher.adapters.signing import Signing, SigningUnavailable, signing_for
from watcher.domain import INCIDENT_TRAILER, REVERTS_TRAILER, ChangedCommit, Commit, RevertState
from watcher.logs import get_logger
from watcher.ports import NeedsHuman, RetryLater, RevertResult
from watcher.settings import GitSettings, RevertSettings, state_dir, without_credentials

FIELD = "\x1f"
RECORD = "\x1e"
MAX_REVERT_CHAIN = 6  # revert, revert of the revert, ...: deeper chains are not worth the git calls
LOG_FORMAT = FIELD.join(["%H", "%an", "%cI", "%P", f"%(trailers:key={REVERTS_TRAILER},valueonly,separator=%x20)", "%s"])


class GitError(Exception):
    """Base of this adapter's errors; messages never contain credentials."""


class GitUnavailable(GitError, RetryLater):
    """Clone or fetch failed: the remote is unreachable or refused us."""


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


class GitRepo:
    """A bare, partial clone that only this process writes; all methods are safe to call from any thread."""

    def __init__(self, cfg: GitSettings, revert: RevertSettings | None = None):
        self.cfg = cfg
        revert = revert or RevertSettings()  # type: ignore[call-arg]
        # Only commits by this identity count as ours when a trailer is read back (crash recovery).
        self.identity = (revert.author_name, revert.author_email)
        self.signing_key = revert.signing_key_file
        self._signing: Signing | None = None
        self.path = Path(cfg.clone_dir)
        self.known_hosts = cfg.ssh_known_hosts_file or state_dir(cfg) / "known_hosts"
        self.trusted: list[tuple[str, str]] = []  # (host, fingerprint) this process trusted on first use
        self._lock = threading.Lock()
        self._repo: git.Repo | None = None

    @property
    def remote_ref(self) -> str:
        return f"refs/remotes/origin/{self.cfg.branch}"

    def _env(self) -> dict[str, str]:
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GIT_SSH_COMMAND": shlex.join(self._ssh())}
        # Lazy blob fetches of the partial clone cannot be given a deadline per command: make HTTP(S)
        # transfers that stall (under 1 byte/s for 30 s) fail instead of waiting forever.
        env |= {"GIT_HTTP_LOW_SPEED_LIMIT": "1", "GIT_HTTP_LOW_SPEED_TIME": "30"}
        config: list[tuple[str, str]] = []
        if self.cfg.token:
            # The token goes in a header through the environment: never in the URL, argv or .git/config.
            raw = f"{self.cfg.token_username}:{self.cfg.token.get_secret_value()}".encode()
            config.append(("http.extraHeader", "Authorization: Basic " + base64.b64encode(raw).decode()))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config):
            env |= {f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value}
        return env

    def _ssh(self) -> list[str]:
        """The ssh command git runs for ssh:// and git@host: remotes: host keys checked unless set to off."""
        opts = ["ssh", "-o", "BatchMode=yes"]
        if self.cfg.ssh_key_file:
            opts += ["-i", str(self.cfg.ssh_key_file), "-o", "IdentitiesOnly=yes"]
        if self.cfg.ssh_host_key_checking == "off":
            return opts + ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        # A known_hosts file from the chart is the whole truth; otherwise trust on first use, kept on the volume.
        strict = "yes" if self.cfg.ssh_known_hosts_file else self.cfg.ssh_host_key_checking
        return opts + [
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"StrictHostKeyChecking={strict}",
            "-o", "HashKnownHosts=no",
        ]  # fmt: skip

    def _trusting(self) -> _HostKeyWatch:
        return _HostKeyWatch(self.known_hosts if self.cfg.ssh_host_key_checking != "off" else None, self.trusted)

    def _open(self) -> git.Repo:
        if self._repo is None:
            if (self.path / "HEAD").exists():
                self._repo = git.Repo(self.path)
                self._replace_if_another_remote(self._repo)
            if self._repo is None:
                self._clone()
            assert self._repo is not None
            self._repo.git.update_environment(**self._env())
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
        repo.git.update_environment(**self._env())
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
            with self._trusting():
                self._fetch(repo)
            # --split writes only the new commits as a layer: cheap after every fetch, fast path filters.
            repo.git.commit_graph("write", "--reachable", "--changed-paths", "--split")
            return self._rev(repo, self.remote_ref)

    def head(self) -> str:
        with self._lock:
            return self._rev(self._open(), self.remote_ref)

    @staticmethod
    def _rev(repo: git.Repo, ref: str) -> str:
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
        """Revert `culprits` (newest first) as one commit on the current remote head; push it to `push_branch`.

        With `push_branch=None` it is a dry run. A rejected push is retried on the new head, at most
        `retries` times. The scratch work tree is reset before and after: a conflict leaves nothing behind.
        """
        with self._lock:
            repo = self._open()
            for attempt in range(1, retries + 2):
                self._fetch(repo)
                base = self._rev(repo, self.remote_ref)
                tree = self._worktree(repo, base)
                try:
                    for c in culprits:
                        tree.revert("--no-commit", *(["-m", "1"] if c.is_merge else []), c.sha)
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
                try:
                    tree.push("origin", f"{sha}:refs/heads/{push_branch}", kill_after_timeout=self._deadline)
                except git.GitCommandError as exc:
                    self._clean(tree, base)
                    if attempt > retries:
                        raise PushRejected(f"push to {push_branch} refused {attempt} times: {_stderr(exc)}") from None
                    continue  # someone pushed first: redo the revert on their head
                try:
                    self._fetch(repo)
                except GitUnavailable:
                    pass  # the push landed; the next poll fetches it
                return RevertResult(sha, base, diffstat, attempt)
        raise AssertionError("unreachable")

    def _commit(self, tree: git.Git, base: str, message: str, identity: dict[str, str]) -> None:
        """Commit the staged revert, signed when a key is set; an unsigned revert is never made instead."""
        if not self.signing_key:
            tree.commit("-q", "--no-verify", "--no-gpg-sign", "-m", message, env=identity)
            return
        try:
            if self._signing is None:
                self._signing = signing_for(self.signing_key, state_dir(self.cfg) / "gnupg")
            signing = self._signing
            tree(c=list(signing.config)).commit(
                "-q", "--no-verify", f"--gpg-sign={signing.key_id}", "-m", message, env=identity | signing.env
            )
        except (SigningUnavailable, git.GitCommandError) as exc:
            self._clean(tree, base)
            detail = str(exc) if isinstance(exc, SigningUnavailable) else _stderr(exc)
            raise SigningFailed(f"revert not committed, nothing pushed: signing failed: {detail}") from None

    def _fetch(self, repo: git.Repo) -> None:
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
        return self.path.with_name(self.path.name + "-worktree")

    def _worktree(self, repo: git.Repo, base: str) -> git.Git:
        """A private work tree at `base`, cleaned of anything an earlier run (or crash) left."""
        path = self.worktree_path
        tree = git.Git(path)
        tree.update_environment(**self._env())
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

    def yaml_files(self, rev: str, directories: Iterable[str]) -> dict[str, str]:
        """Text of every *.yaml / *.yml file under `directories` at `rev`, read through one cat-file process."""
        dirs = sorted(set(directories))
        files: dict[str, str] = {}
        with self._lock:
            tree = self._open().commit(rev).tree
            for directory in dirs:
                try:
                    sub = tree / directory
                except KeyError:
                    continue
                for item in sub.traverse():
                    if isinstance(item, git.Blob) and str(item.path).endswith((".yaml", ".yml")):
                        files[str(item.path)] = item.data_stream.read().decode("utf-8", "replace")
        return files


def _parse(line: str) -> Commit:
    sha, author, when, parents, reverts, subject = line.split(FIELD, 5)
    return Commit(sha, author, datetime.fromisoformat(when), subject, tuple(parents.split()), tuple(reverts.split()))


def _stderr(exc: git.GitCommandError) -> str:
    text = str(exc.stderr or exc).strip().replace("\n", " ")
    return without_credentials(text)[:300]


def _unavailable(step: str, exc: git.GitCommandError, known_hosts: Path) -> GitUnavailable:
    text = str(exc.stderr or exc)
    if any(failure in text for failure in HOST_KEY_FAILURES):
        changed = "CHANGED" in text
        return HostKeyRejected(
            f"{step} refused: the remote's host key "
            + ("differs from the one trusted in " if changed else "is not in ")
            + f"{known_hosts}; someone may be posing as the git host. If the key really "
            + ("changed, remove the old line (ssh-keygen -R <host> -f <file>) and restart" if changed else "is right, "
               "add it to that file (ssh-keyscan) or set WATCHER_GIT__SSH_HOST_KEY_CHECKING=accept-new")
        )  # fmt: skip
    return GitUnavailable(f"{step} failed: {_stderr(exc)}")


class _HostKeyWatch:
    """Logs the fingerprint of every host key ssh trusted on first use while the block ran."""

    def __init__(self, known_hosts: Path | None, trusted: list[tuple[str, str]]):
        self.path = known_hosts
        self.trusted = trusted
        self.before: set[str] = set()

    def _lines(self) -> set[str]:
        try:
            text = self.path.read_text(encoding="utf-8") if self.path else ""
        except OSError:
            return set()
        return {line for line in text.splitlines() if line.strip() and not line.startswith("#")}

    def __enter__(self) -> _HostKeyWatch:
        self.before = self._lines()
        return self

    def __exit__(self, *exc: object) -> None:
        for line in sorted(self._lines() - self.before):
            host, _, key = line.partition(" ")
            fingerprint = _fingerprint(key)
            self.trusted.append((host, fingerprint))
            get_logger().warning("ssh_host_key_trusted", host=host, fingerprint=fingerprint, known_hosts=str(self.path))


def _fingerprint(key: str) -> str:
    try:
        found = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=key, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (ssh-keygen not found)"
    return found.stdout.split()[1] if found.returncode == 0 and found.stdout else "unknown"
