"""Locks between processes on one machine, as files beside what they guard (fcntl.flock, Linux and macOS).

- `FileLeaderLock`: ports.LeaderLock of a SQLite store. A daemon and `run --once` (or a second daemon) on the
  same file are two actors: the one holding the lock decides and acts, the other only looks (standby), as
  replicas on PostgreSQL do with the advisory lock. The kernel frees the lock when its holder dies.
- `CloneLock`: the clone's lock, for threads of this process and for other processes sharing the directory:
  taken with a deadline, so a stuck holder is an error that says who to look for, never a wait forever.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from watcher.domain import RetryLater


class CloneBusy(RetryLater):
    """Another process holds the clone's lock past the deadline."""


class FileLeaderLock:
    """Held while this process keeps `path` flocked. Not thread-safe: watcher.run.leadership serializes."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
        self._fd = fd
        return True

    def holds(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def store_lock_path(url: str) -> Path | None:
    """The lock file beside a SQLite store's file (None: PostgreSQL, or SQLite in memory)."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///") + ".lock")


class CloneLock:
    """A context manager: this process's threads one at a time, then the flock on `<clone>.lock`."""

    def __init__(self, clone: Path, deadline: float):
        self.path = clone.with_name(clone.name + ".lock")
        self.deadline = deadline
        self._threads = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> CloneLock:
        if not self._threads.acquire(timeout=self.deadline):
            raise CloneBusy(f"the clone {self.path.with_suffix('')} stayed busy for {self.deadline:.0f}s")
        try:
            self._flock()
        except BaseException:
            self._threads.release()
            raise
        return self

    def _flock(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        give_up = time.monotonic() + self.deadline
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    os.close(fd)
                    raise CloneBusy(
                        f"another process holds {self.path} for over {self.deadline:.0f}s: is a second "
                        "sync-watcher using the same WATCHER_GIT__CLONE_DIR?"
                    ) from None
                time.sleep(0.05)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._threads.release()
