"""The detector over timelines: what a platform engineer would be told, and when."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.detect import AppTracker, DetectionRules, observe
from watcher.core.policy import still_failing
from watcher.domain import AppSnapshot, Condition, EventKind, Health, Phase, SyncStatus

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RULES = DetectionRules(
    comparison_error_grace=timedelta(seconds=60),
    degraded_grace=timedelta(seconds=60),
    progress_deadline=timedelta(seconds=300),
    attribution_window=timedelta(hours=1),
)
A, B = "a" * 40, "b" * 40


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def snap(**kw: object) -> AppSnapshot:
    base: dict[str, object] = dict(
        name="plate-api-stg",
        sync_status=SyncStatus.SYNCED,
        sync_revision=A,
        health=Health.HEALTHY,
        phase=Phase.SUCCEEDED,
        operation_revision=A,
        operation_started_at=at(-20),
        operation_finished_at=at(-10),
    )
    base.update(kw)
    return AppSnapshot(**base)  # type: ignore[arg-type]


HEALTHY_A = snap()
SYNCING_B = snap(
    sync_status=SyncStatus.OUT_OF_SYNC,
    sync_revision=B,
    phase=Phase.RUNNING,
    operation_revision=B,
    operation_started_at=at(0),
    operation_finished_at=None,
)
RETRYING_B = replace(
    SYNCING_B, retry_count=1, operation_message="one or more objects failed to apply. Retrying attempt #1 at 12:00PM."
)
FAILED_B = replace(
    SYNCING_B,
    phase=Phase.FAILED,
    retry_count=2,
    operation_finished_at=at(30),
    operation_message="one or more objects failed to apply (retried 2 times).",
)
DEPLOYED_B = snap(
    sync_revision=B,
    operation_revision=B,
    operation_started_at=at(0),
    operation_finished_at=at(10),
    health=Health.PROGRESSING,
)
COMPARISON_ERROR_B = snap(
    sync_status=SyncStatus.UNKNOWN,
    sync_revision=B,
    conditions=(Condition("ComparisonError", "failed to parse values-stg.yaml"),),
)


def run(
    timeline: list[tuple[float, AppSnapshot | None]], rules: DetectionRules = RULES, tracker: AppTracker | None = None
) -> list[tuple[float, str, str | None]]:
    tracker = tracker or AppTracker()
    seen = []
    for t, s in timeline:
        tracker, events = observe(tracker, s, at(t), rules, app="plate-api-stg")
        seen += [(t, e.kind.value, e.revision) for e in events]
    return seen


def kinds(events: list[tuple[float, str, str | None]]) -> list[str]:
    return [k for _, k, _ in events if k not in ("deploy_started", "deployed")]


@pytest.mark.parametrize(
    "name, timeline, expected",
    [
        ("healthy app stays quiet", [(0, HEALTHY_A), (100, HEALTHY_A)], []),
        (
            "retrying is failing, not failed",
            [(0, HEALTHY_A), (5, SYNCING_B), (20, RETRYING_B), (25, RETRYING_B)],
            ["sync_failing"],
        ),
        (
            "final Failed is a failure of B",
            [(0, HEALTHY_A), (5, SYNCING_B), (20, RETRYING_B), (40, FAILED_B)],
            ["sync_failing", "sync_failed"],
        ),
        (
            "Error phase counts like Failed",
            [(0, HEALTHY_A), (40, replace(FAILED_B, phase=Phase.ERROR))],
            ["sync_failed"],
        ),
        (
            "failure reported once per revision",
            [(0, HEALTHY_A), (40, FAILED_B), (50, FAILED_B), (60, FAILED_B)],
            ["sync_failed"],
        ),
        ("comparison error cleared within grace", [(0, HEALTHY_A), (10, COMPARISON_ERROR_B), (40, HEALTHY_A)], []),
        (
            "comparison error past grace",
            [(0, HEALTHY_A), (10, COMPARISON_ERROR_B), (40, COMPARISON_ERROR_B), (71, COMPARISON_ERROR_B)],
            ["manifest_error"],
        ),
        (
            "degraded within grace after deploy is a blip",
            [
                (5, DEPLOYED_B),
                (20, replace(DEPLOYED_B, health=Health.DEGRADED)),
                (40, replace(DEPLOYED_B, health=Health.HEALTHY)),
            ],
            [],
        ),
        (
            "degraded past grace after deploy",
            [
                (5, DEPLOYED_B),
                (20, replace(DEPLOYED_B, health=Health.DEGRADED)),
                (71, replace(DEPLOYED_B, health=Health.DEGRADED)),
            ],
            ["degraded"],
        ),
        (
            "degraded long after deploy is not blamed on a commit",
            [
                (5, DEPLOYED_B),
                (20, replace(DEPLOYED_B, health=Health.HEALTHY)),
                (5000, replace(DEPLOYED_B, health=Health.DEGRADED)),
                (5100, replace(DEPLOYED_B, health=Health.DEGRADED)),
            ],
            ["degraded_unattributed"],
        ),
        (
            "unknown health never becomes a failure",
            [
                (5, DEPLOYED_B),
                (100, replace(DEPLOYED_B, health=Health.UNKNOWN)),
                (1000, replace(DEPLOYED_B, health=None)),
            ],
            [],
        ),
        (
            "missing operation data is not a failure",
            [
                (0, snap(phase=Phase.FAILED, operation_revision=None)),
                (100, snap(phase=Phase.FAILED, operation_revision=None)),
            ],
            [],
        ),
        ("an unknown phase is not a failure", [(0, snap(phase=None, operation_revision=B, sync_status=None))], []),
        (
            "stuck progressing past the deadline",
            [(5, DEPLOYED_B), (200, DEPLOYED_B), (311, DEPLOYED_B), (400, DEPLOYED_B)],
            ["stuck_progressing"],
        ),
        ("progressing then healthy in time", [(5, DEPLOYED_B), (200, replace(DEPLOYED_B, health=Health.HEALTHY))], []),
        (
            "recovered on a later revision",
            [
                (0, HEALTHY_A),
                (40, FAILED_B),
                (100, snap(sync_revision="c" * 40, operation_revision="c" * 40, operation_finished_at=at(90))),
            ],
            ["sync_failed", "recovered"],
        ),
        (
            "synced and healthy on the failed revision without a new sync is not recovery",
            [(40, FAILED_B), (100, replace(FAILED_B, sync_status=SyncStatus.SYNCED, health=Health.HEALTHY))],
            ["sync_failed"],
        ),
        (
            "degraded that heals on the same revision recovers",
            [
                (5, DEPLOYED_B),
                (71, replace(DEPLOYED_B, health=Health.DEGRADED)),
                (90, replace(DEPLOYED_B, health=Health.HEALTHY)),
            ],
            ["degraded", "recovered"],
        ),
    ],
)
def test_timeline(name: str, timeline: list[tuple[float, AppSnapshot | None]], expected: list[str]) -> None:
    assert kinds(run(timeline)) == expected, name


def test_failures_are_attributed_to_the_revision_argo_cd_tried() -> None:
    events = run([(0, HEALTHY_A), (20, RETRYING_B), (40, FAILED_B), (10, COMPARISON_ERROR_B)])
    assert {(k, r) for _, k, r in events if k.startswith("sync")} == {("sync_failing", B), ("sync_failed", B)}


def test_retrying_counts_as_failed_after_the_configured_attempts() -> None:
    rules = replace(RULES, failed_after_retries=2)
    retry2 = replace(RETRYING_B, retry_count=2, operation_message="x. Retrying attempt #2 at 12:01PM.")
    assert kinds(run([(0, HEALTHY_A), (20, RETRYING_B), (30, retry2)], rules)) == ["sync_failing", "sync_failed"]
    assert kinds(run([(0, HEALTHY_A), (20, RETRYING_B)], rules)) == ["sync_failing"]


def test_running_with_retry_count_but_no_retry_message_is_not_failing() -> None:
    assert kinds(run([(0, HEALTHY_A), (20, replace(RETRYING_B, operation_message="syncing"))])) == []


def test_app_that_disappears_reports_removal_not_failure() -> None:
    events = run([(0, HEALTHY_A), (10, None), (20, None)])
    assert kinds(events) == ["app_removed"]


def test_dedup_survives_a_serialised_tracker() -> None:
    from watcher.core.codec import tracker_from_json, tracker_to_json

    tracker, events = observe(AppTracker(), FAILED_B, at(40), RULES, app="x")
    assert [e.kind for e in events] == [EventKind.SYNC_FAILED]
    again, events = observe(tracker_from_json(tracker_to_json(tracker)), FAILED_B, at(50), RULES, app="x")
    assert events == []
    assert again.open_failures == (("sync_failed", B),)


def test_same_kind_on_a_new_revision_is_reported_again() -> None:
    c = "c" * 40
    failed_c = replace(FAILED_B, sync_revision=c, operation_revision=c, operation_finished_at=at(90))
    assert kinds(run([(40, FAILED_B), (100, failed_c)])) == ["sync_failed", "sync_failed"]


def test_multi_source_app_uses_the_operation_revision() -> None:
    # Multi-source apps report `revisions`; the adapter passes the first source's revision or the sync result's.
    multi = replace(FAILED_B, sync_revision=None)
    assert run([(40, multi)])[-1][1:] == ("sync_failed", B)


def test_grace_expires_on_a_tick_without_new_data() -> None:
    tracker, _ = observe(AppTracker(), COMPARISON_ERROR_B, at(0), RULES, app="x")
    tracker, events = observe(tracker, COMPARISON_ERROR_B, at(59), RULES, app="x")
    assert events == []
    _, events = observe(tracker, COMPARISON_ERROR_B, at(61), RULES, app="x")
    assert [e.kind for e in events] == [EventKind.MANIFEST_ERROR]
    assert events[0].evidence["onset"] == at(0).isoformat()


def test_tracker_round_trips_through_json() -> None:
    import json

    from watcher.core.codec import tracker_from_json, tracker_to_json

    tracker, _ = observe(AppTracker(), COMPARISON_ERROR_B, at(0), RULES, app="x")
    assert tracker_from_json(json.loads(json.dumps(tracker_to_json(tracker)))) == tracker


def test_terminated_operation_is_not_a_new_failure() -> None:
    # sync-watcher (or a human) ends a sync still retrying the bad revision so the revert can deploy.
    tracker, _ = observe(AppTracker(), HEALTHY_A, at(0), RULES, app="plate-api-stg")
    terminated = replace(FAILED_B, operation_message="Operation terminated")
    _, events = observe(tracker, terminated, at(40), RULES, app="plate-api-stg")
    assert [e.kind for e in events] == []


def test_good_revisions_remember_where_the_app_was_synced_and_healthy() -> None:
    tracker, _ = observe(AppTracker(), HEALTHY_A, at(0), RULES, app="plate-api-stg")
    tracker, _ = observe(tracker, SYNCING_B, at(1), RULES, app="plate-api-stg")
    tracker, _ = observe(tracker, FAILED_B, at(40), RULES, app="plate-api-stg")
    assert tracker.good_revisions == (A,)  # never healthy on B: blame starts from A
    healthy_b = snap(sync_revision=B, operation_revision=B, operation_finished_at=at(50))
    tracker, _ = observe(tracker, healthy_b, at(60), RULES, app="plate-api-stg")
    assert tracker.good_revisions == (A, B)


def test_degraded_resources_the_sync_did_not_change_are_not_the_deploys_doing() -> None:
    """Argo CD says which resources the sync applied; a degraded one that is not among them (a node failure,
    a quota, an expired certificate) is degraded_unattributed, not the deployed revision's fault."""
    tracker, _ = observe(AppTracker(), HEALTHY_A, at(0), RULES, app="plate-api-stg")
    deployed = replace(
        HEALTHY_A,
        sync_revision=B,
        operation_revision=B,
        operation_finished_at=at(10),
        changed_resources=("ConfigMap/plate/plate-api-stg-config",),
    )
    tracker, _ = observe(tracker, deployed, at(10), RULES, app="plate-api-stg")
    broken = replace(deployed, health=Health.DEGRADED, degraded_resources=("Deployment/plate/plate-api-stg",))
    tracker, _ = observe(tracker, broken, at(20), RULES, app="plate-api-stg")
    _, events = observe(tracker, broken, at(20) + RULES.degraded_grace, RULES, app="plate-api-stg")
    assert [(e.kind, e.revision) for e in events] == [(EventKind.DEGRADED_UNATTRIBUTED, B)]
    # The same with the Deployment among what the sync changed: the deploy broke it.
    changed = replace(broken, changed_resources=("Deployment/plate/plate-api-stg",))
    tracker2, _ = observe(AppTracker(), HEALTHY_A, at(0), RULES, app="plate-api-stg")
    tracker2, _ = observe(
        tracker2, replace(changed, health=Health.HEALTHY, degraded_resources=()), at(10), RULES, app="plate-api-stg"
    )
    tracker2, _ = observe(tracker2, changed, at(20), RULES, app="plate-api-stg")
    _, events = observe(tracker2, changed, at(20) + RULES.degraded_grace, RULES, app="plate-api-stg")
    assert [(e.kind, e.revision) for e in events] == [(EventKind.DEGRADED, B)]


