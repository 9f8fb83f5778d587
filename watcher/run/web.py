"""HTTP: /metrics, /healthz, /readyz, /api/apps, /api/incidents, /api/explain, /api/resume (Starlette, uvicorn)."""

from __future__ import annotations

import hmac
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from watcher.core.slack_message import Links
from watcher.domain import Incident
from watcher.logs import get_logger
from watcher.ports import Fleet
from watcher.run.pages import Patches, page_routes
from watcher.run.views import apps_view, explanation, incident_detail, liveness, preflight_view, readiness
from watcher.settings import SettingsError
from watcher.store import Store

if TYPE_CHECKING:
    from watcher.revert.reverter import Reverter


MAX_ADMIN_BODY = 4096
RESUME_BODY = 'send {"app": "<name>"} and/or {"circuit": true}'
INCIDENTS_PAGE, INCIDENTS_MAX_PAGE = 100, 500


class ResumeRequest(BaseModel):
    """The body of POST /api/resume; anything else is a 400 before the store sees it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    app: str | None = Field(None, min_length=1, max_length=253)
    circuit: bool = False


def _rejected(status: int, error: str, request: Request) -> Response:
    """One log line per refused admin call; the body is never echoed (it may hold anything)."""
    get_logger().warning("admin_request_rejected", path=request.url.path, status=status, error=error)
    return JSONResponse({"error": error}, status_code=status)


async def _small_json(request: Request) -> bytes | Response:
    """The body, if it is JSON and at most MAX_ADMIN_BODY bytes: a form or text/plain (what a browser can send
    cross-origin without asking) is a 415."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        return _rejected(415, "send Content-Type: application/json", request)
    declared = request.headers.get("content-length", "")
    too_big = f"body larger than {MAX_ADMIN_BODY} bytes"
    if declared.isdigit() and int(declared) > MAX_ADMIN_BODY:
        return _rejected(413, too_big, request)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_ADMIN_BODY:
            return _rejected(413, too_big, request)
    return body


