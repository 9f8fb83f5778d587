"""File content at a revision from the watcher's clone: list the blobs wanted, fetch the missing ones at once, read.

The clone is partial (blob:none): it has no file content until something reads it, and git then fetches each
missing blob on its own, one round trip each (about 70 ms over loopback; minutes for a fleet's thousands of
manifests and Chart.yaml files). So the blobs are first asked for in one fetch, as git itself does before a
checkout; a fetch of blobs the clone already has does not reach the remote.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

import git

from watcher.adapters.git_errors import RevisionUnreadable
from watcher.logs import get_logger

CHUNK = 500  # paths or object ids per git command line, far below any argv limit
LITERAL = {"GIT_LITERAL_PATHSPECS": "1"}  # a directory named `a*` is that directory, not a glob
NOOP_NEGOTIATION = ("-c", "fetch.negotiationAlgorithm=noop")  # wants are object ids: nothing to negotiate


def blobs_under(repo: git.Repo, rev: str, directories: Iterable[str], keep: Callable[[str], bool]) -> dict[str, str]:
    """path -> blob id of every file under `directories` (recursively) at `rev` whose path `keep` accepts."""
    return {path: oid for path, oid in _ls_tree(repo, rev, sorted(set(directories)), recursive=True) if keep(path)}


def blobs_named(repo: git.Repo, rev: str, directories: Iterable[str], names: Collection[str]) -> dict[str, str]:
    """path -> blob id of each file called one of `names` directly inside one of `directories` at `rev`."""
    wanted = sorted(set(directories))
    inside = set(wanted)
    return {
        path: oid
        for path, oid in _ls_tree(repo, rev, [d + "/" for d in wanted], recursive=False)
        if posixpath.basename(path) in names and posixpath.dirname(path) in inside
    }


def read(repo: git.Repo, blobs: Mapping[str, str], timeout: float, partial: bool) -> dict[str, str]:
    """path -> text of each blob, after one fetch of those the partial clone lacks."""
    if partial and blobs:
        prefetch(repo, blobs.values(), timeout)
    return {path: repo.odb.stream(bytes.fromhex(oid)).read().decode("utf-8", "replace") for path, oid in blobs.items()}


def prefetch(repo: git.Repo, oids: Iterable[str], timeout: float) -> None:
    """Fetch the blobs among `oids` that the clone lacks, in one request per CHUNK. A remote that refuses is no
    error here: each blob is then fetched when read, slowly, which is what git would have done anyway."""
    for chunk in _chunks(sorted(set(oids))):
        command = ["git", *NOOP_NEGOTIATION, "fetch", "origin", "--no-tags", "--no-write-fetch-head"]
        command += ["--recurse-submodules=no", "--filter=blob:none", *chunk]
        try:
            repo.git.execute(command, kill_after_timeout=timeout)
        except git.GitCommandError as exc:
            get_logger().warning("git_prefetch_failed", blobs=len(chunk), error=str(exc.stderr or exc).strip()[:300])
            return


def _ls_tree(repo: git.Repo, rev: str, pathspecs: list[str], recursive: bool) -> Iterator[tuple[str, str]]:
    for chunk in _chunks(pathspecs):
        flags = ["-r"] if recursive else []
        try:
            out = repo.git.ls_tree("-z", *flags, rev, "--", *chunk, env=LITERAL)
        except git.GitCommandError as exc:
            raise RevisionUnreadable(
                f"cannot list files at {rev[:12]}: {str(exc.stderr or exc).strip()[:300]}"
            ) from None
        for entry in out.split("\0"):
            meta, _, path = entry.partition("\t")
            fields = meta.split()
            if len(fields) == 3 and fields[1] == "blob":
                yield path, fields[2]


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