def test_a_re_sync_of_a_revision_that_ran_healthy_is_not_a_new_deploy() -> None:
    tracker, _ = observe(AppTracker(), HEALTHY_A, at(0), RULES, app="plate-api-stg")
    assert tracker.deployed_at is not None and A in tracker.good_revisions
    first_deploy = tracker.deployed_at
    selfheal = replace(HEALTHY_A, operation_started_at=at(3000), operation_finished_at=at(3001))
    tracker, events = observe(tracker, selfheal, at(3001), RULES, app="plate-api-stg")
    assert tracker.deployed_at == first_deploy and events == []


def test_a_later_failed_sync_says_nothing_of_what_the_deploy_changed() -> None:
    """The last operation is a failed sync of another revision: its results are not the deploy's, so a
    degraded app stays attributed to the deployed revision (as before this rule)."""
    c = "c" * 40
    tracker, _ = observe(AppTracker(), HEALTHY_A, at(0), RULES, app="plate-api-stg")
    deployed = replace(HEALTHY_A, sync_revision=B, operation_revision=B, operation_finished_at=at(10))
    tracker, _ = observe(tracker, deployed, at(10), RULES, app="plate-api-stg")
    failed_later = replace(
        deployed,
        health=Health.DEGRADED,
        phase=Phase.FAILED,
        operation_revision=c,
        operation_finished_at=at(15),
        degraded_resources=("Deployment/plate/plate-api-stg",),
        changed_resources=(),
    )
    tracker, _ = observe(tracker, failed_later, at(20), RULES, app="plate-api-stg")
    _, events = observe(tracker, failed_later, at(20) + RULES.degraded_grace, RULES, app="plate-api-stg")
    assert (EventKind.DEGRADED, B) in [(e.kind, e.revision) for e in events]
    assert EventKind.DEGRADED_UNATTRIBUTED not in [e.kind for e in events]


