"""Pure: one table from "what git and the forge answered" to one typed outcome the reverter writes down.

Every arm of a revert attempt (pushed, proposed, dry run, conflict, rejected push, already undone, git away,
pull request refused after the branch was pushed) and of crash recovery ends here, so the reverter performs
the same four writes for all of them: store the state, count it, log one line, tell the listeners.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from watcher.domain import (
    AppSnapshot,
    Health,
    NeedsHuman,
    NotLeader,
    Phase,
    RetryLater,
    RevertMode,
    RevertResult,
    RevertState,
    RevertStep,
    StepDetail,
    SyncStatus,
    VerifyResult,
)

RETRY_AFTER_GIT_UNAVAILABLE = 30.0  # seconds; Argo CD's own retries are slower than this anyway


@dataclass(frozen=True, slots=True)
class Outcome:
    state: RevertState
    event: str  # the log line's event name
    level: str = "info"  # info | warning | error
    needs_human: bool = False
    retry_after: float | None = None  # not None: decide the incident again after this many seconds
    step: RevertStep | None = None  # what the listeners (Slack, the demo) are told
    landed: bool = False  # a revert commit is on the remote: count the time to revert
    columns: Mapping[str, object] = field(default_factory=dict)  # revert_sha, base_sha, url, verify_deadline
    detail: Mapping[str, object] = field(default_factory=dict)  # stored with the revert row, and logged
    told: StepDetail = field(default_factory=StepDetail)  # what the listeners get beside the culprits


def outcome_of(
    mode: RevertMode,
    result: RevertResult | None,
    error: RetryLater | NeedsHuman | None,
    *,
    message: str,
    branch: str | None,
    url: str | None,
    verify_deadline: datetime,
) -> Outcome:
    """The outcome of one attempt: `result` is git's (None when the revert itself failed), `error` the first
    error raised (by git, or by the forge after the branch was pushed)."""
    if isinstance(error, NotLeader):  # another replica leads now: it reconciles this row and decides again
        return Outcome(RevertState.NOT_PUSHED, "revert_abandoned_not_leader", "warning", detail={"error": str(error)})
    if isinstance(error, RetryLater):
        return Outcome(
            RevertState.NOT_PUSHED,
            "revert_postponed_git_unavailable",
            "warning",
            retry_after=RETRY_AFTER_GIT_UNAVAILABLE,
            detail={"error": str(error)},
        )
    if error is not None:
        text = str(error)
        state = error.outcome
        if result is not None:  # the branch is on the remote, the pull request is not
            state, text = RevertState.FAILED, f"branch {branch} pushed, pull request not opened: {error}"
        files = getattr(error, "files", None)
        return Outcome(
            state,
            f"revert_{state.value}",
            "error",
            needs_human=True,
            step=RevertStep.REVERT_FAILED,
            detail={"error": text, "needs_human": True} | ({"files": files} if files is not None else {}),
            told=StepDetail(outcome=state.value, error=text),
        )
    assert result is not None, "an attempt without an error has a result"
    detail = {"message": message, "diffstat": result.diffstat, "attempts": result.attempts}
    if result.adopted:
        detail |= {"adopted": "this incident's revert was already on the branch (an earlier leader pushed it)"}
    if mode is RevertMode.DRY_RUN:
        return Outcome(
            RevertState.DRY_RUN,
            "revert_dry_run",
            step=RevertStep.REVERT_DRY_RUN,
            columns={"base_sha": result.base},
            detail=detail,
            told=StepDetail(message=message),
        )
    landed = {"revert_sha": result.sha, "base_sha": result.base}
    if mode is RevertMode.PULL_REQUEST:
        return Outcome(
            RevertState.PULL_REQUEST_OPENED,
            "revert_pull_request_opened",
            step=RevertStep.REVERT_PROPOSED,
            landed=True,
            columns=landed | {"url": url},
            detail=detail | {"branch": branch},
            told=StepDetail(url=url),
        )
    return Outcome(
        RevertState.PUSHED,
        "revert_pushed",
        step=RevertStep.REVERT_PUSHED,
        landed=True,
        columns=landed | {"verify_deadline": verify_deadline},
        detail=detail,
        told=StepDetail(revert=result.sha),
    )


def reconciled_outcome(mode: RevertMode, found: str | None, verify_deadline: datetime) -> Outcome:
    """A revert whose intent was stored but whose outcome was not (the process died): what git shows now."""
    if found and mode is RevertMode.PUSH:
        return Outcome(
            RevertState.PUSHED,
            "revert_reconciled",
            "warning",
            columns={"revert_sha": found, "verify_deadline": verify_deadline},
            detail={"reconciled": "found in git after a restart"},
        )
    if found:
        return Outcome(
            RevertState.FAILED,
            "revert_needs_human",
            "warning",
            needs_human=True,
            columns={"revert_sha": found},
            detail={"reconciled": "revert branch pushed before a restart; open the pull request by hand"},
        )
    return Outcome(
        RevertState.NOT_PUSHED,
        "revert_not_pushed_before_restart",
        "warning",
        retry_after=0.0,
        detail={"reconciled": "not in git after a restart"},
    )


def settled_on_a_revision(snap: AppSnapshot | None) -> str | None:
    """The revision the app is Synced and Healthy at with no sync under way, else None.

    Not `looks_healthy`: a revert back to manifests already live leaves the bad revision's Failed operation in
    place (no new sync runs), and Synced + Healthy on the revert is still a recovery.
    """
    if snap is None or snap.sync_status is not SyncStatus.SYNCED or snap.health is not Health.HEALTHY:
        return None
    if snap.phase in (Phase.RUNNING, Phase.TERMINATING):
        return None
    return snap.sync_revision or None


def verification(includes_revert: bool, deadline: datetime | None, now: datetime) -> VerifyResult:
    """HEALED once the app settled on the revert or a descendant; NOT_HEALED past the deadline; else PENDING."""
    if includes_revert:
        return VerifyResult.HEALED
    if deadline is not None and now >= deadline:
        return VerifyResult.NOT_HEALED
    return VerifyResult.PENDING


@dataclass(frozen=True, slots=True)
class Handled:
    """What one pass over one incident decided and did: the loop logs it as one line, tests assert on it."""

    incident: int
    app: str
    action: str  # the decision's action, or "closed" when the incident was already resolved
    rule: str = ""
    reason: str = ""
    culprits: tuple[str, ...] = ()
    outcome: RevertState | None = None  # the revert's state when one was attempted
    retry_in: float | None = None  # seconds until the incident is decided again

    def sentence(self) -> str:
        did = f", revert {self.outcome.value}" if self.outcome else ""
        again = f", again in {self.retry_in:.0f}s" if self.retry_in is not None else ""
        blamed = f" [{', '.join(c[:12] for c in self.culprits)}]" if self.culprits else ""
        return f"incident {self.incident} ({self.app}): {self.action} by {self.rule or '-'}{blamed}{did}{again}"
