"""Pure: what git and the forge answered -> the one Outcome the reverter writes; crash recovery; verification."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from tests.support.reverter_rig import BAD, DIFFSTAT, HEAD, NOW, REVERT
from watcher.adapters.forge import ForgeError
from watcher.adapters.gitrepo import GitUnavailable, NothingToRevert, PushRejected, RevertConflict
from watcher.core.outcome import (
    RETRY_AFTER_GIT_UNAVAILABLE,
    Handled,
    Outcome,
    outcome_of,
    reconciled_outcome,
    settled_on_a_revision,
    verification,
)
from watcher.domain import (
    AppSnapshot,
    Health,
    NeedsHuman,
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

DEADLINE = NOW + timedelta(minutes=10)
MESSAGE = f'Revert "scale plate-api to -1 replicas"\n\nSync-Watcher-Reverts: {BAD}\n'
BRANCH = "sync-watcher/revert-7-bad0111111"
URL = "https://github.example/org/gitops/pull/12"
PUSHED = RevertResult(REVERT, HEAD, DIFFSTAT, 2)
DRY = RevertResult(None, HEAD, DIFFSTAT, 1)
DONE = {"message": MESSAGE, "diffstat": DIFFSTAT, "attempts": 2}


def refused(state: RevertState, error: str, **detail: object) -> Outcome:
    return Outcome(
        state,
        f"revert_{state.value}",
        "error",
        needs_human=True,
        step=RevertStep.REVERT_FAILED,
        detail={"error": error, "needs_human": True, **detail},
        told=StepDetail(outcome=state.value, error=error),
    )


NOT_PUSHED = Outcome(
    RevertState.NOT_PUSHED,
    "revert_postponed_git_unavailable",
    "warning",
    retry_after=RETRY_AFTER_GIT_UNAVAILABLE,
    detail={"error": "fetch failed: timed out"},
)

ATTEMPTS = [
    pytest.param(
        RevertMode.PUSH,
        PUSHED,
        None,
        "main",
        None,
        Outcome(
            RevertState.PUSHED,
            "revert_pushed",
            step=RevertStep.REVERT_PUSHED,
            landed=True,
            columns={"revert_sha": REVERT, "base_sha": HEAD, "verify_deadline": DEADLINE},
            detail=DONE,
            told=StepDetail(revert=REVERT),
        ),
        id="pushed",
    ),
    pytest.param(
        RevertMode.PULL_REQUEST,
        PUSHED,
        None,
        BRANCH,
        URL,
        Outcome(
            RevertState.PULL_REQUEST_OPENED,
            "revert_pull_request_opened",
            step=RevertStep.REVERT_PROPOSED,
            landed=True,
            columns={"revert_sha": REVERT, "base_sha": HEAD, "url": URL},
            detail=DONE | {"branch": BRANCH},
            told=StepDetail(url=URL),
        ),
        id="pull_request_opened",
    ),
    pytest.param(
        RevertMode.DRY_RUN,
        DRY,
        None,
        None,
        None,
        Outcome(
            RevertState.DRY_RUN,
            "revert_dry_run",
            step=RevertStep.REVERT_DRY_RUN,
            columns={"base_sha": HEAD},
            detail=DONE | {"attempts": 1},
            told=StepDetail(message=MESSAGE),
        ),
        id="dry_run",
    ),
    pytest.param(
        RevertMode.PUSH,
        None,
        RevertConflict(["apps/a/deploy.yaml"]),
        "main",
        None,
        refused(RevertState.CONFLICT, "revert conflicts in apps/a/deploy.yaml", files=["apps/a/deploy.yaml"]),
        id="conflict",
    ),
    pytest.param(
        RevertMode.PUSH,
        None,
        RevertConflict([]),
        "main",
        None,
        refused(RevertState.CONFLICT, "revert conflicts in the working tree", files=[]),
        id="conflict_without_file_names",
    ),
    pytest.param(
        RevertMode.PUSH,
        None,
        PushRejected("push to main refused 4 times"),
        "main",
        None,
        refused(RevertState.PUSH_FAILED, "push to main refused 4 times"),
        id="push_failed",
    ),
    pytest.param(
        RevertMode.PULL_REQUEST,
        None,
        PushRejected("push to branch refused"),
        BRANCH,
        None,
        refused(RevertState.PUSH_FAILED, "push to branch refused"),
        id="push_failed_before_the_pull_request",
    ),
    pytest.param(
        RevertMode.PUSH,
        None,
        NothingToRevert("already undone"),
        "main",
        None,
        refused(RevertState.ALREADY_UNDONE, "already undone"),
        id="already_undone",
    ),
    pytest.param(
        RevertMode.PUSH,
        None,
        NeedsHuman("something a person must look at"),
        "main",
        None,
        refused(RevertState.FAILED, "something a person must look at"),
        id="failed",
    ),
    pytest.param(
        RevertMode.PULL_REQUEST,
        PUSHED,
        ForgeError("/repos/org/gitops/pulls: HTTP 422"),
        BRANCH,
        None,
        refused(
            RevertState.FAILED, f"branch {BRANCH} pushed, pull request not opened: /repos/org/gitops/pulls: HTTP 422"
        ),
        id="failed_pull_request_after_the_branch_was_pushed",
    ),
    pytest.param(
        RevertMode.PUSH, None, GitUnavailable("fetch failed: timed out"), "main", None, NOT_PUSHED, id="not_pushed"
    ),
    pytest.param(
        RevertMode.PULL_REQUEST,
        None,
        RetryLater("fetch failed: timed out"),
        BRANCH,
        None,
        NOT_PUSHED,
        id="not_pushed_pull_request",
    ),
]


@pytest.mark.parametrize("mode, result, error, branch, url, expected", ATTEMPTS)
def test_outcome_of_an_attempt(
    mode: RevertMode,
    result: RevertResult | None,
    error: RetryLater | NeedsHuman | None,
    branch: str | None,
    url: str | None,
    expected: Outcome,
) -> None:
    outcome = outcome_of(mode, result, error, message=MESSAGE, branch=branch, url=url, verify_deadline=DEADLINE)
    assert outcome == expected


RECONCILED = [
    pytest.param(
        RevertMode.PUSH,
        REVERT,
        Outcome(
            RevertState.PUSHED,
            "revert_reconciled",
            "warning",
            columns={"revert_sha": REVERT, "verify_deadline": DEADLINE},
            detail={"reconciled": "found in git after a restart"},
        ),
        id="found_pushed",
    ),
    pytest.param(
        RevertMode.PULL_REQUEST,
        REVERT,
        Outcome(
            RevertState.FAILED,
            "revert_needs_human",
            "warning",
            needs_human=True,
            columns={"revert_sha": REVERT},
            detail={"reconciled": "revert branch pushed before a restart; open the pull request by hand"},
        ),
        id="found_branch_without_pull_request",
    ),
]
NOT_FOUND = Outcome(
    RevertState.NOT_PUSHED,
    "revert_not_pushed_before_restart",
    "warning",
    retry_after=0.0,
    detail={"reconciled": "not in git after a restart"},
)
RECONCILED += [
    pytest.param(mode, None, NOT_FOUND, id=f"not_found_{mode.value}")
    for mode in (RevertMode.PUSH, RevertMode.PULL_REQUEST, RevertMode.DRY_RUN)
]


@pytest.mark.parametrize("mode, found, expected", RECONCILED)
def test_reconciled_outcome(mode: RevertMode, found: str | None, expected: Outcome) -> None:
    assert reconciled_outcome(mode, found, DEADLINE) == expected


def test_the_tables_reach_every_outcome() -> None:
    reached = {p.values[-1].state for p in ATTEMPTS + RECONCILED}  # type: ignore[union-attr]
    assert reached == set(RevertState) - {RevertState.STARTED}


@pytest.mark.parametrize(
    "includes, deadline, now, expected",
    [
        (True, DEADLINE, NOW, VerifyResult.HEALED),
        (True, DEADLINE, DEADLINE + timedelta(hours=1), VerifyResult.HEALED),  # late, but healed counts
        (False, DEADLINE, NOW, VerifyResult.PENDING),
        (False, DEADLINE, DEADLINE - timedelta(seconds=1), VerifyResult.PENDING),
        (False, DEADLINE, DEADLINE, VerifyResult.NOT_HEALED),
        (False, None, DEADLINE + timedelta(days=1), VerifyResult.PENDING),  # no deadline: never suspended
    ],
)
def test_verification(includes: bool, deadline: datetime | None, now: datetime, expected: VerifyResult) -> None:
    assert verification(includes, deadline, now) is expected


SETTLED = AppSnapshot("a", sync_status=SyncStatus.SYNCED, sync_revision=REVERT, health=Health.HEALTHY)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({}, REVERT),
        ({"phase": Phase.SUCCEEDED}, REVERT),
        ({"phase": Phase.FAILED, "operation_revision": BAD}, REVERT),  # the bad sync's operation stays behind
        ({"phase": Phase.RUNNING}, None),
        ({"phase": Phase.TERMINATING}, None),
        ({"health": Health.DEGRADED}, None),
        ({"health": Health.PROGRESSING}, None),
        ({"sync_status": SyncStatus.OUT_OF_SYNC}, None),
        ({"sync_revision": None}, None),
    ],
)
def test_settled_on_a_revision(change: dict[str, object], expected: str | None) -> None:
    assert settled_on_a_revision(replace(SETTLED, **change)) == expected  # type: ignore[arg-type]


def test_settled_on_nothing_without_a_snapshot() -> None:
    assert settled_on_a_revision(None) is None


@pytest.mark.parametrize(
    "handled, sentence",
    [
        (
            Handled(7, "plate-api-stg", "revert", "culprit_found", "", (BAD,), RevertState.PUSHED),
            "incident 7 (plate-api-stg): revert by culprit_found [bad011111111], revert pushed",
        ),
        (
            Handled(7, "plate-api-stg", "wait", "argocd_unknown", retry_in=4.0),
            "incident 7 (plate-api-stg): wait by argocd_unknown, again in 4s",
        ),
        (Handled(7, "", "closed"), "incident 7 (): closed by -"),
    ],
)
def test_handled_reads_as_one_line(handled: Handled, sentence: str) -> None:
    assert handled.sentence() == sentence