def test_a_failed_operation_left_behind_by_a_revert_that_needed_no_sync_is_history() -> None:
    """Argo CD keeps the bad revision's Failed operation when the revert's manifests are already live (no new
    sync runs): Synced on another revision means that failure is over, also after a restart."""
    on_revert = replace(FAILED_B, sync_status=SyncStatus.SYNCED, sync_revision="c" * 40, health=Health.HEALTHY)
    assert ("sync_failed", B) in [(kind, rev) for _, kind, rev in run([(40, FAILED_B)])]
    assert [kind for _, kind, _ in run([(40, on_revert)])] == []
    assert not still_failing(on_revert, EventKind.SYNC_FAILED, B)
    assert still_failing(FAILED_B, EventKind.SYNC_FAILED, B)


# Argo CD's render error names no commit: sync.revision is the targetRevision text (3.2+) or absent (before, and
# multi-source) (argo-cd controller/state.go:696-708,1101-1106).
AT_MAIN = replace(COMPARISON_ERROR_B, sync_revision="main")
AT_NOTHING = replace(COMPARISON_ERROR_B, sync_revision=None)


@pytest.mark.parametrize(
    "name, timeline, expected",
    [
        ("at main, once past the grace", [(0, AT_MAIN), (61, AT_MAIN)], [(61, "manifest_error", "main")]),
        ("at nothing (before 3.2)", [(0, AT_NOTHING), (61, AT_NOTHING)], [(61, "manifest_error", None)]),
        (
            "at main again after it cleared: a new failure",
            [(0, AT_MAIN), (61, AT_MAIN), (100, HEALTHY_A), (200, AT_MAIN), (261, AT_MAIN)],
            [(61, "manifest_error", "main"), (261, "manifest_error", "main")],
        ),
        (
            "at a commit, seen again after it cleared: the same failure",
            [(0, COMPARISON_ERROR_B), (61, COMPARISON_ERROR_B), (100, HEALTHY_A), (200, COMPARISON_ERROR_B)]
            + [(261, COMPARISON_ERROR_B)],
            [(61, "manifest_error", B)],
        ),
    ],
)
def test_a_render_error_at_no_commit(
    name: str, timeline: list[tuple[float, AppSnapshot | None]], expected: list[tuple[float, str, str | None]]
) -> None:
    assert [e for e in run(timeline) if e[1] == "manifest_error"] == expected


