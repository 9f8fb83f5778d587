"""The pages at fleet scale: the median time of /ui/ (first and a filtered later page), an incident page and an app
page with N apps watched and a store holding a bad day's incidents, against /api/apps served by the same process in
the same run (the JSON of every app: the baseline). Goal: each page under 100 ms.

    python bench/pages.py [--apps 10000] [--incidents 500] [--runs 31]

Over HTTP on loopback to the daemon's own server (uvicorn in a thread), one request at a time; other work on the
machine shares its cores: compare the ratios more than the milliseconds.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from synthetic import REPO, SHA, line, median, ms, ratio, timed

from watcher.core.detect import AppTracker
from watcher.core.slack_message import links_for
from watcher.domain import Action, AppSnapshot, Event, EventKind, Health, RevertMode, RevertState, SyncStatus
from watcher.ports import FleetHealth, FleetStatus
from watcher.run.web import BackgroundServer, build_app
from watcher.store import Store

GOAL_MS = 100.0
ENVIRONMENTS = ("dev", "stg", "prod")
PATCH = "diff --git a/values.yaml b/values.yaml\n@@ -1,200 +1,200 @@\n" + "-a: 1\n+a: 2\n" * 200


class BenchFleet:
    """The fleet as the HTTP layer sees it: a status copied at once (what Watcher.status() hands over)."""

    def __init__(self, status: FleetStatus):
        self._status = status

    def status(self) -> FleetStatus:
        return FleetStatus(dict(self._status.trackers), self._status.open_incidents, self._status.paths, {})

    def environment(self, key: str) -> str:
        return key.rsplit("-", 1)[-1]

    def health(self) -> FleetHealth:
        return FleetHealth({}, {}, {})


def fleet(apps: int, failing: int, now: datetime) -> FleetStatus:
    trackers = {}
    for i in range(apps):
        health = Health.DEGRADED if i < failing else Health.HEALTHY
        s = AppSnapshot(f"app-{i:05d}-{ENVIRONMENTS[i % 3]}", f"team-{i % 40}", f"project-{i % 7}",
                        SyncStatus.SYNCED, SHA, health, phase=None)  # fmt: skip
        trackers[s.key] = AppTracker(last=s, deployed_revision=SHA, deployed_at=now - timedelta(minutes=i % 600))
    open_incidents = {(k, "degraded"): 1 for k in list(trackers)[:failing]}
    paths = {k: (f"apps/{k}",) for k in trackers}
    return FleetStatus(trackers, open_incidents, paths, {})


def bad_day(store: Store, status: FleetStatus, incidents: int, now: datetime) -> int:
    """`incidents` apps failed, each blamed and reverted: what the store holds on a bad day. Returns one id."""
    last = 0
    for key in list(status.trackers)[:incidents]:
        at = now - timedelta(minutes=5)
        evidence = {"message": "Deployment is degraded " * 20, "paths": [f"apps/{key}"], "onset": at.isoformat()}
        e = Event(key, EventKind.DEGRADED, SHA, at, "degraded after deploy", evidence)
        store.detection.record(key, None, [Event(key, EventKind.DEPLOY_STARTED, SHA, at, "sync running"), e], False, at)
        incident = store.detection.incidents(app=key, limit=1)[0]
        culprit = {"sha": "b" * 40, "author": "Dev", "subject": f"{key}: bump", "committed_at": at.isoformat()}
        blame = {"outcome": "culprits", "reason": "1 commit", "culprits": [culprit], "last_good_revision": SHA}
        store.audit.record_decision(incident.id, key, at, Action.REVERT, "culprit_found", "r", RevertMode.PUSH,
                                    {"blame": blame, "still_failing": True})  # fmt: skip
        rid = store.audit.start_revert(incident.id, key, RevertMode.PUSH, ["b" * 40], at)
        store.audit.finish_revert(rid, RevertState.PUSHED, at, revert_sha="c" * 40)
        last = incident.id
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--incidents", type=int, default=500)
    parser.add_argument("--runs", type=int, default=31)
    args = parser.parse_args()
    now = datetime.now(UTC)
    status = fleet(args.apps, args.incidents, now)
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as work:
        store = Store(f"sqlite:///{Path(work) / 'state.db'}")
        incident_id = bad_day(store, status, args.incidents, now)
        app = build_app(store, BenchFleet(status), lambda: b"", {}, links=links_for("", REPO),
                        patches=lambda sha, paths: PATCH)  # fmt: skip
        server = BackgroundServer(app, "127.0.0.1", 0)
        server.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as client:
                measure(client, args, incident_id, next(iter(status.trackers)))
        finally:
            server.stop()
            store.close()


def measure(client: httpx.Client, args: argparse.Namespace, incident_id: int, first_app: str) -> None:
    def get(path: str) -> None:
        r = client.get(path)
        r.raise_for_status()

    paths = {
        "/ui/ (open incidents, then page 1 of the apps)": "/ui/",
        "/ui/?environment=prod&page=20 (a filtered later page)": "/ui/?environment=prod&page=20",
        f"/ui/incidents/{incident_id} (story, culprit and diff, decision, revert)": f"/ui/incidents/{incident_id}",
        f"/ui/apps/{first_app} (incidents, reverts, DORA)": f"/ui/apps/{first_app}",
    }
    for path in ["/api/apps", *paths.values()]:
        get(path)  # warm: templates compiled, the diff read once
    baseline = timed(lambda: get("/api/apps"), args.runs)
    print(f"{args.apps} apps, {args.incidents} open incidents with their decisions and reverts; {args.runs} runs")
    line("/api/apps (baseline: the JSON of every app)", ms(baseline))
    for label, path in paths.items():
        took = timed(lambda path=path: get(path), args.runs)
        verdict = "ok" if median(took) * 1000 < GOAL_MS else f"OVER the {GOAL_MS:.0f} ms goal"
        line(label, ms(took), f"{ratio(took, baseline)} of /api/apps; goal < {GOAL_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
