"""In-memory fakes of the reverter's ports (watcher.ports), a clock the test moves, and `Rig`: the real Reverter
built on them with a real Store on a SQLite file, the way the daemon builds it on the real adapters."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.listening import OnReport
from watcher.adapters.argocd import ArgoCDUnavailable
from watcher.adapters.forge import ForgeError
from watcher.adapters.gitrepo import GitUnavailable
from watcher.core.branches import RemoteBranches
from watcher.core.detect import AppTracker
from watcher.domain import (
    Action,
    AppContext,
    AppSnapshot,
    ChangedCommit,
    Commit,
    DecisionRecord,
    Event,
    EventKind,
    Health,
    Phase,
    RevertMode,
    RevertRecord,
    RevertReport,
    RevertResult,
    RevertState,
    RevertStep,
    SyncStatus,
)
from watcher.metrics.registry import Metrics
from watcher.revert.reverter import Reverter
from watcher.settings import Settings, load_settings
from watcher.store import Store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
APP = "plate-api-stg"
OTHER = "plate-web-stg"
GOOD = "600d" + "0" * 36  # the last revision the app was Synced and Healthy at
BAD = "bad0" + "1" * 36  # the failing revision, and the culprit commit
HEAD = "4ead" + "2" * 36  # the remote head the revert is made on
REVERT = "2e7e" + "3" * 36  # the revert commit git pushes
DIFFSTAT = " apps/plate-api-stg/deployment.yaml | 2 +-"
REVERTS_TOTAL = "sync_watcher_reverts_total"
PATHS = {APP: ("apps/plate-api-stg",), OTHER: ("apps/plate-web-stg",)}
ONSET_AGO = timedelta(minutes=1)  # the failure began this long before it was detected
CULPRIT = Commit(BAD, "Dev Two", NOW - timedelta(minutes=5), "scale plate-api to -1 replicas", (GOOD,))


class FakeClock:
    """The reverter's clock (`clock()`) and its retry queue's monotonic time, moved only by `advance`."""

    def __init__(self, start: datetime = NOW):
        self.start = start
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return 1000.0 + (self.now - self.start).total_seconds()


# A content failure in Argo CD's words that names no object (kubectl's client-side validation in the dry run,
# gitops-engine/pkg/sync/sync_context.go:553 and research row C7): the revert flow, not the evidence rule.
FAILED_MESSAGE = (
    "one or more objects failed to apply, reason: error validating data: ValidationError(Deployment.spec.replicas): "
    'invalid type for io.k8s.api.apps.v1.DeploymentSpec.replicas: got "string", expected "integer"'
)


def application(
    name: str,
    *,
    phase: str = "Failed",
    operation_revision: str = BAD,
    retry_count: int = 0,
    sync: str = "OutOfSync",
    sync_revision: str = GOOD,
    health: str = "Healthy",
    history: Sequence[str] = (GOOD,),
    automated: bool = True,
    initiated_by: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An Application as Argo CD's GET /api/v1/applications/{name} returns it (the fields snapshot_from_app reads)."""
    return {
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"path": PATHS.get(name, ("",))[0], "targetRevision": "main"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}} if automated else {},
        },
        "status": {
            "sync": {"status": sync, "revision": sync_revision},
            "health": {"status": health},
            "operationState": {
                "phase": phase,
                "message": FAILED_MESSAGE,
                "retryCount": retry_count,
                "startedAt": (NOW - timedelta(minutes=2)).isoformat(),
                "operation": {
                    "sync": {"revision": operation_revision},
                    "initiatedBy": initiated_by if initiated_by is not None else {"automated": True},
                },
                "syncResult": {"revision": operation_revision},
            },
            "history": [{"revision": r, "id": i} for i, r in enumerate(history)],
        },
    }