def build_app(
    store: Store,
    fleet: Fleet,
    exposition: Callable[[], bytes],
    readiness_limits: Mapping[str, float],
    reverter: Reverter | None = None,
    admin_token: str | None = None,
    stuck_poll_seconds: float = 600.0,
    auth_waived: bool = False,
    role: Callable[[], str] = lambda: "leader",
    links: Links | None = None,
    patches: Patches | None = None,
) -> Starlette:
    """The routes over what they read: the store (incidents, audit), the fleet (apps, polls), the metrics.
    `admin_token` None closes POST /api/resume to everyone, unless `auth_waived` opens it to everyone."""

    def detail(i: Incident) -> dict[str, Any]:
        return incident_detail(i, store.audit.decisions(incident_id=i.id), store.audit.reverts(incident_id=i.id))

    def metrics(_: Request) -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    def healthz(_: Request) -> Response:
        state = liveness(fleet.health().in_flight, stuck_poll_seconds)
        if state["alive"]:
            return PlainTextResponse("ok\n")
        return JSONResponse(state, status_code=503)

    def readyz(_: Request) -> Response:
        health = fleet.health()
        state = readiness(health.last_success, readiness_limits, time.time(), health.failing, role())
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    def apps(_: Request) -> Response:
        return JSONResponse({"apps": apps_view(fleet.status())})

    def incidents(request: Request) -> Response:
        """Newest first, a page at a time: `?limit=` (default 100) and `?before=<next_before of the last page>`."""
        query = request.query_params
        open_only = query.get("open") in ("1", "true", "yes")
        app = query.get("app") or None
        limit, before = query.get("limit", str(INCIDENTS_PAGE)), query.get("before", "")
        if not (limit.isdigit() and 1 <= int(limit) <= INCIDENTS_MAX_PAGE) or not (before.isdigit() or not before):
            error = f"limit must be 1..{INCIDENTS_MAX_PAGE} and before an incident id"
            return JSONResponse({"error": error}, status_code=400)
        rows = store.detection.incidents(
            open_only=open_only, app=app, limit=int(limit) + 1, before=int(before) if before else None
        )
        page = rows[: int(limit)]
        next_before = page[-1].id if len(rows) > int(limit) else None
        return JSONResponse({"incidents": [detail(i) for i in page], "next_before": next_before})

    def explain(request: Request) -> Response:
        app = request.query_params.get("app", "")
        found = store.audit.decisions(app=app, limit=1) if app else []
        preflight = preflight_view(store.preflight, app) if app else None
        if not found and not (preflight and preflight["verdicts"]):
            return JSONResponse({"error": f"no decision or pre-flight verdict recorded for app {app!r}"}, 404)
        if not found:
            return JSONResponse({"decision": None, "preflight": preflight})
        decision = found[0]
        incident = store.detection.incident(decision.incident_id) if decision.incident_id else None
        suspension = store.audit.suspended().get(app)
        explained = explanation(decision, detail(incident) if incident else None, suspension)
        return JSONResponse(explained | {"preflight": preflight})

    async def resume(request: Request) -> Response:
        if not auth_waived:
            sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if admin_token is None or not hmac.compare_digest(sent.encode(), admin_token.encode()):
                return _rejected(401, "send Authorization: Bearer <admin token> (sync-watcher resume does)", request)
        if reverter is None:
            return JSONResponse({"error": "auto-revert is not running in this process"}, status_code=409)
        body = await _small_json(request)
        if isinstance(body, Response):
            return body
        try:
            asked = ResumeRequest.model_validate_json(body or b"{}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _rejected(400, f"{where}: {first['msg']}; {RESUME_BODY}", request)
        if not asked.app and not asked.circuit:
            return _rejected(400, RESUME_BODY, request)
        resumed = reverter.resume(asked.app, asked.circuit)
        if asked.app:  # the pre-flight's local checks, paused after Argo CD disagreed, start again too
            resumed["preflight_checks_reset"] = store.preflight.reset(asked.app)
        return JSONResponse(resumed)

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/api/apps", apps),
            Route("/api/incidents", incidents),
            Route("/api/explain", explain),
            Route("/api/resume", resume, methods=["POST"]),
            # The pages read what /api reads, as HTML (`links`: where commits and apps open; `patches`: diffs)
            *page_routes(store, fleet, links or Links("", None), patches),
        ]
    )


class BackgroundServer:
    """uvicorn in a thread, stoppable; `port` is the bound port (useful with port 0)."""

    def __init__(self, app: Any, host: str, port: int):
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.host, self.requested_port = host, port
        self.thread = threading.Thread(target=self._serve, name=f"http-{port}", daemon=True)
        self._socket: socket.socket | None = None

    def _serve(self) -> None:
        self.server.run(sockets=[self._socket] if self._socket else None)

    def start(self, timeout: float = 10.0) -> None:
        """Bind first, here: a port in use is one line at once (uvicorn would log it from its thread, exit that
        thread, and leave the caller waiting out `timeout` for a traceback)."""
        self._socket = _bind(self.host, self.requested_port)
        self.thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self.server.started:
                return
            if not self.thread.is_alive():
                break
            deadline.wait(0.01)
        raise RuntimeError(f"HTTP server on {self.host}:{self.requested_port} did not start")

    @property
    def port(self) -> int:
        sockets = [s for srv in self.server.servers for s in srv.sockets]
        return int(sockets[0].getsockname()[1])

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


class PortInUse(SettingsError):
    """The HTTP port is taken (another watcher, a second `run`): a setting to change or a process to stop."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        raise PortInUse(
            f"WATCHER_HTTP__PORT: cannot listen on {host}:{port} ({os.strerror(exc.errno or 0)}); stop the process "
            "that holds it (another sync-watcher?) or set WATCHER_HTTP__PORT to a free port"
        ) from None
