"""The simulator's HTTP API: the Argo CD endpoints the watcher uses, shaped as in swagger.json."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from watcher.sim import manifests_api
from watcher.sim.controller import WHOLE, Controller, SimApp

# Argo CD's list endpoint only honours these (reference/argocd/SOURCE.md); anything else selects nothing. None
# reaches status.reconciledAt, which a git poll changes without a new resourceVersion (see controller.WHOLE).
LIST_SELECTABLE = {
    "metadata.name",
    "metadata.namespace",
    "metadata.annotations",
    "metadata.labels",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "spec",
    "spec.destination",
    "spec.project",
    "spec.source",
    "spec.sources",
    "spec.sourceHydrator",
    "spec.syncPolicy",
    "status.sourceHydrator",
    "status.summary",
    "status.sync.status",
    "status.sync.revision",
    "status.health",
    "status.operationState.startedAt",
    "status.operationState.finishedAt",
    "status.operationState.phase",
    "status.resources",
    "operation.sync",
    "status.operationState.operation.sync",
}
STREAM_BUFFER = 1000  # server/broadcast/broadcaster.go drops events past this per subscriber
KEEPALIVE_SECONDS = 15.0


@dataclass
class Faults:
    """Failure injection for tests: each counter is consumed by the next matching request."""

    server_errors: int = 0
    garbage: int = 0
    delay_seconds: float = 0.0
    requests: list[str] = field(default_factory=list)  # "METHOD path?query" of every request, for assertions


@dataclass
class Auth:
    accounts: dict[str, str] = field(default_factory=dict)  # username -> password; empty: no auth at all
    static_tokens: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    logins: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.accounts or self.static_tokens)

    def allows(self, request: Request) -> bool:
        if not self.enabled:
            return True
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        token = token or request.cookies.get("argocd.token", "")
        return token in self.static_tokens or token in self.sessions

    def expire_sessions(self) -> None:
        self.sessions.clear()


def project(obj: Any, paths: Iterable[str]) -> dict[str, Any]:
    """Keep only the dotted `paths` of `obj` (Argo CD's `fields` filter)."""
    out: dict[str, Any] = {}
    for path in paths:
        parts = path.split(".")
        src: Any = obj
        for part in parts:
            if not isinstance(src, dict) or part not in src:
                break
            src = src[part]
        else:
            node = out
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = src
    return out


OPERATION_SYNC = "status.operationState.operation.sync"


def _list_item(app: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """One list item with the selected fields. As in Argo CD's forwarder_overwrite.go, the field
    `status.operationState.operation.sync` is filled with the operation's SyncResult, not the SyncOperation."""
    item = project(app, [f for f in fields if f != OPERATION_SYNC])
    result = (app.get("status", {}).get("operationState") or {}).get("syncResult")
    if OPERATION_SYNC in fields and result is not None:
        state = item.setdefault("status", {}).setdefault("operationState", {})
        state["operation"] = {"sync": result}
    return item


def encoded(content: Any) -> bytes:
    """JSON as Starlette's JSONResponse writes it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def _matches(app: dict[str, Any], request: Request) -> bool:
    q = request.query_params
    projects = q.getlist("projects") + q.getlist("project")
    if projects and app["spec"].get("project") not in projects:
        return False
    if q.get("name") and app["metadata"]["name"] != q["name"]:
        return False
    if q.get("appNamespace") and app["metadata"].get("namespace") != q["appNamespace"]:
        return False
    selector = q.get("selector")
    if selector:
        labels = app["metadata"].get("labels") or {}
        for term in selector.split(","):
            key, _, value = term.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
    return True


class Broadcaster:
    """Fan-out of controller events (from its thread) to stream subscribers (on the server's loop)."""

    def __init__(self) -> None:
        self.subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]] = set()
        self.lock = threading.Lock()

    def publish(self, kind: str, app: SimApp) -> None:
        with self.lock:
            subs = list(self.subscribers)
        if not subs:
            return
        body = app.to_json()  # as it is now: the controller's lock is held
        for loop, queue in subs:
            loop.call_soon_threadsafe(_offer, queue, (kind, body))

    def drop_all(self) -> None:
        """Close every open stream, as a restarting argocd-server or a proxy timeout does."""
        with self.lock:
            subs = list(self.subscribers)
        for loop, queue in subs:
            loop.call_soon_threadsafe(_offer, queue, None)


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        pass


def _grpc_error(status: int, code: int, message: str) -> JSONResponse:
    """Argo CD's API error: a gRPC status as grpc-gateway v1.16 writes it (argo-cd go.mod:71,332; swagger
    runtimeError), its code mapped to the HTTP status (5 NotFound 404, 7 PermissionDenied 403, 9
    FailedPrecondition 400, 16 Unauthenticated 401)."""
    return JSONResponse({"error": message, "code": code, "message": message}, status_code=status)


def _not_found(name: str) -> JSONResponse:
    """An unknown app, in the API server's words (apimachinery pkg/api/errors/errors.go:155)."""
    return _grpc_error(404, 5, f'applications.argoproj.io "{name}" not found')


def build_sim_app(
    controller: Controller, faults: Faults | None = None, auth: Auth | None = None, version: str = "v3.1.0+sim"
) -> Starlette:
    faults = faults or Faults()
    auth = auth or Auth()
    broadcaster = Broadcaster()
    controller.listeners.append(broadcaster.publish)

    async def guard(request: Request) -> Response | None:
        faults.requests.append(f"{request.method} {request.url.path}?{request.url.query}")
        if faults.delay_seconds:
            await asyncio.sleep(faults.delay_seconds)
        if faults.server_errors > 0:
            faults.server_errors -= 1
            return JSONResponse({"error": "injected", "code": 14, "message": "injected failure"}, status_code=503)
        if faults.garbage > 0:
            faults.garbage -= 1
            return PlainTextResponse("<html>502 Bad Gateway</html>{", status_code=200, media_type="application/json")
        if not auth.allows(request):
            return _grpc_error(401, 16, "invalid session")
        return None

    async def version_ep(request: Request) -> Response:
        return await guard(request) or JSONResponse({"Version": version, "Platform": "linux/amd64"})

    async def session(request: Request) -> Response:
        body = await request.json()
        if auth.accounts.get(body.get("username", "")) != body.get("password") or not body.get("username"):
            return _grpc_error(401, 16, "Invalid username or password")
        token = secrets.token_urlsafe(24)
        auth.sessions.add(token)
        auth.logins += 1
        return JSONResponse({"token": token})

    async def list_apps(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        fields = [f for f in request.query_params.get("fields", "").split(",") if f]
        item_fields = tuple(
            f for f in (f.removeprefix("items.") for f in fields if f.startswith("items.")) if f in LIST_SELECTABLE
        )
        shape = ("list", item_fields) if fields else WHOLE
        encode = (lambda app: encoded(_list_item(app, list(item_fields)))) if fields else encoded
        # Off the event loop: the first list after a change of many apps encodes them all.
        items, version = await asyncio.to_thread(controller.encoded, shape, encode, lambda m: _matches(m, request))
        meta = {"resourceVersion": str(version)} if not fields or "metadata.resourceVersion" in fields else {}
        body = b'{"metadata":' + encoded(meta) + b',"items":[' + b",".join(items) + b"]}"
        return Response(body, media_type="application/json")

    async def get_app(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        name = request.path_params["name"]
        if request.query_params.get("refresh"):
            # Any value but "hard" is a normal refresh (server/application/application.go:805-808).
            controller.refresh(name, hard=request.query_params["refresh"] == "hard")
            await asyncio.to_thread(controller.tick)
        body = controller.get_encoded(name, WHOLE, encoded, lambda m: _matches(m, request))
        if body is None:
            return _not_found(name)
        return Response(body, media_type="application/json")

    async def tree(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        name = request.path_params["name"]
        found = controller.resource_tree(name)
        if found is None:
            return _not_found(name)
        return JSONResponse(found)

    async def manifests(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        q = request.query_params
        status, body = await asyncio.to_thread(
            manifests_api.manifests,
            controller,
            request.path_params["name"],
            q.get("revision", ""),
            q.getlist("revisions"),
            q.getlist("sourcePositions"),
        )
        return JSONResponse(body, status_code=status)

    async def clusters(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        return JSONResponse(manifests_api.clusters(controller, request.query_params.get("server", "")))

    async def sync_windows(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        name, now = request.path_params["name"], datetime.fromtimestamp(controller.clock(), UTC)
        app = controller.get(name)
        if app is None:
            return _not_found(name)
        return JSONResponse(controller.windows.app_answer(app, now))

    async def project_windows(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        now = datetime.fromtimestamp(controller.clock(), UTC)
        return JSONResponse(controller.windows.project_answer(request.path_params["name"], now))

    async def terminate(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        if not controller.terminate_operation(request.path_params["name"]):
            return _grpc_error(400, 9, "Unable to terminate operation. No operation is in progress")
        return JSONResponse({})

    async def sync(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        body = await request.json() if await request.body() else {}
        revision = str(body.get("revision") or "") if isinstance(body, dict) else ""
        shown = controller.get(request.path_params["name"])
        now = datetime.fromtimestamp(controller.clock(), UTC)
        if shown is not None and not controller.windows.can_sync(shown, now, manual=True):  # application.go:2091-2097
            return _grpc_error(403, 7, "cannot sync: blocked by sync window")
        strategy = body.get("retryStrategy") if isinstance(body, dict) else None
        retry = strategy if isinstance(strategy, dict) else None
        error = controller.sync(request.path_params["name"], revision, username="admin", retry_strategy=retry)
        if error is not None:
            return _grpc_error(404, 5, error) if "not found" in error else _grpc_error(400, 9, error)
        return JSONResponse(controller.get(request.path_params["name"]) or {})

    async def stream(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        sse = "text/event-stream" in request.headers.get("accept", "")
        fields = [f for f in request.query_params.get("fields", "").split(",") if f]
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=STREAM_BUFFER)
        sub = (loop, queue)
        with broadcaster.lock:
            broadcaster.subscribers.add(sub)
        # Without resourceVersion every app is replayed as ADDED first: one at a time as the client reads, and
        # not through the queue, whose bound is for bursts of events (it would drop most of a 10k-app fleet).
        replay = [] if request.query_params.get("resourceVersion") else controller.names()

        def frame(kind: str, app: dict[str, Any]) -> str:
            message: dict[str, Any] = {"result": {"type": kind, "application": app}}
            if fields:
                message = project(message, fields)
            text = json.dumps(message, separators=(",", ":"))
            return f"data: {text}\n\n" if sse else text + "\n"

        # argo-cd pkg/apiclient/application/forwarder_overwrite.go:314-320: the stream forwarder drops an event
        # whose payload, after `fields`, is the one it last sent for that app name.
        last_sent: dict[str, str] = {}

        def changed(app: dict[str, Any], text: str) -> bool:
            name = str(app.get("metadata", {}).get("name", ""))
            if last_sent.get(name) == text:
                return False
            last_sent[name] = text
            return True

        async def body() -> AsyncIterator[str]:
            try:
                for name in replay:
                    app = controller.get(name)
                    if app is not None and _matches(app, request) and changed(app, text := frame("ADDED", app)):
                        yield text
                while True:
                    try:
                        item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        if sse:
                            yield ":\n\n"
                        continue
                    if item is None:
                        return
                    kind, app = item
                    if _matches(app, request) and changed(app, text := frame(kind, app)):
                        yield text
            finally:
                with broadcaster.lock:
                    broadcaster.subscribers.discard(sub)

        media = "text/event-stream" if sse else "application/json"
        return StreamingResponse(body(), media_type=media, headers={"Cache-Control": "no-cache"})

    app = Starlette(
        routes=[
            Route("/api/version", version_ep),
            Route("/api/v1/session", session, methods=["POST"]),
            Route("/api/v1/applications", list_apps),
            Route("/api/v1/applications/{name}", get_app),
            Route("/api/v1/applications/{name}/operation", terminate, methods=["DELETE"]),
            Route("/api/v1/applications/{name}/resource-tree", tree),
            Route("/api/v1/applications/{name}/manifests", manifests),
            Route("/api/v1/clusters", clusters),
            Route("/api/v1/applications/{name}/sync", sync, methods=["POST"]),
            Route("/api/v1/applications/{name}/syncwindows", sync_windows),
            Route("/api/v1/projects/{name}/syncwindows", project_windows),
            Route("/api/v1/stream/applications", stream),
        ]
    )
    app.state.broadcaster = broadcaster
    app.state.faults = faults
    app.state.auth = auth
    return app
