"""Leadership, wired: a thread takes or confirms the leader lock every check, and the daemon hears each change.

Whether this replica may act is `watcher.core.lease` (pure); this module asks the lock (ports.LeaderLock) and keeps
the answer. Side effects of a change, in order: the term is swapped first (so `leading()` already answers the
new truth), one `role_changed` line is logged, then `on_change(role)` runs. Becoming the leader runs only on
this module's own thread, and `leading()` says yes only once that callback has returned (the daemon reloads
what the previous leader stored before anything is recorded or decided); stepping down may happen on any
thread whose `confirm()` found the lock gone, and only clears flags.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from watcher.core.lease import LeaseTiming, Role, Term, after_check, may_try, role_at, transition_reason
from watcher.domain import RetryLater
from watcher.logs import get_logger
from watcher.ports import LeaderLock


class AloneLock:
    """ports.LeaderLock of a replica alone on its store (SQLite): nobody else can hold the lock."""

    def try_acquire(self) -> bool:
        return True

    def holds(self) -> bool:
        return True

    def release(self) -> None:
        pass


class Leadership:
    """ports.Fence for the reverter, the notifier and the watcher; `role()` for /readyz and the gauge."""

    def __init__(
        self,
        lock: LeaderLock,
        timing: LeaseTiming,
        interval: float,
        on_change: Callable[[Role], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.lock = lock
        self.timing = timing
        self.interval = interval
        self.on_change = on_change
        self.clock = clock
        self.log = get_logger().bind(component="leadership")
        self._io = threading.Lock()  # one round trip at a time on the lock's session
        self._changing = threading.Lock()  # one change (and its callback) at a time
        self._term = Term()
        self._role: Role | None = None  # as last announced; None before the first check
        self._acting = False  # the daemon has taken over: set after on_change(LEADER) returned
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- ports.Fence ----------------------------------------------------------------------------------------
    def leading(self) -> bool:
        return self._acting and role_at(self._term, self.clock(), self.timing) is Role.LEADER

    def confirm(self) -> bool:
        if not self.leading():
            return False
        holds, error = self._ask()
        self._settle(holds, error, may_lead=False)
        return self.leading()

    def role(self) -> Role:
        role = role_at(self._term, self.clock(), self.timing)
        return Role.TAKING_OVER if role is Role.LEADER and not self._acting else role

    # -- the loop -------------------------------------------------------------------------------------------
    def check(self) -> Role:
        """Take the lock (standby) or confirm it (leader); announce a change. The loop's one step."""
        holds, error = self._ask()
        return self._settle(holds, error, may_lead=True)

    def settle(self, timeout: float) -> Role:
        """Check until the role is not TAKING_OVER (or `timeout` passed): what `run --once` acts as."""
        deadline = self.clock() + timeout
        role = self.check()
        while role is Role.TAKING_OVER and self.clock() < deadline:
            self._stop.wait(min(self.interval, max(deadline - self.clock(), 0.0)))
            role = self.check()
        return role

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="leadership", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Release the lock (after the daemon stopped acting): a standby takes over after its own wait."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 1.0)
        with self._io:
            self.lock.release()
            self._term = Term()
        if self._role not in (None, Role.STANDBY):
            self._acting = False
            self.log.info("role_changed", role=Role.STANDBY.value, previous=self._role, reason="stopped: lock released")
            self._role = Role.STANDBY

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the heartbeat must outlive one failed takeover; it is logged
                self.log.exception("leadership_check_failed", error=str(exc))

    # -- asking and announcing ------------------------------------------------------------------------------
    def _ask(self) -> tuple[bool, str]:
        with self._io:
            asked_at = self.clock()
            if not may_try(self._term, asked_at, self.timing):
                return False, ""
            try:
                holds = self.lock.holds() if self._term.acquired_at is not None else self.lock.try_acquire()
                error = ""
            except RetryLater as exc:
                holds, error = False, str(exc)
            self._term = after_check(self._term, holds, asked_at, self.clock())
        return holds, error

    def _settle(self, holds: bool, error: str, may_lead: bool) -> Role:
        with self._changing:
            role = role_at(self._term, self.clock(), self.timing)
            if role is self._role or (role is Role.LEADER and not may_lead):
                return role
            before, self._role = self._role, role
            self._acting = False
            log = self.log.warning if before is Role.LEADER else self.log.info
            log(
                "role_changed",
                role=role.value,
                previous=before.value if before else None,
                reason=transition_reason(before, role, holds, error),
            )
            try:
                self.on_change(role)
            except Exception:
                if role is Role.LEADER:
                    self._role = Role.TAKING_OVER  # not taken over: the next check tries again
                raise
            self._acting = role is Role.LEADER
            return role