def test_a_render_error_at_no_commit_says_so_and_is_stored_once_per_onset() -> None:
    from watcher.core.ledger import stored_key

    tracker, _ = observe(AppTracker(), AT_MAIN, at(0), RULES, app="x")
    _, [event] = observe(tracker, AT_MAIN, at(61), RULES, app="x")
    assert event.evidence["unresolved_revision"] is True and "resolved no commit" in event.reason
    assert stored_key(event) == f"{event.dedup_key}|{at(0).isoformat()}"
    tracker, _ = observe(AppTracker(), COMPARISON_ERROR_B, at(0), RULES, app="x")
    _, [at_commit] = observe(tracker, COMPARISON_ERROR_B, at(61), RULES, app="x")
    assert at_commit.evidence["unresolved_revision"] is False and stored_key(at_commit) == at_commit.dedup_key


@pytest.mark.parametrize(
    "shown, incident, expected",
    [("main", "main", True), (None, None, True), (B, "main", False), ("main", B, False)],
    ids=["main", "none", "resolved-since", "commit-then-main"],
)
def test_still_failing_at_what_argocd_showed(shown: str | None, incident: str | None, expected: bool) -> None:
    assert (
        still_failing(replace(COMPARISON_ERROR_B, sync_revision=shown), EventKind.MANIFEST_ERROR, incident) is expected
    )
