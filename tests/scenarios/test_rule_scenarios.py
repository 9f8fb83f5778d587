"""Decision rules added with the failure classes and the sync-window hold, end to end: the simulator on real git, the
whole daemon. Each test asserts the exact commits reverted (none here) and the decision's rule, action and evidence.

The rest of the new rules have their scenario beside the related behaviour: cluster_fault in
test_evidence_scenarios.py, sync_window in test_allowed_scenarios.py, preflight_render_failed in
test_preflight_scenarios.py, a revert verified as restored in test_one_actor.py and test_argocd_shapes.py.
pods_not_from_this_deploy has none: the simulator models no nodes, so no pod of an older ReplicaSet can be stranded
in trouble (tests/revert/test_holds_and_verdicts.py covers it with Argo CD's resource tree)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.scenarios.test_allowed_scenarios import FAILURES
from tests.scenarios.test_evidence_scenarios import alerted_only
from tests.support.revert_world import Scenario
from watcher.domain import DecisionRecord, Event
from watcher.sim.rollouts import CASES
from watcher.sim.world import SimWorld

API = "plate-api-stg"


def alert_decision(s: Scenario, rule: str) -> DecisionRecord:
    """The decision of `rule` on the app, an alert, with nothing reverted (tests/scenarios/test_evidence_scenarios)."""
    alerted_only(s, API, rule)
    decision = s.decision(API, rule)
    assert decision is not None
    return decision


def test_a_deny_window_past_the_hold_bound_alerts_and_reverts_nothing(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """A deny window (types.go:3186-3244; appcontroller.go:2002-2019: auto-sync blocked, silently) begins as the
    failure shows and lasts an hour, longer than WATCHER_REVERT__HOLD_MAX_SECONDS: the revert the policy would make
    is not pushed to sit in git, the culprit is named, and the person is told to revert and sync by hand."""
    s = scenario(hold_max_seconds=0.01)  # already past the bound at the first decision: no wait of an hour
    window: list[dict[str, Any]] = []

    def freeze(e: Event) -> None:
        if e.app == API and e.kind in FAILURES and not window:
            now = datetime.now(UTC)
            window.append({"kind": "deny", "schedule": f"{now.minute} {now.hour} * * *", "duration": "1h",
                           "applications": ["*-stg"], "timeZone": "UTC"})  # fmt: skip
            world.controller.windows.set("default", window)

    s.start(before=freeze)
    bad = s.push("plate-api-stg: image 9.9.9", {API: ("image.tag", "9.9.9")})  # a tag the registry does not have
    decision = alert_decision(s, "held_too_long")
    assert decision.evidence["culprits"] == [bad]
    assert "has not been allowed to sync" in decision.reason and "held by a deny sync window" in decision.reason
    assert s.decision(API, "culprit_found") is None


def test_a_failure_named_on_an_object_the_commit_did_not_change_reverts_nothing(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """A webhook's denial is the object's content (statuserror.go:29-51, research row C19), but the only commit
    changed the app's ConfigMap, not the Deployment the webhook refused: nothing a candidate changed failed."""
    s = scenario().start()
    s.world.controller.cluster.admission.webhook_denies = "Deployments need the team label"
    bad = s.push("plate-api-stg: greeting", {API: ("config.greeting", "hello")})
    decision = alert_decision(s, "culprit_not_touching")
    assert decision.evidence["failure"]["class"] == "content"
    assert decision.evidence["evidence_line"] == (
        f"Deployment/plate-stg/{API} failed, but none of the candidates ({bad[:7]}) changed it in the rendered "
        "output or in the files that define it, nor the Application's sync options, policy or sources"
    )


def test_a_failed_sync_in_words_that_name_no_fault_reverts_nothing(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """A PreSync hook Job that fails (sync_context.go: a completed, unsuccessful task fails the sync): Argo CD says
    'one or more synchronization tasks completed unsuccessfully', and the Job 'has reached the specified backoff
    limit'. Neither says whether the commit or the cluster is at fault, so the commit that added the hook is named
    and not reverted (if hook failures should count as the content's, this is the test to change)."""
    s = scenario().start()
    s.world.work.git("pull", "-q", "--rebase", "origin", "main")
    bad = CASES["failed_hook"].commit(s.world.work)
    s.world.work.push()
    decision = alert_decision(s, "unknown_failure")
    assert [c["sha"] for c in decision.evidence["blame"]["culprits"]] == [bad]  # named for a person, not reverted
    assert decision.evidence["failure"]["class"] == "unknown"
    assert decision.evidence["evidence_line"] == "Job/plate-stg/db-migrate: the message matches no known failure"
    assert s.decision(API, "culprit_found") is None
