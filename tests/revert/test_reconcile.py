"""Crash recovery: a revert whose intent was stored (STARTED) but whose outcome was not, settled against git."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from tests.support.reverter_rig import APP, BAD, REVERT, Rig
from watcher.domain import RevertMode, RevertState, RevertStep
from watcher.revert.reconcile import RECONCILE_MARGIN

MakeRig = Callable[..., Rig]


def test_started_revert_found_in_git_in_push_mode_is_pushed_and_verified(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    r.crashed_after_intent(incident, RevertMode.PUSH)
    r.repo.by_incident[r.uid(incident)] = REVERT  # the push landed before the process died
    r.clock.advance(30)

    assert r.reverter.run_once() == []  # nothing decided again: the revert is in git

    row = r.revert_row(incident)
    assert (row.state, row.revert_sha, row.finished_at) == (RevertState.PUSHED, REVERT, r.clock())
    assert row.verify_deadline == r.clock() + timedelta(seconds=r.settings.revert.verify_deadline_seconds)
    assert row.detail == {"reconciled": "found in git after a restart"} and not row.needs_human
    assert r.counted_outcomes() == {"pushed": 1.0}
    assert r.repo.calls[:2] == ["sync", "find_by_incident"] and r.repo.reverts == []
    assert r.steps() == []

    r.fleet.settle(APP, REVERT)
    r.reverter.run_once()
    assert r.steps() == [RevertStep.RECOVERED]
    resolved = r.store.detection.incident(incident)
    assert resolved is not None and resolved.resolved_at == r.clock()


def test_started_revert_found_in_git_in_pull_request_mode_needs_a_human(rig: MakeRig) -> None:
    r = rig("pull-request")
    incident = r.fail()
    r.crashed_after_intent(incident, RevertMode.PULL_REQUEST)
    r.repo.by_incident[r.uid(incident)] = REVERT  # the branch was pushed, the pull request maybe not opened

    assert r.reverter.run_once() == []

    row = r.revert_row(incident)
    assert (row.state, row.revert_sha, row.verify_deadline) == (RevertState.FAILED, REVERT, None)
    assert row.needs_human and "open the pull request by hand" in str(row.detail["reconciled"])
    assert r.counted_outcomes() == {"failed": 1.0}
    assert r.pulls.opened == [] and r.repo.reverts == []


def test_started_revert_not_in_git_is_not_pushed_and_decided_again(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    started = r.crashed_after_intent(incident, RevertMode.PUSH)

    [handled] = r.reverter.run_once()  # reconciled, re-queued at once and decided in the same pass

    assert (handled.incident, handled.action, handled.outcome) == (incident, "revert", RevertState.PUSHED)
    rows = r.store.audit.reverts(incident_id=incident)
    assert [(x.id, x.state) for x in rows] == [(started + 1, RevertState.PUSHED), (started, RevertState.NOT_PUSHED)]
    assert rows[1].detail == {"reconciled": "not in git after a restart"} and rows[1].revert_sha is None
    assert r.counted_outcomes() == {"not_pushed": 1.0, "pushed": 1.0}
    assert [c.culprits for c in r.repo.reverts] == [(BAD,)]
    assert r.steps() == [RevertStep.REVERT_PUSHED]


def test_reconcile_searches_git_from_before_the_intent(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    r.crashed_after_intent(incident, RevertMode.PUSH)
    r.clock.advance(3600)

    r.reverter.reconcile()

    assert r.repo.searched_since == [
        r.clock() - timedelta(seconds=3600) - RECONCILE_MARGIN
    ]  # committer clocks may be behind


def test_reconcile_waits_for_git_then_settles_the_started_revert(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    r.crashed_after_intent(incident, RevertMode.PUSH)
    r.repo.unreachable = True

    assert r.reverter.run_once() == []

    assert r.revert_row(incident).state is RevertState.STARTED and not r.reverter.reconciled
    assert "find_by_incident" not in r.repo.calls and r.repo.reverts == [] and r.counted_outcomes() == {}
    history = r.store.audit.revert_history(APP, r.clock())
    assert BAD in history.reverted  # meanwhile STARTED counts as reverted: never reverted twice

    r.repo.unreachable = False
    r.repo.by_incident[r.uid(incident)] = REVERT
    assert r.reverter.run_once() == []

    assert r.reverter.reconciled and r.revert_row(incident).state is RevertState.PUSHED
    assert r.repo.reverts == []
