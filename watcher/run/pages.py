"""The read-only pages under /ui/: read the store and the fleet once, build the view (`page_models`), render it
with Jinja2 (autoescaped) and answer with a strict Content-Security-Policy. No form here changes anything."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from watcher.core.slack_message import Links, links_for
from watcher.domain import EventKind, RetryLater, utcnow
from watcher.logs import get_logger
from watcher.ports import Fleet
from watcher.run import app_view, fleet_view, incident_view, page_text
from watcher.settings import Settings
from watcher.store import Store

# Nothing but this pod's own stylesheet: no script at all, no inline style, no frame, no form posting elsewhere.
CSP = "; ".join(
    (
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
OPEN_INCIDENTS_SHOWN = 50
STORY_BEFORE = timedelta(days=1)  # the app's events this long before detection tell how the revision arrived
STORY_MAX = 1000
DORA_WINDOW = timedelta(days=30)
DORA_MAX = 2000
DIFF_MAX_CHARS = 100_000
DIFF_CACHE = 256

Patches = Callable[[str, Sequence[str]], str]  # (sha, paths) -> what the commit changed there, as a patch


def page_links(settings: Settings) -> Links:
    """Where the pages link to: Argo CD's UI (as Slack's links do), the forge's commits, the pages themselves."""
    s = settings
    argocd_ui = s.slack.argocd_ui_url or s.argocd.url
    return links_for(argocd_ui, s.git.url, s.forge.web_url, s.forge.kind, s.http.external_url)


def templates() -> Environment:
    """Autoescape on for every template (and for strings rendered from them): git and Argo CD text is hostile."""
    return Environment(
        loader=PackageLoader("watcher.run", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a misspelt field fails the test that renders it, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )


class DiffCache:
    """Patches by (sha, paths): a commit never changes, so each is read from git once (bounded). A read git could
    not answer (the clone busy past its lock's deadline, content not fetched within the git timeout) shows no diff
    and is asked again by the next request: never an error page, never an empty diff kept for good."""

    def __init__(self, read: Patches | None):
        self.read = read
        self._kept: OrderedDict[tuple[str, tuple[str, ...]], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha: str, paths: Sequence[str]) -> str:
        if self.read is None or not sha or not paths:
            return ""
        key = (sha, tuple(paths))
        with self._lock:
            if key in self._kept:
                return self._kept[key]
        try:
            text = self.read(sha, list(paths))[:DIFF_MAX_CHARS]
        except RetryLater as exc:
            get_logger().warning("page_diff_unread", sha=sha[:12], error=str(exc))
            return ""
        if not text:
            return ""  # a root commit shows nothing either way; a clone still lacking the commit may have it later
        with self._lock:
            self._kept[key] = text
            while len(self._kept) > DIFF_CACHE:
                self._kept.popitem(last=False)
        return text


def page_routes(
    store: Store,
    fleet: Fleet,
    links: Links,
    patches: Patches | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> list[Route]:
    env = templates()
    css = resources.files("watcher.run").joinpath("static/pages.css").read_bytes()
    diffs = DiffCache(patches)

    def page(name: str, status: int = 200, **context: Any) -> Response:
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def not_found(what: str) -> Response:
        return page("missing.html", 404, what=what, title="Not found")

    def stylesheet(_: Request) -> Response:
        return Response(css, media_type="text/css", headers=HEADERS | {"Cache-Control": "max-age=300"})

    def root(_: Request) -> Response:
        return RedirectResponse("/ui/", status_code=308)

    def fleet_route(request: Request) -> Response:
        now = clock()
        view = fleet_view.fleet_page(
            fleet.status(),
            fleet.environment,
            fleet_view.Filters.parse(request.query_params),
            store.detection.incidents(open_only=True, limit=OPEN_INCIDENTS_SHOWN),
            store.detection.incidents(limit=2 * fleet_view.RECENT_SHOWN),
            store.audit.suspended(),
            store.audit.circuit(),
            store.audit.reverts(limit=fleet_view.LAST_REVERTS),
            links,
            now,
        )
        return page("fleet.html", view=view, title="Fleet")

    def incident_route(request: Request) -> Response:
        raw = request.path_params["incident_id"]
        incident = store.detection.incident(int(raw)) if raw.isdigit() and len(raw) < 12 else None
        if incident is None:
            return not_found(f"incident #{page_text.clean(raw, 20)}")
        decisions = store.audit.decisions(incident_id=incident.id)
        paths = incident_view.incident_paths(incident)
        thread = store.slack.incident_thread(incident.id)
        view = incident_view.incident_page(
            incident,
            decisions,
            store.audit.reverts(incident_id=incident.id),
            store.detection.events_since(incident.detected_at - STORY_BEFORE, limit=STORY_MAX, app=incident.app),
            {sha: diffs.get(sha, paths) for sha in incident_view.culprit_shas(decisions)},
            links,
            fleet.environment(incident.app),
            clock(),
            (thread.channel, thread.ts) if thread else None,
        )
        return page("incident.html", view=view, title=f"#{view.id} {view.app}")

    def app_route(request: Request) -> Response:
        key = fleet_view.key_of(request.path_params["namespace"], request.path_params["name"])
        status = fleet.status()
        incidents = store.detection.incidents(app=key, limit=DORA_MAX)
        if key not in status.trackers and not incidents:
            return not_found(f"app {page_text.clean(key, 500)}")
        now = clock()
        view = app_view.app_page(
            key,
            status,
            fleet.environment(key),
            incidents,
            store.audit.reverts(app=key, limit=app_view.APP_HISTORY),
            store.detection.events_since(now - DORA_WINDOW, [EventKind.DEPLOYED], DORA_MAX, app=key),
            store.audit.suspended().get(key),
            links,
            now,
            now - DORA_WINDOW,
        )
        return page("app.html", view=view, title=view.key)

    return [
        Route("/ui", root),
        Route("/ui/", fleet_route),
        Route("/ui/static/pages.css", stylesheet),
        Route("/ui/incidents/{incident_id}", incident_route),
        Route("/ui/apps/{namespace}/{name}", app_route),
    ]
