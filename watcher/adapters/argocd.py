"""Argo CD REST client (httpx): list, get, refresh, terminate, and the application watch stream."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from watcher.adapters import app_gets, http_deadline
from watcher.adapters.app_gets import AppGets
from watcher.adapters.json_items import array_items
from watcher.domain import NotFound, RetryLater
from watcher.settings import ArgoCDSettings

# The only fields Argo CD's list endpoint can select (forwarder_overwrite.go, see reference/argocd/SOURCE.md).
LIST_FIELDS = (
    "metadata.resourceVersion",
    "items.metadata.name",
    "items.metadata.namespace",
    "items.metadata.labels",
    "items.metadata.annotations",
    "items.spec",
    "items.status.sync.status",
    "items.status.sync.revision",
    "items.status.health",
    "items.status.operationState.startedAt",
    "items.status.operationState.finishedAt",
    "items.status.operationState.phase",
    "items.status.operationState.operation.sync",
)
# The stream's field filter is generic, so it can carry what detection needs without a second GET.
STREAM_FIELDS = (
    "result.type",
    "result.application.metadata.name",
    "result.application.metadata.namespace",
    "result.application.metadata.labels",
    "result.application.metadata.annotations",
    "result.application.spec",
    "result.application.status.sync",
    "result.application.status.health",
    "result.application.status.operationState",
    "result.application.status.conditions",
    "result.application.status.resources",
)


APP_PATH = "/api/v1/applications/"  # + name: one app, read on http.client (app_gets)


class ArgoCDError(RetryLater):
    """Base of the errors this adapter raises; messages never contain credentials. For the caller every one
    means the same: Argo CD's answer is unknown, ask again later (an auth error also needs a human's fix)."""


class ArgoCDUnavailable(ArgoCDError):
    """Network failure, timeout or 5xx: the facts are unknown, not bad."""


class ArgoCDAuthError(ArgoCDError):
    """401/403 that a re-login did not fix."""


class ArgoCDBadResponse(ArgoCDError):
    """The server answered something that is not the JSON the spec promises."""


class ArgoCDNotFound(ArgoCDError, NotFound):
    pass


StreamHandler = Callable[[str, dict[str, Any]], None]


class ArgoCDClient:
    def __init__(
        self,
        cfg: ArgoCDSettings,
        *,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        stream_max_backoff: float = 30.0,
    ):
        tls = tls_context(cfg)
        self.cfg = cfg
        # Where a proxy applies, the list's GETs run here too, concurrent_gets at a time (apps_listing), beside
        # the stream and the reverter: their connections are kept open between polls.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=max(20, cfg.concurrent_gets + 4))
        self._http = httpx.Client(
            base_url=cfg.url,
            timeout=httpx.Timeout(cfg.timeout_seconds),
            headers={"Accept": "application/json"},
            # Reads bounded by the exchange's deadline, headers included (http_deadline).
            transport=http_deadline.with_deadlines(httpx.HTTPTransport(verify=tls, limits=limits)),
        )
        self._token = cfg.token.get_secret_value() if cfg.token else ""
        self._login_lock = threading.Lock()
        self._retry_attempts = retry_attempts
        self._retry_max_wait = retry_max_wait
        self._stream_max_backoff = stream_max_backoff
        self._stream_response: httpx.Response | None = None
        # GETs of one app (a bad day's many) over http.client, unless a proxy from the environment applies.
        self._gets = (
            AppGets(cfg.url, cfg.timeout_seconds, tls, keep=cfg.concurrent_gets + 4)
            if app_gets.usable(cfg.url)
            else None
        )

    # -- requests ---------------------------------------------------------------------------------------
    def _auth_headers(self) -> dict[str, str]:
        if not self._token and self.cfg.username:
            self._login()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _expire(self, token: str) -> None:
        """The session `token` was refused: log in again, once for all the threads that were refused it."""
        with self._login_lock:
            if self._token == token:
                self._token = ""

    def _login(self) -> None:
        with self._login_lock:
            if self._token:
                return  # another thread logged in while this one waited
            password = self.cfg.password.get_secret_value() if self.cfg.password else ""
            try:
                r = self._http.post("/api/v1/session", json={"username": self.cfg.username, "password": password})
            except httpx.HTTPError as exc:
                raise ArgoCDUnavailable(f"session login failed: {type(exc).__name__}") from None
            if r.status_code in (401, 403):
                raise ArgoCDAuthError(f"session login as {self.cfg.username!r} refused (HTTP {r.status_code})")
            if r.status_code >= 400:
                raise ArgoCDUnavailable(f"session login: HTTP {r.status_code}")
            token = _decode(Answer("POST", "/api/v1/session", r.status_code, r.content, "")).get("token")
            if not isinstance(token, str) or not token:
                raise ArgoCDBadResponse("session login returned no token")
            self._token = token

    def _exchange(self, method: str, path: str, params: Mapping[str, Any] | None, progress: bool = False) -> Answer:
        """One request, whole within one deadline for the whole exchange (httpx's timeouts bound each read, so a
        body trickling in a byte at a time would never time out): a GET of one app on http.client (app_gets),
        the rest on httpx."""
        headers = self._auth_headers()
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        late = (
            f"{method} {path}: no whole answer within {self.cfg.timeout_seconds:g}s (WATCHER_ARGOCD__TIMEOUT_SECONDS)"
        )
        if self._gets is not None and method == "GET" and path.startswith(APP_PATH):
            try:
                status, content = self._gets.get(path, params or {}, {"Accept": "application/json"} | headers)
            except app_gets.LateAnswer:
                raise ArgoCDUnavailable(late) from None
            except (OSError, http.client.HTTPException) as exc:
                raise ArgoCDUnavailable(f"{method} {path}: {type(exc).__name__}") from None
            return Answer(method, path, status, content, token)
        started = time.monotonic()
        try:
            with http_deadline.until(started + self.cfg.timeout_seconds):  # headers too: reads end by then
                request = self._http.build_request(method, path, params=params, headers=headers)
                r = self._http.send(request, stream=True)
                try:
                    chunks = http_deadline.read_body(r.iter_raw(), started, self.cfg.timeout_seconds, progress)
                finally:
                    r.close()
        except httpx.TimeoutException:
            raise ArgoCDUnavailable(late) from None
        except httpx.HTTPError as exc:
            raise ArgoCDUnavailable(f"{method} {path}: {type(exc).__name__}") from None
        return Answer(method, path, r.status_code, b"".join(chunks), token)

    def answer(self, method: str, path: str, params: Mapping[str, Any] | None = None, progress: bool = False) -> Answer:
        """One request, once, whatever its status (an expired session's 401 logs in again, once): what every
        call below sends, and what a caller that reads an error's body and must not retry it asks directly
        (a render error: argocd_renders)."""
        r = self._exchange(method, path, params, progress)
        if r.status == 401 and self.cfg.username:
            self._expire(r.token)  # the session token expired: log in again, once
            r = self._exchange(method, path, params, progress)
        return r

    def _send_once(self, method: str, path: str, params: Mapping[str, Any] | None, progress: bool = False) -> Answer:
        r = self.answer(method, path, params, progress)
        if r.status in (401, 403):
            raise ArgoCDAuthError(f"{method} {path}: HTTP {r.status}; check the token and the account's RBAC")
        if r.status == 404:
            raise ArgoCDNotFound(f"{method} {path}: not found")
        if r.status >= 500 or r.status == 429:
            raise ArgoCDUnavailable(f"{method} {path}: HTTP {r.status}")
        if r.status >= 400:
            raise ArgoCDBadResponse(f"{method} {path}: HTTP {r.status}: {r.text[:200]}")
        return r

    def _fetch(self, method: str, path: str, params: Mapping[str, Any] | None = None, progress: bool = False) -> Answer:
        retrying = Retrying(
            retry=retry_if_exception_type(ArgoCDUnavailable),
            stop=stop_after_attempt(self._retry_attempts) | stop_after_delay(self.cfg.timeout_seconds * 3),
            wait=wait_exponential_jitter(multiplier=0.1, max=self._retry_max_wait),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._send_once(method, path, params, progress)
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return _decode(self._fetch(method, path, params))

    # -- API --------------------------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        return self._request("GET", "/api/version")

    def _filters(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.cfg.projects:
            params["projects"] = self.cfg.projects
        if self.cfg.selector:
            params["selector"] = self.cfg.selector
        if self.cfg.app_namespace:
            params["appNamespace"] = self.cfg.app_namespace
        return params

    def list_apps(self) -> list[dict[str, Any]]:
        """All watched apps, trimmed to the selectable fields, as one list (`check`; the watcher iterates)."""
        return list(self.iter_apps())

    def iter_apps(self) -> Iterator[dict[str, Any]]:
        """All watched apps, trimmed to the selectable fields. The list is read whole (within the deadline)
        before this returns; its items are decoded one at a time as the caller iterates, so a body that stops
        being JSON raises ArgoCDBadResponse during the iteration, after the items before the fault."""
        fields = {"fields": ",".join(LIST_FIELDS)}
        r = self._fetch("GET", "/api/v1/applications", self._filters() | fields, progress=True)
        try:
            text = r.content.decode("utf-8")
        except UnicodeDecodeError:
            raise ArgoCDBadResponse(f"application list is not JSON (not UTF-8): {r.content[:80]!r}") from None
        del r  # the bytes: from here on the text is the only copy of the body
        return _apps_in(text)

    def get_app(self, name: str, namespace: str = "", refresh: str | None = None, project: str = "") -> dict[str, Any]:
        params: dict[str, Any] = {}
        if namespace:
            params["appNamespace"] = namespace
        if refresh:
            params["refresh"] = refresh
        if project:
            # Without it Argo CD answers 403 for an app that does not exist, as for one the account may not see;
            # naming the project makes a missing app 404 (argo-cd server/application/application.go:176-213,
            # getAppEnforceRBAC).
            params["project"] = project
        return self._request("GET", f"{APP_PATH}{name}", params)

    def refresh(self, name: str, namespace: str = "") -> dict[str, Any]:
        return self.get_app(name, namespace, refresh="normal")

    def resource_tree(self, name: str, namespace: str = "") -> dict[str, Any]:
        params = {"appNamespace": namespace} if namespace else None
        return self._request("GET", f"/api/v1/applications/{name}/resource-tree", params)

    def sync_windows(self, name: str, namespace: str = "") -> dict[str, Any]:
        params = {"appNamespace": namespace} if namespace else None
        return self._request("GET", f"/api/v1/applications/{name}/syncwindows", params)

    def project_sync_windows(self, project: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/projects/{project}/syncwindows")

    def terminate_operation(self, name: str, namespace: str = "") -> None:
        params = {"appNamespace": namespace} if namespace else None
        self._request("DELETE", f"/api/v1/applications/{name}/operation", params)

    # -- stream -----------------------------------------------------------------------------------------
    def stream(
        self,
        on_event: StreamHandler,
        stop: threading.Event,
        on_disconnect: Callable[[str], None] | None = None,
    ) -> None:
        """Follow the watch stream until `stop` is set; reconnect with capped, jittered backoff."""
        failures = 0
        while not stop.is_set():
            reason = "closed by server"
            try:
                for kind, app in self._stream_once(stop):
                    failures = 0
                    on_event(kind, app)
            except ArgoCDError as exc:
                reason = str(exc)
            except httpx.HTTPError as exc:
                reason = f"stream: {type(exc).__name__}"
            except Exception as exc:  # noqa: BLE001 - a frame or handler we did not foresee: reconnect, never die
                reason = f"stream: {type(exc).__name__}: {str(exc)[:200]}"
            if stop.is_set():
                return
            failures += 1
            if on_disconnect:
                on_disconnect(reason)
            delay = min(self._stream_max_backoff, 0.2 * 2 ** min(failures, 10))
            stop.wait(delay * (0.5 + _jitter()))

    def _stream_once(self, stop: threading.Event) -> Any:
        params = self._filters() | {"fields": ",".join(STREAM_FIELDS)}
        headers = self._auth_headers() | {"Accept": "text/event-stream"}
        # Keepalives arrive every 15 s, so a 60 s read timeout only fires on a dead connection.
        timeout = httpx.Timeout(self.cfg.timeout_seconds, read=60.0)
        with self._http.stream(
            "GET", "/api/v1/stream/applications", params=params, headers=headers, timeout=timeout
        ) as r:
            if r.status_code == 401 and self.cfg.username:
                self._expire(_bearer(r.request))
                raise ArgoCDUnavailable("stream: HTTP 401, logging in again")
            if r.status_code >= 400:
                raise ArgoCDUnavailable(f"stream: HTTP {r.status_code}")
            self._stream_response = r
            yield from stream_events(r.iter_lines(), stop)

    def close(self) -> None:
        self._http.close()
        if self._gets is not None:
            self._gets.close()


def stream_events(lines: Iterator[str], stop: threading.Event) -> Iterator[tuple[str, dict[str, Any]]]:
    """The watch stream's server-sent lines -> (event type, Application) until `stop`; a frame that is not a JSON
    object, or an error frame, ends the stream with a named error (the caller reconnects)."""
    for line in lines:
        if stop.is_set():
            return
        if not line.startswith("data:"):
            continue  # ":" keepalives, blank separators
        try:
            frame = json.loads(line[5:].strip())
        except (json.JSONDecodeError, RecursionError):
            raise ArgoCDBadResponse(f"stream: frame is not JSON: {line[5:85]!r}") from None
        if not isinstance(frame, dict):
            raise ArgoCDBadResponse(f"stream: frame is not a JSON object: {line[5:85]!r}")
        if "error" in frame:
            error = frame["error"]
            message = error.get("message", "") if isinstance(error, dict) else error
            raise ArgoCDUnavailable(f"stream error: {str(message)[:200]}")
        result = frame.get("result")
        app = result.get("application") if isinstance(result, dict) else None
        if isinstance(result, dict) and isinstance(app, dict):
            yield str(result.get("type", "MODIFIED")), app


def tls_context(cfg: ArgoCDSettings) -> ssl.SSLContext:
    """What both transports trust: the configured CA bundle, or httpx's default (certifi's CAs, or SSL_CERT_FILE
    and SSL_CERT_DIR); nothing is verified with `insecure`."""
    if cfg.insecure:
        return httpx.create_ssl_context(verify=False)
    if cfg.ca_bundle:
        return ssl.create_default_context(cafile=str(cfg.ca_bundle))
    return httpx.create_ssl_context()


def _bearer(request: httpx.Request) -> str:
    return request.headers.get("Authorization", "").removeprefix("Bearer ")


@dataclass(frozen=True, slots=True)
class Answer:
    """One whole HTTP answer, as the status handling and the decoding read it."""

    method: str
    path: str
    status: int
    content: bytes
    token: str  # the bearer token the request carried: a 401 expires that one only

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _jitter() -> float:
    import random

    return random.random()


def _apps_in(text: str) -> Iterator[dict[str, Any]]:
    try:
        for item in array_items(text):
            if isinstance(item, dict):
                yield item
    except ValueError as exc:  # json.JSONDecodeError included
        raise ArgoCDBadResponse(f"application list is not JSON as the spec promises ({exc}): {text[:80]!r}") from None


def _decode(r: Answer) -> dict[str, Any]:
    try:
        body = json.loads(r.content)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):  # nested past the decoder's depth too
        raise ArgoCDBadResponse(f"{r.method} {r.path}: body is not JSON: {r.text[:80]!r}") from None
    if not isinstance(body, dict):
        raise ArgoCDBadResponse(f"{r.method} {r.path}: body is not a JSON object")
    return body
