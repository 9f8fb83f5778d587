"""One deadline for a whole HTTP exchange, response headers included, enforced where bytes are read.

httpx bounds each socket read, not an exchange: headers that trickle in a byte at a time would never time out
(the body is watched chunk by chunk by the caller, the headers cannot be). This network backend gives every
read, write and connect of the calling thread at most the time left before the deadline the caller set
(`until`), so the exchange fails with httpcore's own timeout error at the deadline, wherever it is.

A very large answer over a slow link is another matter: a fixed deadline would refuse it forever.
`progress_allows` extends the deadline while bytes keep coming at a minimum rate, up to a bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx
from httpcore._backends.sync import SyncBackend

_local = threading.local()

MIN_RATE = 64 * 1024  # bytes/s a long answer must keep up to earn more time
MAX_FACTOR = 10  # at most this many times the request deadline, whatever the rate


def progress_allows(received: int, timeout: float) -> float:
    """Seconds the exchange may take, having received `received` bytes: the plain deadline, or the time those
    bytes take at MIN_RATE (a list of 3 MB: ~47 s), never more than MAX_FACTOR deadlines. A stall earns
    nothing: only bytes that arrived count."""
    return min(max(timeout, received / MIN_RATE), timeout * MAX_FACTOR)


@contextmanager
def until(deadline: float) -> Iterator[None]:
    """Within the block, this thread's network I/O ends by `deadline` (time.monotonic())."""
    before = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = before


def extend(deadline: float) -> None:
    """Move this thread's deadline (inside `until`): what a progress-aware read earns."""
    _local.deadline = deadline


def read_body(chunks: Iterable[bytes], started: float, timeout: float, progress: bool) -> list[bytes]:
    """The body's chunks, read within the deadline (inside `until`); with `progress`, a long body coming at a
    fair rate earns time (progress_allows). Past the deadline: httpx's ReadTimeout, as a stalled read."""
    body, received = [], 0
    for chunk in chunks:
        body.append(chunk)
        received += len(chunk)
        deadline = started + (progress_allows(received, timeout) if progress else timeout)
        extend(deadline)
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("no whole answer within the deadline")
    return body


def _left(timeout: float | None) -> float | None:
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the exchange's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.inner = SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self.inner.connect_tcp(host, port, _left(timeout), local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self.inner.connect_unix_socket(path, _left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def with_deadlines(transport: Any) -> Any:
    """`transport` (an httpx.HTTPTransport) reading through DeadlineBackend. httpx does not take a network
    backend, so it is set on its httpcore pool; a pool without one (another httpx) is left as it was."""
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = DeadlineBackend()
    return transport
