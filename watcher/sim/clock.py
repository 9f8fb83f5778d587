"""A clock that runs `scale` times faster than the wall clock: Argo CD's real timings, an hour in a minute."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class SimClock(Protocol):
    """What the simulator and the watcher read time from: seconds for the one, datetimes for the other."""

    def time(self) -> float: ...

    def now(self) -> datetime: ...


class WallClock:
    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)


class ScaledClock:
    """Argo CD time: starts at the real now and advances `scale` seconds per wall second.

    `time()` is what the simulator's `Controller(clock=...)` takes; `now()` is a `watcher.domain.Clock` for the
    watcher and the reverter, so both sides read the same time. `advance()` jumps ahead (tests, and skipping a
    quiet stretch of a story); it never goes back, so no timer sees time run backwards."""

    def __init__(self, scale: float = 60.0, start: float | None = None):
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._origin = time.time() if start is None else start
        self._wall_origin = time.monotonic()
        self._skipped = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._origin + self._skipped + (time.monotonic() - self._wall_origin) * self.scale

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._skipped += max(0.0, seconds)

    def wall_seconds(self, argo_seconds: float) -> float:
        """How long `argo_seconds` of Argo CD time take on the wall clock."""
        return argo_seconds / self.scale


class ManualClock:
    """A clock that moves only when told (tests of the real timings, without waiting)."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.t = start

    def time(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def advance(self, seconds: float) -> None:
        self.t += seconds
