"""The revert policy is pure: a table of facts and the decision each must give."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.blame import Blame, BlameOutcome
from watcher.core.branches import Follow, Following
from watcher.core.policy import PolicyFacts, RevertRules, advice_for, decide, opt_in_from, still_failing
from watcher.domain import Action, AppSnapshot, Commit, EventKind, Health, Phase, RevertMode, SyncStatus

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BAD = Commit("bad0000000001", "Dev Two", NOW - timedelta(minutes=5), "scale to -1")
FOUND = Blame(BlameOutcome.CULPRITS, "1 commit changed the app", "bad0000000001", "good", (BAD,))
RULES = RevertRules(mode=RevertMode.PUSH, allow=("*-stg",), deny=("*-llm-*",), max_reverts_per_hour=3)
FACTS = PolicyFacts(app="plate-api-stg", kind=EventKind.SYNC_FAILED, detected_at=NOW, still_failing=True, blame=FOUND)


@pytest.mark.parametrize(
    "change, rules, action, rule",
    [
        ({}, RULES, Action.REVERT, "culprit_found"),
        ({}, replace(RULES, mode=RevertMode.OFF), Action.ALERT, "mode_off"),
        ({}, replace(RULES, mode=RevertMode.DRY_RUN), Action.REVERT, "culprit_found"),  # mode says how
        ({"kind": EventKind.DEGRADED_UNATTRIBUTED}, RULES, Action.ALERT, "not_attributed"),
        ({"app": "plate-api-prod"}, RULES, Action.ALERT, "not_allowed"),
        ({"app": "plate-llm-stg"}, RULES, Action.ALERT, "denied"),
        ({"app": "plate-api-prod", "opt_in": True}, RULES, Action.REVERT, "culprit_found"),  # annotation opts in
        ({"opt_in": False}, RULES, Action.ALERT, "opted_out"),
        ({"suspended": "revert did not heal"}, RULES, Action.ALERT, "suspended"),
        ({"circuit": "4 reverts in an hour"}, RULES, Action.ALERT, "circuit_open"),
        ({"still_failing": None}, RULES, Action.WAIT, "argocd_unknown"),
        ({"still_failing": False}, RULES, Action.ALERT, "no_longer_failing"),
        ({"blame": None}, RULES, Action.WAIT, "git_unknown"),
        (
            {"blame": replace(FOUND, outcome=BlameOutcome.NO_TOUCH, culprits=())},
            RULES,
            Action.ALERT,
            "no_commit_touches_app",
        ),
        (
            {"blame": replace(FOUND, outcome=BlameOutcome.TOO_MANY, culprits=())},
            RULES,
            Action.ALERT,
            "too_many_candidates",
        ),
        ({"blame": replace(FOUND, outcome=BlameOutcome.UNKNOWN, culprits=())}, RULES, Action.ALERT, "unknown"),
        ({"blame": replace(FOUND, culprits=(replace(BAD, reverts=("x",)),))}, RULES, Action.ALERT, "culprit_is_revert"),
        ({"already_reverted": {"bad0000000001": "revert #1 pushed"}}, RULES, Action.ALERT, "already_reverted"),
        (
            {
                "kind": EventKind.DEGRADED,
                "blame": replace(FOUND, culprits=(replace(BAD, committed_at=NOW - timedelta(hours=3)),)),
            },
            RULES,
            Action.ALERT,
            "outside_attribution_window",
        ),
        (  # a sync failure is the revision's own, however long the commit waited (a sync window, a weekend)
            {"blame": replace(FOUND, culprits=(replace(BAD, committed_at=NOW - timedelta(days=3)),))},
            RULES,
            Action.REVERT,
            "culprit_found",
        ),
        ({"undone_on_branch": {"bad0000000001": "f" * 40}}, RULES, Action.ALERT, "undone_on_branch"),
        ({"newer_changes": ("f" * 40,)}, RULES, Action.WAIT, "fix_on_branch"),
        ({"following": Following(Follow.PINNED, pinned="v1.4.0")}, RULES, Action.ALERT, "pinned_revision"),
        ({"following": Following(Follow.UNWATCHED, "release-2.x")}, RULES, Action.ALERT, "unwatched_branch"),
        ({"following": Following(Follow.MIXED, branches=("main", "rel"))}, RULES, Action.ALERT, "mixed_branches"),
        ({"following": Following(Follow.BRANCH, "release-1.x")}, RULES, Action.REVERT, "culprit_found"),
        ({"from_watched_repo": False}, RULES, Action.ALERT, "not_from_watched_repo"),
        ({"untouched_degraded": ("Deployment/web/web",)}, RULES, Action.ALERT, "untouched_by_sync"),
        ({"from_watched_repo": True}, RULES, Action.REVERT, "culprit_found"),
        (  # a person synced (or rolled back to) an older revision: not the branch's failure
            {"initiated_by": "alice", "revision": "a" * 40, "head": "b" * 40},
            RULES,
            Action.ALERT,
            "manual_sync",
        ),
        ({"initiated_by": "alice", "revision": "b" * 40, "head": "b" * 40}, RULES, Action.REVERT, "culprit_found"),
        ({"initiated_by": "automated", "revision": "a" * 40, "head": "b" * 40}, RULES, Action.REVERT, "culprit_found"),
        ({"auto_sync": False}, RULES, Action.ALERT, "no_automated_sync"),
        ({"auto_sync": False}, replace(RULES, revert_without_auto_sync=True), Action.REVERT, "culprit_found"),
        ({"auto_sync": None}, RULES, Action.REVERT, "culprit_found"),
        (
            {"newer_changes": ("f" * 40,), "detected_at": NOW - timedelta(minutes=11)},
            RULES,
            Action.ALERT,
            "fix_not_deployed",
        ),
        ({"last_revert_at": NOW - timedelta(minutes=1)}, RULES, Action.ALERT, "cooldown"),
        ({"last_revert_at": NOW - timedelta(hours=1)}, RULES, Action.REVERT, "culprit_found"),
        ({"reverts_last_hour": 3}, RULES, Action.ALERT, "rate_limit"),
        # Argo CD's words first (core/failure_class.py): only the commit's content is revertable.
        (
            {"failure_class": "content", "failure_cause": "the API server refused it"},
            RULES,
            Action.REVERT,
            "culprit_found",
        ),
        (
            {"failure_class": "cluster", "failure_cause": "the admission webhook w is unreachable"},
            RULES,
            Action.ALERT,
            "cluster_fault",
        ),
        ({"failure_class": "cluster", "blame": None}, RULES, Action.ALERT, "cluster_fault"),  # no need to wait for git
        ({"failure_class": "unknown"}, RULES, Action.ALERT, "unknown_failure"),
        ({"failure_class": "cluster", "still_failing": False}, RULES, Action.ALERT, "no_longer_failing"),
        # A culprit must touch what failed (core/culprit.py).
        (
            {"evidence_missing": True, "evidence_line": "Service/x failed, but none changed it"},
            RULES,
            Action.ALERT,
            "culprit_not_touching",
        ),
    ],
)
def test_decisions(change: dict[str, object], rules: RevertRules, action: Action, rule: str) -> None:
    d = decide(replace(FACTS, **change), rules, NOW)  # type: ignore[arg-type]
    assert (d.action, d.rule) == (action, rule), d.reason
    assert d.reason
    assert advice_for(d.rule), f"`sync-watcher explain` has no words for {d.rule}"


def test_rate_limit_opens_the_circuit_and_names_the_culprit() -> None:
    d = decide(replace(FACTS, reverts_last_hour=3), RULES, NOW)
    assert d.open_circuit and d.culprits == ("bad0000000001",)


def test_unknown_facts_never_revert_whatever_else_holds() -> None:
    for unknown in ({"still_failing": None}, {"blame": None}):
        assert decide(replace(FACTS, **unknown), RULES, NOW).action is not Action.REVERT  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value, expected", [("true", True), ("Enabled", True), ("false", False), ("disabled", False), ("maybe", None)]
)
def test_opt_annotation(value: str, expected: bool | None) -> None:
    assert opt_in_from({"sync-watcher.io/auto-revert": value}) is expected
    assert opt_in_from({}) is None


R = "bad0000000001"


@pytest.mark.parametrize(
    "snap, kind, expected",
    [
        (AppSnapshot("a", phase=Phase.FAILED, operation_revision=R), EventKind.SYNC_FAILED, True),
        (AppSnapshot("a", phase=Phase.RUNNING, operation_revision=R, retry_count=2), EventKind.SYNC_FAILED, True),
        (AppSnapshot("a", phase=Phase.RUNNING, operation_revision=R), EventKind.SYNC_FAILED, False),
        (AppSnapshot("a", phase=Phase.FAILED, operation_revision="other"), EventKind.SYNC_FAILED, False),
        (AppSnapshot("a", sync_revision=R, health=Health.DEGRADED), EventKind.DEGRADED, True),
        (
            AppSnapshot("a", sync_revision=R, health=Health.HEALTHY, sync_status=SyncStatus.SYNCED),
            EventKind.DEGRADED,
            False,
        ),
        (AppSnapshot("a", sync_revision=R, health=Health.PROGRESSING), EventKind.STUCK_PROGRESSING, True),
        # rollout_failing: still rolling out R (Progressing, later Degraded), or R's sync waits on its hook
        (
            AppSnapshot("a", sync_revision=R, health=Health.PROGRESSING, phase=Phase.SUCCEEDED),
            EventKind.ROLLOUT_FAILING,
            True,
        ),
        (
            AppSnapshot("a", sync_revision=R, health=Health.DEGRADED, phase=Phase.SUCCEEDED),
            EventKind.ROLLOUT_FAILING,
            True,
        ),
        (
            AppSnapshot("a", sync_revision=R, health=Health.HEALTHY, phase=Phase.SUCCEEDED),
            EventKind.ROLLOUT_FAILING,
            False,
        ),
        (
            AppSnapshot("a", sync_revision="old", phase=Phase.RUNNING, operation_revision=R),
            EventKind.ROLLOUT_FAILING,
            True,
        ),
        (AppSnapshot("a", sync_revision="new", health=Health.PROGRESSING), EventKind.ROLLOUT_FAILING, False),
    ],
)
def test_still_failing(snap: AppSnapshot, kind: EventKind, expected: bool) -> None:
    assert still_failing(snap, kind, R) is expected


def test_every_decision_names_its_evidence() -> None:
    """A revert carries the failing object and the culprit's change to it; an alert on a cluster fault its cause."""
    line = "Service/plate-stg/plate-api-stg refused by kubectl replace with Replace=true; added by bad0000"
    revert = decide(replace(FACTS, evidence_line=line, failure_class="content"), RULES, NOW)
    assert (revert.action, revert.evidence) == (Action.REVERT, line)
    plain = decide(replace(FACTS, failure_cause="the API server refused the object"), RULES, NOW)
    assert plain.evidence == "the API server refused the object; bad0000: the only change to plate-api-stg since good"
    cause = "the admission webhook w is unreachable: no commit is at fault"
    cluster = decide(replace(FACTS, failure_class="cluster", failure_cause=cause), RULES, NOW)
    assert cluster.evidence == cause and cluster.culprits == () and cause in cluster.reason
    missing = decide(
        replace(FACTS, evidence_missing=True, evidence_line="no diff could be read for bad0000"), RULES, NOW
    )
    assert missing.evidence == "no diff could be read for bad0000"
