"""The watcher's own clone of the GitOps repo (GitPython): fetch, commit-graph, commits touching paths."""

from __future__ import annotations

import base64
import shlex
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import git

from watcher.domain import Commit
from watcher.settings import GitSettings

FIELD = "\x1f"
LOG_FORMAT = FIELD.join(["%H", "%an", "%cI", "%P", "%s"])


class GitError(Exception):
    """Base of this adapter's errors; messages never contain credentials."""


class GitUnavailable(GitError):
    """Clone or fetch failed: the remote is unreachable or refused us."""


class GitRepo:
    """A bare, partial clone that only this process writes; all methods are safe to call from any thread."""

    def __init__(self, cfg: GitSettings):
        self.cfg = cfg
        self.path = Path(cfg.clone_dir)
        self._lock = threading.Lock()
        self._repo: git.Repo | None = None

    @property
    def remote_ref(self) -> str:
        return f"refs/remotes/origin/{self.cfg.branch}"

    def _env(self) -> dict[str, str]:
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
        if self.cfg.ssh_key_file:
            opts = ["ssh", "-i", str(self.cfg.ssh_key_file), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
            if self.cfg.ssh_known_hosts_file:
                opts += ["-o", f"UserKnownHostsFile={self.cfg.ssh_known_hosts_file}", "-o", "StrictHostKeyChecking=yes"]
            else:
                opts += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
            env["GIT_SSH_COMMAND"] = shlex.join(opts)
        if self.cfg.token:
            # The token goes in a header through the environment: never in the URL, argv or .git/config.
            raw = f"{self.cfg.token_username}:{self.cfg.token.get_secret_value()}".encode()
            env |= {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": "Authorization: Basic " + base64.b64encode(raw).decode(),
            }
        return env

    def _open(self) -> git.Repo:
        if self._repo is None:
            if (self.path / "HEAD").exists():
                self._repo = git.Repo(self.path)
            else:
                self._clone()
            assert self._repo is not None
            self._repo.git.update_environment(**self._env())
        return self._repo

    def _clone(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = ["--bare", "--no-tags"]
        if self.cfg.partial_clone:
            options.append("--filter=blob:none")  # git falls back to a full clone if the server says no
        try:
            repo = git.Repo.clone_from(self.cfg.url, self.path, env=self._env(), multi_options=options)
        except git.GitCommandError as exc:
            raise GitUnavailable(f"clone failed: {_stderr(exc)}") from None
        repo.git.config("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
        repo.git.config("core.commitGraph", "true")
        self._repo = repo

    def sync(self) -> str:
        """Clone or fetch, refresh the commit-graph, and return the branch head."""
        with self._lock:
            repo = self._open()
            try:
                repo.git.fetch("origin", "--prune", "--no-tags")
            except git.GitCommandError as exc:
                raise GitUnavailable(f"fetch failed: {_stderr(exc)}") from None
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
            raise GitError(
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
    sha, author, when, parents, subject = line.split(FIELD, 4)
    return Commit(sha, author, datetime.fromisoformat(when), subject, tuple(parents.split()))


def _stderr(exc: git.GitCommandError) -> str:
    text = str(exc.stderr or exc).strip().replace("\n", " ")
    return text[:300]
