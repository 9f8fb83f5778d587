"""Plain frozen types that the decision code takes and returns."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

T = TypeVar("T")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The production clock; decision code takes `now` as an argument and never calls this itself."""
    return datetime.now(UTC)


class SyncStatus(enum.StrEnum):
    """Argo CD's `status.sync.status` (a free string in swagger.json; these are the values Argo CD sets)."""

    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class Health(enum.StrEnum):
    """Argo CD's `status.health.status`."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


class Phase(enum.StrEnum):
    """Argo CD's `status.operationState.phase` (the trigger catalog's `Running`, `Error`, `Failed`, `Succeeded`)."""

    RUNNING = "Running"
    TERMINATING = "Terminating"
    FAILED = "Failed"
    ERROR = "Error"
    SUCCEEDED = "Succeeded"


FINAL_FAILURE_PHASES = frozenset({Phase.FAILED, Phase.ERROR})
# Conditions that mean Argo CD could not even render the app's manifests from git.
MANIFEST_ERROR_CONDITIONS = frozenset({"ComparisonError", "InvalidSpecError"})


class EventKind(enum.StrEnum):
    DEPLOY_STARTED = "deploy_started"
    DEPLOYED = "deployed"
    SYNC_FAILING = "sync_failing"
    SYNC_FAILED = "sync_failed"
    MANIFEST_ERROR = "manifest_error"
    DEGRADED = "degraded"
    ROLLOUT_FAILING = "rollout_failing"  # the new rollout's pods keep failing (resource tree), before Degraded
    STUCK_PROGRESSING = "stuck_progressing"
    DEGRADED_UNATTRIBUTED = "degraded_unattributed"
    RECOVERED = "recovered"
    APP_REMOVED = "app_removed"
    # Not the detector's: the pre-flight's warning that Argo CD's own render of a new commit fails, or that it
    # makes objects the cluster would refuse, before Argo CD deploys it (watcher/preflight). Opens no incident.
    PREFLIGHT_FAILED = "preflight_failed"


# Kinds that open an incident: a failure attributed to a revision, or one that someone must look at.
INCIDENT_KINDS = frozenset(
    {
        EventKind.SYNC_FAILED,
        EventKind.MANIFEST_ERROR,
        EventKind.DEGRADED,
        EventKind.ROLLOUT_FAILING,
        EventKind.STUCK_PROGRESSING,
        EventKind.DEGRADED_UNATTRIBUTED,
    }
)


# Argo CD names apps in its own namespace by name alone, others as namespace/name ("apps in any namespace").
CONTROL_PLANE_NAMESPACE = "argocd"


def app_key(name: str, namespace: str = "") -> str:
    return name if namespace in ("", CONTROL_PLANE_NAMESPACE) else f"{namespace}/{name}"


def shared(value: T) -> T:
    """One copy of a string that many apps repeat (namespace, project, revision, repo URL, a health message): a
    decoded list has its own copy in every item, and 10k apps keep them for as long as they are watched."""
    return cast(T, sys.intern(cast(str, value))) if type(value) is str else value


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class ResourceResult:
    """A failed entry of `status.operationState.syncResult.resources[]` (swagger v1alpha1ResourceResult): the
    object and the API server's (or the hook's) own words about it."""

    kind: str
    name: str
    namespace: str = ""
    group: str = ""
    message: str = ""
    hook_type: str = ""  # PreSync, Sync, PostSync, SyncFail: a hook; "" for a resource of the app

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


AUTOMATED = "automated"  # AppSnapshot.initiated_by of a sync the application controller started itself


@dataclass(frozen=True, slots=True)
class AppSnapshot:
    """What Argo CD said about one Application at one moment. `None` fields mean 'not reported'."""

    name: str
    namespace: str = ""
    project: str = ""
    sync_status: SyncStatus | None = None
    sync_revision: str | None = None
    health: Health | None = None
    health_message: str = ""
    phase: Phase | None = None
    operation_revision: str | None = None
    operation_started_at: datetime | None = None
    operation_finished_at: datetime | None = None
    operation_message: str = ""
    retry_count: int = 0
    conditions: tuple[Condition, ...] = ()
    history_revisions: tuple[str, ...] = ()  # status.history, oldest first (full GET only)
    initiated_by: str = ""  # who started the operation: AUTOMATED, a username, or "" when not reported
    auto_sync: bool | None = None  # spec.syncPolicy automated and enabled; None when the spec was not read
    degraded_resources: tuple[str, ...] = ()  # status.resources whose health is Degraded, "Kind/namespace/name"
    changed_resources: tuple[str, ...] | None = None  # what the last sync changed; None: not reported
    failed_resources: tuple[ResourceResult, ...] = ()  # what the last sync says failed, with its words
    sync_options: tuple[str, ...] = ()  # the last operation's syncOptions (Replace=true, ServerSideApply=true)
    complete: bool = True  # False when built from a trimmed list response (no conditions/message)

    @property
    def key(self) -> str:
        return app_key(self.name, self.namespace)

    @property
    def looks_healthy(self) -> bool:
        return (
            self.sync_status is SyncStatus.SYNCED
            and self.health is Health.HEALTHY
            and self.phase in (None, Phase.SUCCEEDED)
        )


@dataclass(frozen=True, slots=True)
class Event:
    """A fact the detector derived: what happened to which app at which revision, and why it thinks so."""

    app: str
    kind: EventKind
    revision: str | None
    at: datetime
    reason: str
    evidence: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    # The incident this event opened, as the store minted it when it recorded the event (None before it is
    # recorded, and for events that open none): readers need not look it up again.
    incident_id: int | None = field(default=None, compare=False, hash=False)

    @property
    def dedup_key(self) -> str:
        return f"{self.app}|{self.revision or '-'}|{self.kind.value}"

    @property
    def onset(self) -> datetime:
        """When the failure began as Argo CD reports it (evidence "onset"), else when it was seen."""
        return onset_from(self.evidence, self.at)


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    author: str
    committed_at: datetime
    subject: str
    parents: tuple[str, ...] = ()
    reverts: tuple[str, ...] = ()  # shas named by this commit's Sync-Watcher-Reverts trailers (a bot revert)

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


@dataclass(frozen=True, slots=True)
class ChangedCommit:
    """A mainline commit and the files it changed against its first parent (a merge: the whole branch)."""

    commit: Commit
    files: tuple[str, ...]


class UnreadableItem(dict):  # type: ignore[type-arg]
    """A list item that could not be decoded (nested past the decoder's depth): its name, if it could be seen in
    the text, under metadata, and why. The list yields it in the item's place, so the poll goes on: one
    unreadable app, kept as it was, never a poll that fails whole on every try."""

    def __init__(self, name: str | None, reason: str):
        super().__init__(metadata={"name": name} if name else {})
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    app: str
    kind: EventKind
    revision: str | None
    detected_at: datetime
    resolved_at: datetime | None
    reason: str
    evidence: dict[str, object]
    resolution: str = ""
    # Random, minted once when the incident opens: ids restart at 1 with a fresh store and two watchers on one
    # repository each count their own, so only this names the incident in git (the revert's trailer).
    uid: str | None = None

    @property
    def onset(self) -> datetime:
        return onset_from(self.evidence, self.detected_at)


def onset_from(evidence: dict[str, object], default: datetime) -> datetime:
    onset = evidence.get("onset")
    return datetime.fromisoformat(onset) if isinstance(onset, str) else default


class RevertMode(enum.StrEnum):
    OFF = "off"
    DRY_RUN = "dry-run"
    PUSH = "push"
    PULL_REQUEST = "pull-request"


class Action(enum.StrEnum):
    REVERT = "revert"
    ALERT = "alert"  # tell people, change nothing
    WAIT = "wait"  # facts are missing (Argo CD or git unreachable): decide again later


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one incident, the rule that decided it and why, in words."""

    action: Action
    rule: str
    reason: str
    culprits: tuple[str, ...] = ()
    open_circuit: bool = False
    evidence: str = ""  # the failing object and the culprit's change to it; for an alert, what was seen or missing
    wait_until: datetime | None = None  # a WAIT that cannot end before then (a sync window's end)


# Trailers on every revert commit this watcher makes: which commits it reverts, for which incident.
REVERTS_TRAILER = "Sync-Watcher-Reverts"
INCIDENT_TRAILER = "Sync-Watcher-Incident"
APP_TRAILER = "Sync-Watcher-App"


# -- the revert lifecycle: what the reverter stores, counts and reports -------------------------------------
class RevertState(enum.StrEnum):
    """A revert attempt's state. STARTED is written before git is touched; every other state is final."""

    STARTED = "started"  # intent recorded, outcome unknown (a crash here is reconciled against git)
    PUSHED = "pushed"
    PULL_REQUEST_OPENED = "pull_request_opened"
    DRY_RUN = "dry_run"
    CONFLICT = "conflict"
    PUSH_FAILED = "push_failed"
    ALREADY_UNDONE = "already_undone"
    FAILED = "failed"
    NOT_PUSHED = "not_pushed"  # nothing reached the remote: the incident is decided again


# States whose commit is (or may be) in git: its culprits count as reverted, never again.
REVERTED_STATES = frozenset({RevertState.STARTED, RevertState.PUSHED, RevertState.PULL_REQUEST_OPENED})
# States that count for the cooldown and the hourly limit.
ACTIVE_REVERT_STATES = frozenset({RevertState.PUSHED, RevertState.PULL_REQUEST_OPENED})


class VerifyResult(enum.StrEnum):
    PENDING = ""
    HEALED = "healed"  # Argo CD synced the revert (or a descendant) and the app is Healthy
    RESTORED = "restored"  # Synced and Healthy on the revert with no sync run: its manifests were already live
    NOT_HEALED = "not_healed"


class RevertStep(enum.StrEnum):
    """What the reverter tells its listeners (Slack, the demo) after a step."""

    REVERT_PUSHED = "revert_pushed"
    REVERT_PROPOSED = "revert_proposed"
    REVERT_DRY_RUN = "revert_dry_run"
    REVERT_FAILED = "revert_failed"
    ALERT_ONLY = "alert_only"
    SUSPENDED = "suspended"
    CIRCUIT_OPEN = "circuit_open"
    RECOVERED = "recovered"
    RESTORED = "restored"  # the revert restored the live state: no sync was needed, nothing proven
    HELD = "held"  # Argo CD may not deploy now (a sync window, a progressive sync, a manual-sync app): waiting


@dataclass(frozen=True, slots=True)
class StepDetail:
    """What one revert step says beside who and what; each step sets the fields it has."""

    rule: str = ""  # the decision's rule (not reverted)
    reason: str = ""  # why: not reverted, suspended, the circuit opened
    outcome: str = ""  # the revert state a failed revert left
    error: str = ""  # what git or the forge answered
    message: str = ""  # the revert's commit message (dry run)
    url: str | None = None  # the pull request
    revert: str | None = None  # the revert commit
    evidence: str = ""  # what the decision rests on: the failing object and the culprit's change to it, or the cause


@dataclass(frozen=True, slots=True)
class RevertReport:
    """What the reverter tells its listeners after a step: the incident, the commits blame named (not Argo CD's
    head), and the step's detail. One per step."""

    step: RevertStep
    incident_id: int
    app: str
    kind: EventKind
    revision: str | None
    culprits: tuple[Commit, ...] = ()
    detail: StepDetail = field(default_factory=StepDetail)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One stored decision: the audit trail's "what was seen, what was decided, why"."""

    id: int
    incident_id: int | None
    app: str
    at: datetime
    action: Action
    rule: str
    reason: str
    mode: RevertMode
    evidence: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class RevertRecord:
    id: int
    incident_id: int
    app: str
    mode: RevertMode
    culprits: tuple[str, ...]
    state: RevertState
    started_at: datetime
    finished_at: datetime | None = None
    revert_sha: str | None = None
    base_sha: str | None = None
    url: str | None = None
    verify_deadline: datetime | None = None
    verified_at: datetime | None = None
    verify_result: VerifyResult = VerifyResult.PENDING
    detail: Mapping[str, object] = field(default_factory=dict)

    @property
    def needs_human(self) -> bool:
        return bool(self.detail.get("needs_human")) or self.verify_result is VerifyResult.NOT_HEALED


@dataclass(frozen=True, slots=True)
class Suspension:
    app: str
    since: datetime
    reason: str
    incident_id: int | None = None


@dataclass(frozen=True, slots=True)
class RevertHistory:
    """One app's revert history as the policy needs it, read from the store in one go."""

    reverted: Mapping[str, str]  # culprit sha -> which revert undid it (any app: a commit is reverted once)
    suspension: str | None  # why the app is suspended from auto-revert
    circuit: str | None  # why the revert circuit is open
    last_revert_at: datetime | None  # this app's last revert pushed or proposed (cooldown)
    reverts_last_hour: int  # every app's (the hourly limit)


# -- shared by every wing: errors named by what the caller does, and the records they hand each other --
class RetryLater(Exception):
    """Nothing was changed and the answer is unknown (unreachable, timed out): ask again later."""


class StoreUnavailable(RetryLater):
    """The state store refused a write (full or read-only disk, database away): nothing of it was kept."""


class NotLeader(RetryLater):
    """This replica is not (or no longer) the leader: nothing was done; the leader does it."""


class NotFound(RetryLater):
    """What was asked for does not exist (an Application deleted: Argo CD answers 404). Nothing was changed."""


class NeedsHuman(Exception):
    """The action failed in a way a person must resolve; `outcome` is the revert state it leaves."""

    outcome: RevertState = RevertState.FAILED


@dataclass(frozen=True, slots=True)
class RevertResult:
    sha: str | None  # the revert commit on the remote (None in dry-run: nothing was pushed)
    base: str  # the remote head the revert was made on
    diffstat: str
    attempts: int
    adopted: bool = False  # not pushed now: this incident's revert by us was found on the branch (a late push)


@dataclass(frozen=True, slots=True)
class AppContext:
    """A consistent copy of what the watcher knows about one app, plus every app's paths (blame's input)."""

    key: str
    name: str
    namespace: str
    annotations: dict[str, str]
    last: AppSnapshot | None  # the watcher's latest snapshot
    good_revisions: tuple[str, ...]  # revisions seen Synced and Healthy, newest last
    specs: Mapping[str, dict[str, Any]]  # every app's mapping fields (appmap.mapping_fields)
    paths: dict[str, tuple[str, ...]]  # every app's repo paths
