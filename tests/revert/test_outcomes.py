"""Every revert outcome, through the real Reverter on fakes of its ports: the revert row, the Handled value, the
metric, what the listeners heard and which git and Argo CD calls were made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.support.reverter_rig import APP, BAD, CULPRIT, DIFFSTAT, HEAD, ONSET_AGO, OTHER, REVERT, Rig, application
from watcher.adapters.forge import ForgeError
from watcher.adapters.gitrepo import GitUnavailable, NothingToRevert, PushRejected, RevertConflict
from watcher.core.outcome import RETRY_AFTER_GIT_UNAVAILABLE
from watcher.domain import ChangedCommit, Health, RevertMode, RevertState, RevertStep, VerifyResult

MakeRig = Callable[..., Rig]


def test_pushed_ends_the_retrying_sync_and_refreshes(rig: MakeRig) -> None:
    r = rig("push")
    r.argocd.apps[APP] = application(APP, phase="Running", retry_count=2)  # Argo CD still retries the bad one
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule, handled.outcome) == ("revert", "culprit_found", RevertState.PUSHED)
    assert handled.culprits == (BAD,) and handled.retry_in is None
    row = r.revert_row(incident)
    assert (row.state, row.mode, row.culprits) == (RevertState.PUSHED, RevertMode.PUSH, (BAD,))
    assert (row.revert_sha, row.base_sha) == (REVERT, HEAD)
    assert row.verify_deadline == r.clock() + timedelta(seconds=r.settings.revert.verify_deadline_seconds)
    assert row.detail["diffstat"] == DIFFSTAT and not row.needs_human
    assert r.counted_outcomes() == {"pushed": 1.0}
    assert r.metrics.registry.get_sample_value("sync_watcher_time_to_revert_seconds_sum") == ONSET_AGO.total_seconds()
    assert r.steps() == [RevertStep.REVERT_PUSHED]
    told = r.told[0]
    assert told.detail.revert == REVERT and told.culprits[0].sha == BAD and told.incident_id == incident
    [call] = r.repo.reverts
    assert (call.culprits, call.push_branch) == ((BAD,), "main")
    assert f"Sync-Watcher-Incident: {r.uid(incident)}\n" in call.message  # random: numbers restart with a store
    assert f"Sync-Watcher-App: {APP}\n" in call.message
    assert r.argocd.terminated == [APP] and r.argocd.refreshed == [APP]
    assert [d.action for d in r.decisions(incident)] == ["revert"]


@pytest.mark.parametrize(
    "phase, retries, terminate_retrying, terminated",
    [
        ("Running", 2, True, [APP]),
        ("Running", 2, False, []),  # WATCHER_REVERT__TERMINATE_RETRYING=false: refresh only
        ("Failed", 0, True, []),  # the sync is over: nothing to end
    ],
)
def test_after_push_terminates_only_a_retrying_sync(
    rig: MakeRig, phase: str, retries: int, terminate_retrying: bool, terminated: list[str]
) -> None:
    r = rig("push", terminate_retrying=terminate_retrying)
    r.argocd.apps[APP] = application(APP, phase=phase, retry_count=retries)

    assert r.reverter.handle(r.fail()).outcome is RevertState.PUSHED

    assert r.argocd.terminated == terminated and r.argocd.refreshed == [APP]


def test_pushed_nudges_every_app_the_culprit_also_changed(rig: MakeRig) -> None:
    r = rig("push", split=False)
    r.repo.changed = [ChangedCommit(CULPRIT, ("apps/plate-api-stg/deployment.yaml", "apps/plate-web-stg/hpa.yaml"))]

    r.reverter.handle(r.fail())

    assert r.argocd.refreshed == [APP, OTHER]
    assert "That commit also changed plate-web-stg" in r.repo.reverts[0].message


def test_split_revert_undoes_only_the_failing_apps_files_and_says_what_it_kept(rig: MakeRig) -> None:
    r = rig("push")
    r.repo.changed = [ChangedCommit(CULPRIT, ("apps/plate-api-stg/deployment.yaml", "apps/plate-web-stg/hpa.yaml"))]
    r.fleet.settle(OTHER, BAD)  # the other app runs the culprit's change, healthy

    r.reverter.handle(r.fail())

    assert r.repo.reverts[0].only == {CULPRIT.sha: ("apps/plate-api-stg/deployment.yaml",)}
    assert r.argocd.refreshed == [APP]  # the other app keeps its change: nothing of it to deploy
    message = r.repo.reverts[0].message
    assert "Only its changes to plate-api-stg are undone; kept as they are: apps/plate-web-stg/hpa.yaml" in message


def test_argocd_away_after_the_push_leaves_the_revert_pushed(rig: MakeRig) -> None:
    r = rig("push")
    r.argocd.answers_left = 1  # the decision's read, then Argo CD is away for the nudge
    incident = r.fail()

    assert r.reverter.handle(incident).outcome is RevertState.PUSHED

    assert r.revert_row(incident).state is RevertState.PUSHED and r.counted_outcomes() == {"pushed": 1.0}
    assert r.argocd.calls == [("get_app", APP, None), ("get_app", APP, None)]  # tried, gave up: Argo CD polls anyway
    assert r.argocd.terminated == [] and r.argocd.refreshed == []


def test_verify_healed_resolves_the_incident(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    r.reverter.handle(incident)
    r.reverter.verify()
    assert r.revert_row(incident).verify_result is VerifyResult.PENDING  # Argo CD has not deployed it yet

    r.clock.advance(60)
    r.fleet.settle(APP, REVERT)
    r.reverter.verify()

    row = r.revert_row(incident)
    assert (row.verify_result, row.verified_at) == (VerifyResult.HEALED, r.clock())
    resolved = r.store.detection.incident(incident)
    assert resolved is not None and resolved.resolved_at == r.clock()
    assert resolved.resolution == f"healed by revert {REVERT[:12]}"
    assert r.steps() == [RevertStep.REVERT_PUSHED, RevertStep.RECOVERED]
    assert r.told[-1].detail.revert == REVERT
    assert r.metrics.registry.get_sample_value("sync_watcher_revert_verifications_total", {"result": "healed"}) == 1
    assert r.metrics.registry.get_sample_value("sync_watcher_time_to_recover_seconds_count") == 1.0
    assert r.store.audit.suspended() == {}


def test_verify_healed_on_a_later_commit_that_includes_the_revert(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    r.reverter.handle(incident)
    r.fleet.settle(APP, "1a7e" + "4" * 36)  # someone pushed on top of the revert before Argo CD synced

    r.reverter.verify()

    assert r.revert_row(incident).verify_result is VerifyResult.HEALED


def test_verify_past_the_deadline_suspends_the_app(rig: MakeRig) -> None:
    r = rig("push")
    incident = r.fail()
    r.reverter.handle(incident)
    r.fleet.settle(APP, BAD, Health.DEGRADED)  # still on the bad revision: not healed
    r.clock.advance(r.settings.revert.verify_deadline_seconds - 1)
    r.reverter.verify()
    assert r.revert_row(incident).verify_result is VerifyResult.PENDING

    r.clock.advance(1)
    r.reverter.verify()

    row = r.revert_row(incident)
    assert row.verify_result is VerifyResult.NOT_HEALED and row.needs_human
    suspension = r.store.audit.suspended()[APP]
    assert suspension.incident_id == incident and "did not bring the app back" in suspension.reason
    assert r.steps() == [RevertStep.REVERT_PUSHED, RevertStep.SUSPENDED]
    assert r.metrics.registry.get_sample_value("sync_watcher_suspended_apps") == 1.0
    assert r.metrics.registry.get_sample_value("sync_watcher_revert_verifications_total", {"result": "not_healed"}) == 1
    open_incident = r.store.detection.incident(incident)
    assert open_incident is not None and open_incident.resolved_at is None


def test_pull_request_opened_stores_its_url(rig: MakeRig) -> None:
    r = rig("pull-request")
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.outcome) == ("revert", RevertState.PULL_REQUEST_OPENED)
    branch = f"sync-watcher/revert-{incident}-{BAD[:10]}"
    row = r.revert_row(incident)
    assert (row.state, row.url, row.revert_sha) == (
        RevertState.PULL_REQUEST_OPENED,
        "https://github.example/org/gitops/pull/1",
        REVERT,
    )
    assert row.detail["branch"] == branch and row.verify_deadline is None
    assert r.repo.reverts[0].push_branch == branch
    assert r.pulls.opened == [(branch, "main", f'Revert "{CULPRIT.subject}"')]
    assert r.counted_outcomes() == {"pull_request_opened": 1.0}
    assert r.steps() == [RevertStep.REVERT_PROPOSED] and r.told[0].detail.url == row.url
    assert r.argocd.refreshed == [] and r.argocd.terminated == []  # nothing changed on the branch Argo CD deploys


def test_dry_run_pushes_nothing(rig: MakeRig) -> None:
    r = rig("dry-run")
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.outcome) == ("revert", RevertState.DRY_RUN)
    assert r.repo.reverts[0].push_branch is None
    row = r.revert_row(incident)
    assert (row.state, row.revert_sha, row.base_sha) == (RevertState.DRY_RUN, None, HEAD)
    assert "This reverts commit " + BAD in str(row.detail["message"])
    assert r.counted_outcomes() == {"dry_run": 1.0}
    assert r.metrics.registry.get_sample_value("sync_watcher_time_to_revert_seconds_count") == 0.0
    assert r.steps() == [RevertStep.REVERT_DRY_RUN] and r.told[0].detail.message == row.detail["message"]
    assert r.argocd.refreshed == [] and r.argocd.terminated == []


# Each error git (or the forge) can raise, and what the revert row, the metric and the listeners then say.
REFUSED = [
    pytest.param(
        "push",
        RevertConflict(["apps/plate-api-stg/deployment.yaml"]),
        RevertState.CONFLICT,
        "revert conflicts in apps/plate-api-stg/deployment.yaml",
        id="conflict",
    ),
    pytest.param(
        "push",
        PushRejected("push to main refused 4 times: ! [rejected] main -> main (fetch first)"),
        RevertState.PUSH_FAILED,
        "push to main refused 4 times",
        id="push_failed",
    ),
    pytest.param(
        "push",
        NothingToRevert("the reverted change is already undone at the branch head"),
        RevertState.ALREADY_UNDONE,
        "already undone at the branch head",
        id="already_undone",
    ),
    pytest.param(
        "pull-request",
        PushRejected("push to sync-watcher/revert-1 refused 4 times: permission denied"),
        RevertState.PUSH_FAILED,
        "permission denied",
        id="push_failed_pull_request_branch",
    ),
]


@pytest.mark.parametrize("mode, error, state, says", REFUSED)
def test_git_refuses_the_revert_and_a_human_is_needed(
    rig: MakeRig, mode: str, error: Exception, state: RevertState, says: str
) -> None:
    r = rig(mode)
    r.repo.answers = [error]
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule, handled.outcome, handled.retry_in) == ("revert", "culprit_found", state, None)
    row = r.revert_row(incident)
    assert row.state is state and row.needs_human and says in str(row.detail["error"])
    assert (row.revert_sha, row.url, row.verify_deadline) == (None, None, None)
    assert r.counted_outcomes() == {state.value: 1.0}
    assert r.steps() == [RevertStep.REVERT_FAILED]
    assert r.told[0].detail.outcome == state.value and says in r.told[0].detail.error
    assert r.pulls.opened == [] and r.argocd.refreshed == [] and r.argocd.terminated == []
    assert incident not in r.reverter.pending  # not decided again: a person takes it from here


def test_conflict_names_the_files(rig: MakeRig) -> None:
    r = rig("push")
    r.repo.answers = [RevertConflict(["apps/plate-api-stg/deployment.yaml", "apps/plate-api-stg/hpa.yaml"])]
    incident = r.fail()

    r.reverter.handle(incident)

    assert r.revert_row(incident).detail["files"] == [
        "apps/plate-api-stg/deployment.yaml",
        "apps/plate-api-stg/hpa.yaml",
    ]


def test_pull_request_refused_after_the_branch_was_pushed(rig: MakeRig) -> None:
    r = rig("pull-request")
    r.pulls.refuse = ForgeError("/repos/org/gitops/pulls: HTTP 422: Validation Failed")
    incident = r.fail()

    handled = r.reverter.handle(incident)

    branch = f"sync-watcher/revert-{incident}-{BAD[:10]}"
    assert handled.outcome is RevertState.FAILED
    row = r.revert_row(incident)
    assert row.state is RevertState.FAILED and row.needs_human
    assert row.detail["error"] == f"branch {branch} pushed, pull request not opened: {r.pulls.refuse}"
    assert r.repo.reverts[0].push_branch == branch  # the branch is on the remote: someone opens the PR by hand
    assert r.counted_outcomes() == {"failed": 1.0}
    assert r.steps() == [RevertStep.REVERT_FAILED] and r.told[0].detail.outcome == "failed"
    assert "pushed, pull request not opened" in r.told[0].detail.error


def test_not_pushed_when_git_is_away_then_decided_again_and_pushed(rig: MakeRig) -> None:
    r = rig("push")
    r.repo.answers = [GitUnavailable("fetch failed: Could not resolve host: git.example")]
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.outcome) == ("revert", RevertState.NOT_PUSHED)
    assert handled.retry_in == RETRY_AFTER_GIT_UNAVAILABLE
    row = r.revert_row(incident)
    assert row.state is RevertState.NOT_PUSHED and not row.needs_human
    assert "Could not resolve host" in str(row.detail["error"])
    assert r.counted_outcomes() == {"not_pushed": 1.0}
    assert r.steps() == []  # nothing to tell anyone yet: it is tried again
    assert r.argocd.refreshed == []

    assert r.reverter.run_once() == []  # not due yet
    r.clock.advance(RETRY_AFTER_GIT_UNAVAILABLE)
    [again] = r.reverter.run_once()

    assert (again.incident, again.outcome) == (incident, RevertState.PUSHED)
    rows = r.store.audit.reverts(incident_id=incident)
    assert [x.state for x in rows] == [RevertState.PUSHED, RevertState.NOT_PUSHED]  # newest first
    assert r.counted_outcomes() == {"not_pushed": 1.0, "pushed": 1.0}
    assert len(r.repo.reverts) == 2 and r.steps() == [RevertStep.REVERT_PUSHED]
    assert [d.action for d in r.decisions(incident)] == ["revert", "revert"]


def test_not_pushed_is_decided_again_after_a_restart(rig: MakeRig) -> None:
    r = rig("push")
    r.repo.answers = [GitUnavailable("fetch failed: Connection timed out")]
    incident = r.fail()
    assert r.reverter.handle(incident).outcome is RevertState.NOT_PUSHED

    r.restart()  # the process is replaced before the retry was due: the new one decides it at once
    handled = r.reverter.run_once()

    assert [(h.incident, h.outcome) for h in handled] == [(incident, RevertState.PUSHED)]
    assert [x.state for x in r.store.audit.reverts(incident_id=incident)] == [
        RevertState.PUSHED,
        RevertState.NOT_PUSHED,
    ]


def test_every_outcome_is_a_revert_state(rig: MakeRig) -> None:
    """The metric has one series per outcome from the start (STARTED is the intent, not an outcome)."""
    r = rig("push")
    assert {s for s in RevertState if s is not RevertState.STARTED} == {RevertState(o) for o in r.reverts_counted()}


def test_narrowing_reads_that_fail_leave_blame_as_before_and_say_so(
    rig: MakeRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = rig("push")
    older = replace(CULPRIT, sha="01de" + "2" * 36, subject="config change")
    r.repo.changed.append(ChangedCommit(older, ("apps/plate-api-stg/configmap.yaml",)))

    def unreadable(sha: str, paths: object) -> str:
        raise GitUnavailable("fetch failed: timed out")

    monkeypatch.setattr(r.repo, "patch", unreadable)
    handled = r.reverter.handle(r.fail())

    assert handled.culprits == (BAD, older.sha) and handled.outcome is RevertState.PUSHED
    assert "could not narrow" in handled.reason and "reverting all 2" in handled.reason
