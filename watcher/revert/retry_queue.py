"""The reverter's queue: which incidents are due when, and how often each has waited (its backoff)."""

from __future__ import annotations

import threading
import time

MAX_WAIT_SECONDS = 30.0


class RetryQueue:
    """incident id -> the monotonic time before which it waits; thread-safe (listeners queue, the worker takes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: dict[int, float] = {}
        self._waits: dict[int, int] = {}

    def __contains__(self, incident_id: object) -> bool:
        with self._lock:
            return incident_id in self._due

    def put(self, incident_id: int, after: float = 0.0) -> None:
        with self._lock:
            self._due[incident_id] = time.monotonic() + after

    def put_unless_queued(self, incident_id: int) -> None:
        """Due now, unless it is queued already (then it keeps its time)."""
        with self._lock:
            self._due.setdefault(incident_id, 0.0)

    def due(self) -> list[int]:
        now = time.monotonic()
        with self._lock:
            return sorted(i for i, t in self._due.items() if t <= now)

    def wait(self, incident_id: int) -> tuple[int, float]:
        """Queue it again after a backoff that doubles (up to MAX_WAIT_SECONDS); (how many waits, the delay)."""
        with self._lock:
            waits = self._waits.get(incident_id, 0) + 1
            self._waits[incident_id] = waits
        delay = min(2.0**waits, MAX_WAIT_SECONDS)
        self.put(incident_id, delay)
        return waits, delay

    def done(self, incident_id: int) -> None:
        with self._lock:
            self._due.pop(incident_id, None)
            self._waits.pop(incident_id, None)

    def clear(self) -> None:
        with self._lock:
            self._due.clear()
            self._waits.clear()