class FakeArgoCD:
    """ArgoCDActions: answers GETs from `apps`, or raises ArgoCDUnavailable while `down`; records every call."""

    def __init__(self, apps: Mapping[str, dict[str, Any]]):
        self.apps = dict(apps)
        self.trees: dict[str, dict[str, Any]] = {}  # name -> resource tree (default: no nodes)
        self.down = False
        self.answers_left: int | None = None  # not None: goes down after this many more calls
        self.calls: list[tuple[str, str, str | None]] = []  # (call, app, refresh)
        # name -> GET .../syncwindows answer (default: no windows); project -> the project's active windows
        self.windows: dict[str, dict[str, Any]] = {}
        self.project_windows: dict[str, dict[str, Any]] = {}
        self.window_reads: list[str] = []  # kept apart from `calls`: the tests of other rules assert those exactly

    def _answer(self) -> None:
        if self.answers_left is not None:
            self.down = self.down or self.answers_left <= 0
            self.answers_left -= 1

    def resource_tree(self, name: str, namespace: str = "") -> dict[str, Any]:
        self.calls.append(("resource_tree", name, None))
        self._answer()
        if self.down:
            raise ArgoCDUnavailable(f"GET /api/v1/applications/{name}/resource-tree: ConnectTimeout")
        return copy.deepcopy(self.trees.get(name, {"nodes": []}))

    def get_app(self, name: str, namespace: str = "", refresh: str | None = None, project: str = "") -> dict[str, Any]:
        self.calls.append(("get_app", name, refresh))
        self._answer()
        if self.down:
            raise ArgoCDUnavailable(f"GET /api/v1/applications/{name}: ConnectTimeout")
        return copy.deepcopy(self.apps[name])

    def sync_windows(self, name: str, namespace: str = "") -> dict[str, Any]:
        self.window_reads.append(name)
        if self.down:
            raise ArgoCDUnavailable(f"GET /api/v1/applications/{name}/syncwindows: ConnectTimeout")
        return copy.deepcopy(self.windows.get(name, {}))

    def project_sync_windows(self, project: str) -> dict[str, Any]:
        self.window_reads.append(f"project/{project}")
        return copy.deepcopy(self.project_windows.get(project, {}))

    def terminate_operation(self, name: str, namespace: str = "") -> None:
        self.calls.append(("terminate_operation", name, None))
        self._answer()
        if self.down:
            raise ArgoCDUnavailable(f"DELETE /api/v1/applications/{name}/operation: ConnectTimeout")

    @property
    def terminated(self) -> list[str]:
        return [app for call, app, _ in self.calls if call == "terminate_operation"]

    @property
    def refreshed(self) -> list[str]:
        return [app for call, app, refresh in self.calls if call == "get_app" and refresh == "normal"]


@dataclass
class RevertCall:
    culprits: tuple[str, ...]
    message: str
    author: tuple[str, str]
    push_branch: str | None
    retries: int
    onto: str | None = None
    only: dict[str, Any] = field(default_factory=dict)  # culprit sha -> the only files undone (a split revert)


