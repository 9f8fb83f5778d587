"""Decisions that change nothing in git: wait while a read failed, alert only when a rule says so."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tests.support.reverter_rig import APP, BAD, CULPRIT, OTHER, REVERT, Rig
from watcher.core.appmap import OPT_ANNOTATION
from watcher.domain import Action, ChangedCommit, RevertState, RevertStep
from watcher.revert.retry_queue import MAX_WAIT_SECONDS

MakeRig = Callable[..., Rig]
NEXT = "5ec0" + "5" * 36  # a later commit that breaks the app again
EARLIER = "ea41" + "6" * 36  # a commit that broke the other app


def test_wait_while_argocd_is_unreachable_with_one_audit_row(rig: MakeRig) -> None:
    r = rig("push")
    r.argocd.down = True
    incident = r.fail()

    first = r.reverter.handle(incident)
    second = r.reverter.handle(incident)

    assert (first.action, first.rule, first.outcome, first.retry_in) == ("wait", "argocd_unknown", None, 2.0)
    assert second.retry_in == 4.0  # backing off
    [decision] = r.decisions(incident)  # one row for the wait, not one per retry
    assert (decision.action, decision.rule) == (Action.WAIT, "argocd_unknown")
    assert "ConnectTimeout" in str(decision.evidence["argocd_error"]) and decision.evidence["still_failing"] is None
    assert (
        r.metrics.registry.get_sample_value(
            "sync_watcher_revert_decisions_total", {"action": "wait", "rule": "argocd_unknown"}
        )
        == 1.0
    )
    assert r.repo.calls == [] and r.repo.reverts == []  # git is not even read while Argo CD's answer is unknown
    assert r.store.audit.reverts() == [] and r.counted_outcomes() == {} and r.steps() == []
    assert incident in r.reverter.pending

    r.argocd.down = False
    r.clock.advance(second.retry_in)
    [handled] = r.reverter.run_once()

    assert (handled.incident, handled.action, handled.outcome) == (incident, "revert", RevertState.PUSHED)
    assert [d.action for d in r.decisions(incident)] == [Action.REVERT, Action.WAIT]  # newest first


def test_waits_back_off_to_a_bound(rig: MakeRig) -> None:
    r = rig("push")
    r.argocd.down = True
    incident = r.fail()

    delays = [r.reverter.handle(incident).retry_in for _ in range(7)]

    assert delays == [2.0, 4.0, 8.0, 16.0, MAX_WAIT_SECONDS, MAX_WAIT_SECONDS, MAX_WAIT_SECONDS]
    assert len(r.decisions(incident)) == 1


def test_wait_while_git_is_unreadable(rig: MakeRig) -> None:
    r = rig("push")
    r.repo.unreachable = True
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule, handled.outcome) == ("wait", "git_unknown", None)
    [decision] = r.decisions(incident)
    assert "unable to access" in str(decision.evidence["git_error"]) and decision.evidence["blame"] is None
    assert decision.evidence["still_failing"] is True
    assert "revert" not in r.repo.calls and r.store.audit.reverts() == [] and r.steps() == []

    r.repo.unreachable = False
    r.clock.advance(handled.retry_in or 0)
    [again] = r.reverter.run_once()
    assert again.outcome is RevertState.PUSHED


def test_alert_only_when_the_app_opts_out(rig: MakeRig) -> None:
    r = rig("push")
    r.fleet.annotate(APP, {OPT_ANNOTATION: "false"})
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule, handled.outcome, handled.retry_in) == ("alert", "opted_out", None, None)
    assert OPT_ANNOTATION in handled.reason
    [decision] = r.decisions(incident)
    assert (decision.action, decision.rule, decision.evidence["opt_in"]) == (Action.ALERT, "opted_out", False)
    assert r.repo.reverts == [] and r.store.audit.reverts() == [] and r.counted_outcomes() == {}
    assert r.steps() == [RevertStep.ALERT_ONLY]
    told = r.told[0]
    assert told.detail.rule == "opted_out" and told.culprits[0].sha == BAD  # blamed, not reverted
    assert incident not in r.reverter.pending


def test_a_culprit_already_reverted_on_the_branch_is_deployed_not_reverted_again(rig: MakeRig) -> None:
    r = rig("push")
    r.repo.reverted_in_git = {BAD: REVERT}  # a person's `git revert` (or our trailer) on the branch
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule, handled.culprits) == ("alert", "undone_on_branch", (BAD,))
    assert f"by {REVERT[:12]}" in handled.reason
    [decision] = r.decisions(incident)
    assert decision.evidence["undone_on_branch"] == {BAD: REVERT}
    assert r.repo.reverts == [] and r.store.audit.reverts() == [] and r.counted_outcomes() == {}
    assert r.steps() == [RevertStep.ALERT_ONLY] and r.told[0].detail.rule == "undone_on_branch"
    assert r.argocd.refreshed == [APP]  # Argo CD is asked to deploy the branch head now


def test_a_newer_commit_to_the_app_is_waited_for_not_reverted_on_top_of(rig: MakeRig) -> None:
    r = rig("push")
    r.repo.after_failing = [ChangedCommit(replace(CULPRIT, sha=NEXT), ("apps/plate-api-stg/deployment.yaml",))]
    incident = r.fail()

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule) == ("wait", "fix_on_branch") and handled.retry_in is not None
    assert r.repo.reverts == [] and r.argocd.refreshed == [APP]
    r.clock.advance(11 * 60)  # past WATCHER_REVERT__FIX_WAIT_SECONDS: the fix never deployed
    later = r.reverter.handle(incident)
    assert (later.action, later.rule) == ("alert", "fix_not_deployed") and r.repo.reverts == []


def test_alert_only_when_the_store_already_reverted_the_culprit_for_another_app(rig: MakeRig) -> None:
    r = rig("push")
    r.repo.changed = [ChangedCommit(CULPRIT, ("apps/plate-api-stg/deployment.yaml", "apps/plate-web-stg/hpa.yaml"))]
    first = r.fail(OTHER)  # the same commit broke the other app first; its revert is pushed
    assert r.reverter.handle(first).outcome is RevertState.PUSHED
    incident = r.fail(APP)

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule) == ("alert", "already_reverted")
    assert f"revert #{r.revert_row(first).id} pushed" in handled.reason
    assert len(r.repo.reverts) == 1 and r.store.audit.reverts(incident_id=incident) == []


def test_rate_limit_opens_the_circuit_and_resume_closes_it(rig: MakeRig) -> None:
    r = rig("push", max_reverts_per_hour=1)
    assert r.reverter.handle(r.broken_again(EARLIER, OTHER)).outcome is RevertState.PUSHED
    incident = r.fail(APP)  # another commit breaks another app within the hour

    handled = r.reverter.handle(incident)

    assert (handled.action, handled.rule, handled.outcome) == ("alert", "rate_limit", None)
    assert "circuit opened" in handled.reason
    assert r.store.audit.circuit() == handled.reason
    assert r.metrics.registry.get_sample_value("sync_watcher_revert_circuit_open") == 1.0
    assert r.steps() == [RevertStep.REVERT_PUSHED, RevertStep.CIRCUIT_OPEN, RevertStep.ALERT_ONLY]
    assert len(r.repo.reverts) == 1 and r.store.audit.reverts(incident_id=incident) == []

    assert r.reverter.handle(r.broken_again(NEXT)).rule == "circuit_open"  # every app, until someone resumes
    assert len(r.repo.reverts) == 1

    assert r.reverter.resume(None, circuit=True) == {"app": None, "resumed": False, "circuit_closed": True}

    assert r.store.audit.circuit() is None
    assert r.metrics.registry.get_sample_value("sync_watcher_revert_circuit_open") == 0.0
    assert r.reverter.resume(None, circuit=True)["circuit_closed"] is False  # already closed


def test_resume_lifts_a_suspension_and_the_app_is_reverted_again(rig: MakeRig) -> None:
    r = rig("push")
    r.store.audit.suspend(APP, "revert did not heal", None, r.clock())
    incident = r.fail()
    assert r.reverter.handle(incident).rule == "suspended"

    assert r.reverter.resume(APP, circuit=False) == {"app": APP, "resumed": True, "circuit_closed": False}
    assert r.store.audit.suspended() == {}
    assert r.metrics.registry.get_sample_value("sync_watcher_suspended_apps") == 0.0

    assert r.reverter.handle(r.broken_again(NEXT)).outcome is RevertState.PUSHED
