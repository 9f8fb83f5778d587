"""Argo CD's GETs of one Application, over the standard library's http.client on kept-alive connections.

A bad day reads 1,000 apps whole. httpx spends ~0.6 ms of CPU on each (its URL and header models, h11, its pool)
and http.client ~0.2 ms; with GETs in flight on several threads, that CPU (under one GIL) is what a poll waits
for: at 10k apps with 10% failing, ~5x a bare parse of the list with httpx, ~2x with this. The rest (the list,
the stream, logins, the reverter's writes) stays on httpx. The contract is the client's: one deadline for the
whole exchange, TLS with the very context httpx uses, and where a proxy from the environment applies the client
keeps httpx for these too (see usable)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping


class LateAnswer(Exception):
    """The answer did not arrive whole within the deadline (a body trickling in a byte at a time)."""


def usable(url: str) -> bool:
    """Whether GETs may go straight to `url`: not when a proxy from the environment applies (httpx uses it) or
    the URL carries credentials (httpx sends them as basic auth)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        return False
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname or ""))


class AppGets:
    """GETs to one Argo CD; safe to use from many threads at once, each GET on a connection of its own."""

    def __init__(self, url: str, timeout: float, tls: ssl.SSLContext, keep: int):
        parts = urllib.parse.urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")  # Argo CD served under a path (--rootpath)
        self.timeout = timeout
        self._tls = tls if self.https else None
        self.keep = keep  # idle connections kept for the next GETs; more than that are closed after use
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def get(self, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, bytes]:
        """(status, body) of one GET, whole within the timeout. Raises LateAnswer, OSError (timeouts included) or
        http.client.HTTPException."""
        target = self.prefix + path + (f"?{urllib.parse.urlencode(query, doseq=True)}" if query else "")
        deadline = time.monotonic() + self.timeout
        conn, kept = self._connection()
        # Headers are read a line at a time, each read bounded but not all of them: at the deadline the socket
        # is shut, which ends a read that trickles (the body is watched below as it comes).
        watchdog = threading.Timer(self.timeout, lambda: _shut(conn))
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                conn.request("GET", target, headers=dict(headers))
                response = conn.getresponse()
            except (OSError, http.client.HTTPException):
                if not kept:
                    raise
                conn.close()  # the server closed a kept connection meanwhile: once more, on a new one
                conn, kept = self._new(), False
                conn.request("GET", target, headers=dict(headers))
                response = conn.getresponse()
            chunks = []
            while chunk := response.read1(65536):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise LateAnswer(f"no whole answer within {self.timeout:g}s")
            response.close()
            if time.monotonic() > deadline:  # the watchdog cut it short: what was read is not the answer
                raise LateAnswer(f"no whole answer within {self.timeout:g}s")
        except BaseException as exc:
            conn.close()
            if time.monotonic() > deadline and isinstance(exc, OSError | http.client.HTTPException):
                raise LateAnswer(f"no whole answer within {self.timeout:g}s") from None
            raise
        finally:
            watchdog.cancel()
        self._release(conn, reusable=not response.will_close)
        return response.status, b"".join(chunks)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _new(self) -> http.client.HTTPConnection:
        if self._tls is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _release(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        with self._lock:
            if reusable and len(self._idle) < self.keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _shut(conn: http.client.HTTPConnection) -> None:
    with contextlib.suppress(OSError, AttributeError):
        conn.sock.shutdown(socket.SHUT_RDWR)