class FakeRevertRepo:
    """RevertRepo, scripted: what the range holds, what git already reverted, and what each `revert` answers."""

    def __init__(self) -> None:
        # The mainline commits since the last good revision, newest first; `changes` returns those under `paths`.
        self.changed: list[ChangedCommit] = [ChangedCommit(CULPRIT, ("apps/plate-api-stg/deployment.yaml",))]
        # Mainline commits after the failing revision up to the head (a fix or a revert pushed meanwhile).
        self.after_failing: list[ChangedCommit] = []
        self.not_ancestors: set[tuple[str, str]] = set()
        self.reverted_in_git: dict[str, str] = {}  # culprit -> a commit on the branch naming it in a trailer
        self.by_incident: dict[str, str] = {}  # incident uid -> a revert commit carrying its trailer (Rig.uid)
        self.answers: list[RevertResult | Exception] = []  # what `revert` answers, in turn; then a clean revert
        self.unreachable = False  # sync raises GitUnavailable
        self.watched: tuple[str, ...] = ("main",)  # the watched branches, all at HEAD; the remote's default: main
        self.remote_branches: tuple[str, ...] = ()  # branches the remote has besides main
        self.calls: list[str] = []
        self.reverts: list[RevertCall] = []
        self.searched_since: list[datetime] = []  # find_by_incident's `since`, per call

    def sync(self) -> str:
        self.calls.append("sync")
        if self.unreachable:
            raise GitUnavailable("fetch failed: fatal: unable to access 'https://git.example/gitops.git/'")
        return HEAD

    def branch_heads(self) -> RemoteBranches:
        head = self.sync()
        return RemoteBranches({b: head for b in self.watched}, "main", frozenset({"main", *self.remote_branches}))

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        self.calls.append("is_ancestor")
        return (ancestor, descendant) not in self.not_ancestors

    def changes(self, since: str, until: str, paths: Any, limit: int) -> tuple[list[ChangedCommit], bool]:
        self.calls.append("changes")
        commits = self.after_failing if until == HEAD else self.changed  # (failing, head] or (last good, failing]
        touched = [c for c in commits if any(f == p or f.startswith(p + "/") for f in c.files for p in paths)]
        return touched, False

    def confirmed_reverts(self, commit: Commit) -> tuple[str, ...]:
        self.calls.append("confirmed_reverts")
        return commit.reverts

    def find_reverts(
        self, shas: Any, branch: str | None = None, paths: Any = (), at: str | None = None
    ) -> dict[str, str]:
        self.calls.append("find_reverts")
        return {s: r for s, r in self.reverted_in_git.items() if s in shas}

    def patch(self, sha: str, paths: Any) -> str:
        self.calls.append("patch")
        return ""

    def files_under(self, rev: str, directories: Any) -> dict[str, str]:
        self.calls.append("files_under")
        return {}

    def find_by_incident(self, uid: str, culprits: Any, since: datetime) -> str | None:
        self.calls.append("find_by_incident")
        self.searched_since.append(since)
        return self.by_incident.get(uid)

    def revert(
        self,
        culprits: Any,
        message: str,
        author: tuple[str, str],
        push_branch: str | None,
        retries: int = 3,
        onto: str | None = None,
        only: Any = None,
    ) -> RevertResult:
        self.calls.append("revert")
        shas = tuple(c.sha for c in culprits)
        self.reverts.append(RevertCall(shas, message, author, push_branch, retries, onto, dict(only or {})))
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        # Like GitRepo.revert: a dry run (no branch) commits in the scratch tree and pushes nothing.
        return answer or RevertResult(REVERT if push_branch else None, HEAD, DIFFSTAT, 1)


class FakeFleet:
    """Fleet: what the watcher knows about each app; `settle` stands for the watcher's next poll of one."""

    def __init__(self, annotations: Mapping[str, Mapping[str, str]] | None = None):
        self.contexts = {
            key: AppContext(
                key=key,
                name=key,
                namespace="",
                annotations=dict((annotations or {}).get(key, {})),
                last=None,
                good_revisions=(GOOD,),
                specs={},
                paths=dict(PATHS),
            )
            for key in PATHS
        }

    def app_context(self, key: str) -> AppContext:
        return self.contexts[key]

    def environment(self, key: str) -> str:
        return key.rsplit("-", 1)[-1]

    def annotate(self, key: str, annotations: Mapping[str, str]) -> None:
        self.contexts[key] = replace(self.contexts[key], annotations=dict(annotations))

    def settle(self, key: str, revision: str, health: Health = Health.HEALTHY, synced: str | None = "") -> None:
        """Synced at `revision` after a sync of `synced` (default: `revision` itself; None: no sync ran)."""
        ran = revision if synced == "" else synced
        snap = AppSnapshot(
            key,
            sync_status=SyncStatus.SYNCED,
            sync_revision=revision,
            health=health,
            phase=Phase.SUCCEEDED if ran else None,
            operation_revision=ran,
        )
        self.contexts[key] = replace(self.contexts[key], last=snap)


class FakePulls:
    """PullRequests: opens a pull request and returns its URL, or raises `refuse`."""

    def __init__(self) -> None:
        self.refuse: ForgeError | None = None
        self.opened: list[tuple[str, str, str]] = []  # (branch, base, title)

    def open(self, branch: str, base: str, title: str, body: str) -> str:
        if self.refuse is not None:
            raise self.refuse
        self.opened.append((branch, base, title))
        return f"https://github.example/org/gitops/pull/{len(self.opened)}"


