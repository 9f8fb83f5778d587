"""The leader lock: a PostgreSQL session-level advisory lock, on a connection of its own (not the store's pool).

The lock lives exactly as long as the session, so the server itself frees a dead leader's lock: at once when
the process dies (the kernel closes its socket), and within a few seconds when its node or the network between
them goes (TCP keepalives and a user timeout, set on both ends). A leader cut off from the server learns it
from `holds()`, which fails within the lease instead of waiting for TCP's own minutes-long give-up.
"""

from __future__ import annotations

import math
import socket
from typing import Any

import psycopg

from watcher.domain import RetryLater
from watcher.settings import without_credentials

LOCK_KEY = 0x73796E6377617463  # "syncwatc": one leader per database
HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()"
    " AND classid = %s::oid AND objid = %s::oid AND objsubid = 1)"  # how pg_locks shows a bigint key
)


class LeaderLockUnavailable(RetryLater):
    """The database did not answer on the lock's session: the lock counts as not held."""


class AdvisoryLock:
    """ports.LeaderLock over PostgreSQL. Not thread-safe: the one caller (watcher.run.leadership) serializes."""

    def __init__(self, url: str, check_interval: float, lease: float, key: int = LOCK_KEY):
        self.conninfo = "postgresql://" + url.split("://", 1)[1]  # SQLAlchemy's postgresql+psycopg:// for libpq
        self.key = key
        idle, user_timeout_ms = max(1, math.ceil(check_interval)), int(lease * 1000)
        # The server probes a silent client after `idle` s (heartbeats come every check), 3 probes 1 s apart.
        server = f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3"
        server += f" -c tcp_user_timeout={user_timeout_ms} -c statement_timeout={user_timeout_ms}"
        self.connect_args: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, int(lease)),
            "keepalives": 1,
            "keepalives_idle": idle,
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": user_timeout_ms,  # a query the server never acknowledges fails within the lease
            # Who leads, as pg_stat_activity shows it: the pod's name.
            "application_name": f"sync-watcher leader lock {socket.gethostname()}"[:63],
            "options": server,
        }
        self._conn: psycopg.Connection[Any] | None = None

    def try_acquire(self) -> bool:
        conn = self._session()
        return bool(self._ask(conn, "SELECT pg_try_advisory_lock(%s)", (self.key,)))

    def holds(self) -> bool:
        if self._conn is None:
            return False
        high, low = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        return bool(self._ask(self._conn, HELD, (high, low)))

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.Error:
            pass  # the session is going anyway: closing it frees the lock
        finally:
            conn.close()

    def _session(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.conninfo, **self.connect_args)
            except psycopg.Error as exc:
                raise LeaderLockUnavailable(_why(exc)) from None
        return self._conn

    def _ask(self, conn: psycopg.Connection[Any], sql: str, params: tuple[int, ...]) -> object:
        try:
            row = conn.execute(sql, params).fetchone()
        except psycopg.Error as exc:
            # The session may be gone, and the lock with it: never reuse it, a new session starts from scratch.
            self._conn = None
            conn.close()
            raise LeaderLockUnavailable(_why(exc)) from None
        return row[0] if row else None


def _why(exc: psycopg.Error) -> str:
    return without_credentials(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)[:300]
