"""A list poll on a bad day: the apps that look wrong are read whole at the same time, never more at once than
the setting allows, one failed read is one unreadable app, and the apps read whole are observed first."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.listening import OnEvent
from tests.support.no_repo import SHA, NoRepo
from tests.support.waiting import wait_for
from watcher.adapters.argocd import ArgoCDUnavailable
from watcher.domain import INCIDENT_KINDS, Event, EventKind
from watcher.observe.apps_listing import list_snapshots
from watcher.observe.cycle import Watcher
from watcher.settings import load_settings
from watcher.store import Store


def application(name: str, health: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"project": "default", "syncPolicy": {"automated": {}}},
        "status": {
            "sync": {"status": "Synced", "revision": SHA},
            "health": {"status": health, "message": "" if health == "Healthy" else "ImagePullBackOff"},
            "operationState": {
                "phase": "Succeeded",
                "startedAt": "2026-11-22T10:00:00Z",
                "finishedAt": "2026-11-22T10:00:05Z",
                "operation": {"sync": {"revision": SHA}},
            },
        },
    }


class BadDay:
    """An Argo CD whose GETs wait at a gate the test opens, counting how many are in flight."""

    def __init__(self, healthy: int, degraded: int, refused: frozenset[str] = frozenset()):
        self.apps = [application(f"ok-{i:03d}", "Healthy") for i in range(healthy)]
        self.apps += [application(f"bad-{i:03d}", "Degraded") for i in range(degraded)]
        self.refused = refused
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.gets: list[str] = []

    def iter_apps(self) -> Iterator[dict[str, Any]]:
        return iter(self.apps)

    def get_app(self, name: str, namespace: str = "", refresh: str | None = None, project: str = "") -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.gets.append(name)
        try:
            assert self.gate.wait(20), "the test never opened the gate"
            if name in self.refused:
                raise ArgoCDUnavailable(f"GET /api/v1/applications/{name}: HTTP 503")
            return next(a for a in self.apps if a["metadata"]["name"] == name)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_gets_run_together_and_never_more_than_the_bound() -> None:
    argocd = BadDay(healthy=30, degraded=24, refused=frozenset({"bad-007"}))
    done: list[Any] = []
    walk = threading.Thread(target=lambda: done.append(list_snapshots(argocd, concurrent_gets=4)))
    walk.start()
    wait_for(lambda: argocd.in_flight == 4, what="four GETs in flight at once")
    argocd.gate.set()
    walk.join(20)
    listing = done[0]
    assert argocd.most_in_flight == 4 and len(argocd.gets) == 24
    assert set(listing.unreadable) == {"bad-007"} and "HTTP 503" in listing.unreadable["bad-007"]
    assert len(listing.snapshots) == 53 and listing.snapshots["bad-008"].complete
    # the apps read whole come first: the watcher observes (and records) them before the healthy ones
    order = list(listing.snapshots)
    assert order[:23] == [f"bad-{i:03d}" for i in range(24) if i != 7]


def test_one_get_at_a_time_when_the_setting_says_one() -> None:
    argocd = BadDay(healthy=2, degraded=5)
    argocd.gate.set()
    listing = list_snapshots(argocd, concurrent_gets=1)
    assert argocd.most_in_flight == 1 and len(listing.snapshots) == 7


def test_failures_are_recorded_before_the_healthy_apps_of_a_first_poll(tmp_path: Path) -> None:
    argocd = BadDay(healthy=1200, degraded=30)
    argocd.gate.set()
    settings = load_settings(
        argocd={"url": "http://argocd.invalid", "concurrent_gets": 8},
        git={"url": "https://git.invalid/gitops"},
        detection={"degraded_grace_seconds": 0},
        store={"url": f"sqlite:///{tmp_path}/state.db"},
    )
    heard: list[Event] = []
    watcher = Watcher(settings, argocd, NoRepo(), Store(settings.store.url), listeners=[OnEvent(heard.append)])
    watcher.poll_apps()
    first_healthy = next(i for i, e in enumerate(heard) if e.app.startswith("ok-"))
    failures = [i for i, e in enumerate(heard) if e.kind in INCIDENT_KINDS]
    assert len(failures) == 30 and max(failures) < first_healthy
    assert {e.kind for e in heard if e.app.startswith("ok-")} == {EventKind.DEPLOYED}