def settings_for(root: Path, mode: str, **revert: Any) -> Settings:
    """Settings as the daemon loads them, with `mode` and no cooldown (tests/support/revert_world.py does the same)."""
    return load_settings(
        git={"url": "https://git.example/org/gitops.git", "branch": "main", "clone_dir": root / "clone"},
        store={"url": f"sqlite:///{root}/state.db"},
        revert={"mode": mode, "cooldown_seconds": 0.0, "verify_deadline_seconds": 600.0} | revert,
        forge={"kind": "github", "token": "test-forge-token"} if mode == "pull-request" else {},
    )


@dataclass
class Rig:
    """The real Reverter on the fakes and a real Store; `told` is what its listeners heard, in order."""

    settings: Settings
    clock: FakeClock
    store: Store
    argocd: FakeArgoCD = field(default_factory=lambda: FakeArgoCD({k: application(k) for k in PATHS}))
    repo: FakeRevertRepo = field(default_factory=FakeRevertRepo)
    fleet: FakeFleet = field(default_factory=FakeFleet)
    pulls: FakePulls = field(default_factory=FakePulls)
    metrics: Metrics = field(default_factory=Metrics)
    told: list[RevertReport] = field(default_factory=list)
    reverter: Reverter = field(init=False)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> Reverter:
        """A new process on the same store, git and Argo CD (what a crash and a restart leave)."""
        self.metrics = Metrics()
        self.told = []
        self.reverter = Reverter(
            self.settings, self.fleet, self.argocd, self.repo, self.store, self.metrics, self.pulls, self.clock,
            listeners=[OnReport(self.told.append)],
        )  # fmt: skip
        return self.reverter

    def fail(self, app: str = APP, revision: str = BAD) -> int:
        """The detector saw `app` fail to sync `revision`: store the event (which opens the incident)."""
        event = Event(
            app,
            EventKind.SYNC_FAILED,
            revision,
            self.clock(),
            "sync failed: one or more objects failed to apply",
            {"phase": "Failed", "message": "replicas must be >= 0", "onset": (self.clock() - ONSET_AGO).isoformat()},
        )
        self.store.detection.record(app, AppTracker(), [event], False, self.clock())
        incident = self.store.detection.find_incident(app, EventKind.SYNC_FAILED, revision)
        assert incident is not None
        return incident.id

    def broken_again(self, revision: str, app: str = APP) -> int:
        """A new commit `revision` breaks `app`: Argo CD fails it, git blames it; returns the new incident."""
        self.argocd.apps[app] = application(app, operation_revision=revision)
        self.repo.changed.insert(0, ChangedCommit(replace(CULPRIT, sha=revision), (f"{PATHS[app][0]}/deploy.yaml",)))
        return self.fail(app, revision)

    def uid(self, incident_id: int) -> str:
        """The random id the incident's revert names in git (what find_by_incident looks for)."""
        incident = self.store.detection.incident(incident_id)
        assert incident is not None and incident.uid
        return incident.uid

    def crashed_after_intent(self, incident_id: int, mode: RevertMode, app: str = APP) -> int:
        """What a process killed mid-revert leaves: the decision and the revert's intent, no outcome."""
        self.store.audit.record_decision(incident_id, app, self.clock(), Action.REVERT, "culprit_found", "", mode, {})
        return self.store.audit.start_revert(incident_id, app, mode, [BAD], self.clock())

    def revert_row(self, incident_id: int) -> RevertRecord:
        rows = self.store.audit.reverts(incident_id=incident_id)
        assert len(rows) == 1, rows
        return rows[0]

    def decisions(self, incident_id: int) -> list[DecisionRecord]:
        return self.store.audit.decisions(incident_id=incident_id)

    def reverts_counted(self) -> dict[str, float]:
        """Every series of sync_watcher_reverts_total: outcome -> count."""
        found = {
            s.value: self.metrics.registry.get_sample_value(REVERTS_TOTAL, {"outcome": s.value}) for s in RevertState
        }
        return {outcome: n for outcome, n in found.items() if n is not None}

    def counted_outcomes(self) -> dict[str, float]:
        """The outcomes counted at least once."""
        return {outcome: n for outcome, n in self.reverts_counted().items() if n}

    def steps(self) -> list[RevertStep]:
        return [r.step for r in self.told]
