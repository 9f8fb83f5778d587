"""`sync-watcher demo`: a GitOps repo, the Argo CD simulator and the watcher, one good and one bad change."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.daemon import Daemon
from watcher.domain import Event, EventKind
from watcher.sim.world import SimWorld

GOOD_APP, BAD_APP = "plate-web-stg", "plate-api-stg"


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    entries: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def add(self, what: str, **details: Any) -> None:
        with self.lock:
            self.entries.append({"t": round(time.monotonic() - self.started, 2), "what": what, **details})

    def on_event(self, e: Event) -> None:
        with self.changed:
            self.events.append(e)
            self.changed.notify_all()

    def wait_for(self, test: Callable[[Event], bool], timeout: float) -> Event:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for e in self.events:
                    if test(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the demo did not see the expected event in time")
                self.changed.wait(left)


def run_demo(workdir: Path | None = None) -> dict[str, Any]:
    root = Path(workdir or tempfile.mkdtemp(prefix="sync-watcher-demo-"))
    timeline = Timeline()
    world = SimWorld.start(root)
    daemon: Daemon | None = None
    try:
        settings = world.watcher_settings(root)
        daemon = Daemon(settings, argocd_retry_max_wait=0.5)
        daemon.watcher.listeners.append(timeline.on_event)
        initial = world.work.git("rev-parse", "HEAD")
        timeline.add("commit", sha=initial[:10], author="Platform Team", subject="Initial GitOps layout")
        daemon.start()
        apps = {a["metadata"]["name"] for a in world.controller.snapshot()}
        for app in sorted(apps):
            timeline.wait_for(_deployed(app), 30)
        timeline.add("all_synced", apps=len(apps), revision=initial[:10])

        values = f"helm/applications/{GOOD_APP.rsplit('-', 1)[0]}/values-stg.yaml"
        good = world.work.commit(
            f"{GOOD_APP}: bump image to 1.26.0",
            {values: world.work.set_value(values, "image.tag", "1.26.0")},
            "Dev One",
        )
        world.work.push()
        timeline.add("commit", sha=good[:10], author="Dev One", subject=f"{GOOD_APP}: bump image to 1.26.0")
        deployed = timeline.wait_for(
            lambda e: e.app.endswith(GOOD_APP) and e.revision == good and e.kind is EventKind.DEPLOYED, 30
        )
        timeline.add("deployed", app=GOOD_APP, revision=good[:10])

        values = f"helm/applications/{BAD_APP.rsplit('-', 1)[0]}/values-stg.yaml"
        bad_subject = f"{BAD_APP}: scale down for the weekend"
        bad = world.work.commit(bad_subject, {values: world.work.set_value(values, "replicaCount", -1)}, "Dev Two")
        pushed_at = time.monotonic()
        world.work.push()
        timeline.add("commit", sha=bad[:10], author="Dev Two", subject=bad_subject)
        failing = timeline.wait_for(lambda e: e.revision == bad and e.kind is EventKind.SYNC_FAILING, 30)
        timeline.add("sync_failing", app=BAD_APP, revision=bad[:10], reason=failing.reason)
        failed = timeline.wait_for(lambda e: e.revision == bad and e.kind is EventKind.SYNC_FAILED, 30)
        detected_at = time.monotonic()
        commit = failed.evidence.get("commit") or {}
        onset = failed.evidence.get("onset")
        argocd_lag = (failed.at.timestamp() - _ts(onset)) if isinstance(onset, str) else None
        timeline.add(
            "failure_detected",
            app=BAD_APP,
            kind=failed.kind.value,
            revision=bad[:10],
            culprit=commit,
            message=str(failed.evidence.get("message", ""))[:300],
        )
        incidents = daemon.store.incidents(open_only=True)
        return {
            "repo": world.repo_url,
            "argocd": world.argocd_url,
            "timeline": timeline.entries,
            "good_commit": {"sha": good, "deployed": deployed.at.isoformat()},
            "bad_commit": {"sha": bad, "subject": bad_subject, "author": "Dev Two"},
            "detected": {
                "app": failed.app,
                "kind": failed.kind.value,
                "revision": failed.revision,
                "culprit_matches_bad_commit": failed.revision == bad,
                "seconds_from_push": round(detected_at - pushed_at, 2),
                "seconds_from_argocd_verdict": round(argocd_lag, 2) if argocd_lag is not None else None,
            },
            "open_incidents": [
                {"id": i.id, "app": i.app, "kind": i.kind.value, "revision": i.revision} for i in incidents
            ],
            "total_seconds": round(time.monotonic() - timeline.started, 2),
        }
    finally:
        if daemon is not None:
            daemon.stop()
        world.stop()
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def _deployed(app: str) -> Callable[[Event], bool]:
    return lambda e: e.app == app and e.kind is EventKind.DEPLOYED


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def render_text(result: dict[str, Any]) -> str:
    lines = ["sync-watcher demo: simulated Argo CD + a real git daemon on 127.0.0.1", ""]
    for e in result["timeline"]:
        what = e["what"]
        if what == "commit":
            text = f"commit   {e['sha']}  {e['author']:<14} {e['subject']}"
        elif what == "all_synced":
            text = f"synced   {e['apps']} apps synced and healthy at {e['revision']}"
        elif what == "deployed":
            text = f"deployed {e['app']} at {e['revision']}: sync succeeded"
        elif what == "sync_failing":
            text = f"failing  {e['app']} at {e['revision']}: {e['reason']}"
        else:
            c = e.get("culprit") or {}
            text = (
                f"DETECTED {e['kind']} on {e['app']}\n{'':>19}culprit {e['revision']} by {c.get('author', '?')}:"
                f" {c.get('subject', '?')}\n{'':>19}Argo CD: {e['message'][:160]}"
            )
        lines.append(f"  +{e['t']:>6.2f}s  {text}")
    d = result["detected"]
    lines += [
        "",
        f"time to detect: {d['seconds_from_push']}s from the push, "
        f"{d['seconds_from_argocd_verdict']}s after Argo CD's verdict",
        f"culprit is the bad commit: {'yes' if d['culprit_matches_bad_commit'] else 'NO'}",
        f"open incidents: {len(result['open_incidents'])}; demo took {result['total_seconds']}s; nothing left running",
    ]
    return "\n".join(lines)
