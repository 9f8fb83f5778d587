"""Apps in any namespace: two Applications named plate-api-stg, one in Argo CD's namespace, one in team-a
(scenario same-name-other-namespace; Argo CD's QualifiedName '<ns>/<name>', pkg/apis/application/v1alpha1/
types.go:4137-4154). Each is its own app: events, incidents and the GETs (`?appNamespace=`) never mix them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.listening import OnEvent
from tests.support.no_repo import SHA, NoRepo
from watcher.domain import INCIDENT_KINDS, Event
from watcher.observe.cycle import Watcher
from watcher.settings import load_settings
from watcher.store import Store


def application(namespace: str, health: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "plate-api-stg", "namespace": namespace},
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


class TwoNamespaces:
    def __init__(self) -> None:
        self.apps = [application("argocd", "Healthy"), application("team-a", "Degraded")]
        self.gets: list[tuple[str, str]] = []

    def iter_apps(self) -> Iterator[dict[str, Any]]:
        return iter(self.apps)

    def get_app(self, name: str, namespace: str = "", refresh: str | None = None) -> dict[str, Any]:
        self.gets.append((namespace, name))
        return next(a for a in self.apps if (a["metadata"]["namespace"], a["metadata"]["name"]) == (namespace, name))


def test_two_apps_with_one_name_never_mix(tmp_path: Path) -> None:
    argocd = TwoNamespaces()
    settings = load_settings(
        argocd={"url": "http://argocd.invalid"},
        git={"url": "https://git.invalid/gitops"},
        detection={"degraded_grace_seconds": 0},
        store={"url": f"sqlite:///{tmp_path}/state.db"},
    )
    store = Store(settings.store.url)
    heard: list[Event] = []
    watcher = Watcher(settings, argocd, NoRepo(), store, listeners=[OnEvent(heard.append)])
    watcher.poll_apps()
    failures = [e for e in heard if e.kind in INCIDENT_KINDS]
    assert [e.app for e in failures] == ["team-a/plate-api-stg"]  # not the healthy argocd/plate-api-stg
    assert argocd.gets == [("team-a", "plate-api-stg")]  # the GET of the failing one names its namespace
    assert [i.app for i in store.detection.incidents()] == ["team-a/plate-api-stg"]
    assert store.detection.incidents(app="plate-api-stg") == []
