"""The rollout watch wired into the watcher: which apps' trees it reads, how many at once, and what it records."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.listening import OnEvent
from tests.support.no_repo import NoRepo
from tests.support.trees import FAILING, HEALTHY
from watcher.adapters.argocd import ArgoCDUnavailable
from watcher.domain import Event, EventKind
from watcher.observe.cycle import Watcher
from watcher.settings import load_settings
from watcher.store import Store

SYNC = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)  # the trees of tests/core/test_rollout.py are timed from it
REV = "b" * 40


def app(name: str, health: str = "Progressing", finished: datetime = SYNC + timedelta(seconds=3)) -> dict[str, Any]:
    """A swagger v1alpha1Application whose automated sync of REV succeeded at `finished`."""
    return {
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "source": {"repoURL": "https://git.invalid/gitops", "path": f"apps/{name}", "targetRevision": "main"},
            "syncPolicy": {"automated": {}},
        },
        "status": {
            "sync": {"status": "Synced", "revision": REV},
            "health": {"status": health},
            "operationState": {
                "phase": "Succeeded",
                "startedAt": SYNC.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "finishedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "operation": {"sync": {"revision": REV}, "initiatedBy": {"automated": True}},
                "syncResult": {"revision": REV},
            },
        },
    }


class FakeArgo:
    """Apps and their resource trees as Argo CD serves them; counts tree reads and how many run at once."""

    def __init__(self, apps: dict[str, dict[str, Any]], trees: dict[str, dict[str, Any] | Exception]):
        self.apps, self.trees = apps, trees
        self.reads: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        self.entered = threading.Barrier(1)

    def iter_apps(self) -> list[dict[str, Any]]:
        return list(self.apps.values())

    def get_app(self, name: str, namespace: str = "", refresh: str | None = None, project: str = "") -> dict[str, Any]:
        return self.apps[name]

    def resource_tree(self, name: str, namespace: str = "") -> dict[str, Any]:
        with self._lock:
            self.reads.append(name)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            threading.Event().wait(0.02)  # a round trip, so that reads overlap when they may
            tree = self.trees.get(name, HEALTHY["all_ready"])
            if isinstance(tree, Exception):
                raise tree
            return tree
        finally:
            with self._lock:
                self.in_flight -= 1


class Clock:
    def __init__(self) -> None:
        self.now = SYNC + timedelta(seconds=5)

    def __call__(self) -> datetime:
        return self.now


def watcher_for(tmp_path: Path, argocd: FakeArgo, clock: Clock, **detection: Any) -> tuple[Watcher, list[Event]]:
    settings = load_settings(
        argocd={"url": "http://argocd.invalid"},
        git={"url": "https://git.invalid/gitops"},
        detection=detection,
        store={"url": f"sqlite:///{tmp_path}/state.db"},
    )
    heard: list[Event] = []
    store = Store(settings.store.url)
    watcher = Watcher(settings, argocd, NoRepo(), store, clock=clock, listeners=[OnEvent(heard.append)])  # type: ignore[arg-type]
    return watcher, heard


def step(watcher: Watcher, clock: Clock, to_seconds: float) -> None:
    clock.now = SYNC + timedelta(seconds=to_seconds)
    watcher.poll_apps()
    watcher.tick()
    watcher.watch_rollouts()


def failures(heard: list[Event]) -> list[tuple[str, EventKind]]:
    return [(e.app, e.kind) for e in heard if e.kind not in (EventKind.DEPLOYED, EventKind.DEPLOY_STARTED)]


def test_a_crash_looping_rollout_is_raised_within_the_grace_and_argo_cds_later_verdicts_fold_into_it(
    tmp_path: Path,
) -> None:
    argocd = FakeArgo({"api": app("api"), "web": app("web")}, {"api": FAILING["crash_loop"]})
    clock = Clock()
    watcher, heard = watcher_for(tmp_path, argocd, clock)
    for t in (5, 15):
        step(watcher, clock, t)
    assert failures(heard) == []  # failing since the read at 5 s, grace 20 s
    step(watcher, clock, 25)
    assert failures(heard) == [("api", EventKind.ROLLOUT_FAILING)]
    event = heard[-1]
    assert event.revision == REV
    assert event.evidence["failing_pods"] == [
        {"name": "plate-api-7c9b-x1", "reason": "CrashLoopBackOff", "restarts": 3, "images": [FAILING_IMAGE]}
    ]
    assert event.evidence["failing_images"] == [FAILING_IMAGE]
    assert event.onset == SYNC + timedelta(seconds=5)  # first seen failing
    incident = watcher.store.detection.find_incident("api", EventKind.ROLLOUT_FAILING, REV)
    assert incident is not None and incident.resolved_at is None
    # The app goes on Progressing to the deadline, then Degraded: the same bad deploy, no second incident.
    reads = argocd.reads.count("api")
    step(watcher, clock, 700)
    argocd.apps["api"] = app("api", health="Degraded")
    for t in (710, 900, 1000):
        step(watcher, clock, t)
    # web's pods never failed in its tree: the progress deadline is still its safety net.
    assert failures(heard) == [("api", EventKind.ROLLOUT_FAILING), ("web", EventKind.STUCK_PROGRESSING)]
    assert argocd.reads.count("api") == reads  # once raised, its tree is not read again
    # A fix deployed and healthy recovers it, as any other failure.
    fixed = app("api", health="Healthy", finished=SYNC + timedelta(seconds=1100))
    fixed["status"]["sync"]["revision"] = fixed["status"]["operationState"]["syncResult"]["revision"] = "c" * 40
    fixed["status"]["operationState"]["operation"]["sync"]["revision"] = "c" * 40
    argocd.apps["api"] = fixed
    step(watcher, clock, 1110)
    assert failures(heard)[-1] == ("api", EventKind.RECOVERED)


FAILING_IMAGE = "registry.example/plate-api:2.5.0"


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_a_healthy_rollout_records_nothing(tmp_path: Path, name: str) -> None:
    argocd = FakeArgo({"api": app("api")}, {"api": HEALTHY[name]})
    clock = Clock()
    watcher, heard = watcher_for(tmp_path, argocd, clock)
    for t in range(5, 300, 10):
        step(watcher, clock, t)
    assert failures(heard) == [] and len(argocd.reads) == 30


def test_reads_are_bounded_by_the_window_the_cap_and_the_concurrency(tmp_path: Path) -> None:
    apps = {f"app-{i:02}": app(f"app-{i:02}") for i in range(12)}
    apps["healthy"] = app("healthy", health="Healthy")
    apps["old"] = app("old", finished=SYNC - timedelta(hours=2))
    argocd = FakeArgo(apps, {})
    clock = Clock()
    watcher, _ = watcher_for(tmp_path, argocd, clock, rollout_max_apps=5, rollout_concurrency=2)
    step(watcher, clock, 5)
    assert len(argocd.reads) == 5 and argocd.most_in_flight == 2
    assert not {"healthy", "old"} & set(argocd.reads)
    argocd.reads.clear()
    step(watcher, clock, 5 + 901)  # past the window: the rollouts are no longer watched
    assert argocd.reads == []


def test_a_tree_that_cannot_be_read_is_counted_never_a_failure(tmp_path: Path) -> None:
    argocd = FakeArgo({"api": app("api")}, {"api": ArgoCDUnavailable("resource-tree: 503")})
    clock = Clock()
    watcher, heard = watcher_for(tmp_path, argocd, clock)
    for t in range(5, 100, 10):
        step(watcher, clock, t)
    assert failures(heard) == []
    assert watcher.metrics.rollout_reads.labels("failed")._value.get() == 10


def test_the_watch_reads_nothing_while_argo_cds_list_fails(tmp_path: Path) -> None:
    argocd = FakeArgo({"api": app("api")}, {"api": FAILING["crash_loop"]})
    clock = Clock()
    watcher, heard = watcher_for(tmp_path, argocd, clock)
    watcher.watch_rollouts()
    assert argocd.reads == []  # no list yet: nothing known to watch
    step(watcher, clock, 5)
    argocd.iter_apps = lambda: (_ for _ in ()).throw(ArgoCDUnavailable("503"))  # type: ignore[method-assign]
    for t in (15, 25, 35):
        step(watcher, clock, t)
    assert len(argocd.reads) == 1 and failures(heard) == []


def test_a_rollout_failure_is_revertable_like_degraded_and_explained() -> None:
    from watcher.core.policy import REVERTIBLE_KINDS, RUNTIME_KINDS

    assert EventKind.ROLLOUT_FAILING in REVERTIBLE_KINDS and EventKind.ROLLOUT_FAILING in RUNTIME_KINDS


def test_the_slack_notice_says_which_pods_fail_and_why() -> None:
    from watcher.core.notices import Severity, from_event

    pods = [
        {"name": f"plate-api-7c9b-x{i}", "reason": "CrashLoopBackOff", "restarts": 3, "images": [FAILING_IMAGE]}
        for i in range(5)
    ]
    e = Event("plate-api-stg", EventKind.ROLLOUT_FAILING, REV, SYNC, "new rollout failing", {"failing_pods": pods})
    notice = from_event(e)
    assert notice is not None and notice.kind is EventKind.ROLLOUT_FAILING and notice.severity is Severity.CRITICAL
    assert notice.detail.splitlines() == [
        "The new rollout's pods keep failing:",
        *[f"plate-api-7c9b-x{i}: CrashLoopBackOff, 3 restarts ({FAILING_IMAGE})" for i in range(3)],
        "…and 2 more",
    ]
