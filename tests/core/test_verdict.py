"""Pure: what Argo CD's answer after a pushed revert proves (core/verdict.py).

Shapes: after a revert whose manifests are already live, Argo CD replaces `status.sync` with the comparison (Synced
at the revert) and leaves `operationState` - the failed operation of the culprit - as it was
(controller/appcontroller.go:2020-2024; no auto-sync for a Synced app, :2538-2543); after a revert that changes
the cluster, an operation on the revert runs and succeeds (controller/appcontroller.go:2582, initiatedBy automated).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.sync_permit import Held, Hold
from watcher.core.verdict import verdict_of
from watcher.domain import AppSnapshot, Health, Phase, SyncStatus, VerifyResult

NOW = datetime(2026, 8, 20, 10, 23, tzinfo=UTC)
BAD, REVERT, LATER, OTHER = "c1" * 20, "r1" * 20, "c3" * 20, "f0" * 20
DEADLINE = NOW + timedelta(minutes=5)
WINDOW = Hold(Held.SYNC_WINDOW, "held by a deny sync window (0 18 * * *, 14h, UTC) until 2026-08-21 08:00 UTC",
              datetime(2026, 8, 21, 8, tzinfo=UTC))  # fmt: skip


def snap(sync: str, health: Health, phase: Phase | None, op: str | None, degraded: tuple[str, ...] = ()) -> AppSnapshot:
    return AppSnapshot(
        "plate-web-prod", sync_status=SyncStatus.SYNCED, sync_revision=sync, health=health, phase=phase,
        operation_revision=op, degraded_resources=degraded,
    )  # fmt: skip


def includes(rev: str) -> bool:
    return rev in (REVERT, LATER)


@pytest.mark.parametrize(
    "seen, now, hold, result",
    [
        pytest.param(
            snap(REVERT, Health.HEALTHY, Phase.SUCCEEDED, REVERT),
            NOW,
            None,
            VerifyResult.HEALED,
            id="synced_and_deployed",
        ),  # fmt: skip
        pytest.param(
            snap(LATER, Health.HEALTHY, Phase.SUCCEEDED, LATER),
            NOW,
            None,
            VerifyResult.HEALED,
            id="deployed_on_a_descendant",
        ),  # fmt: skip
        pytest.param(
            snap(REVERT, Health.HEALTHY, Phase.FAILED, BAD),
            NOW,
            None,
            VerifyResult.RESTORED,
            id="revert_restores_live_no_sync",
        ),  # fmt: skip
        pytest.param(
            snap(LATER, Health.HEALTHY, Phase.SUCCEEDED, BAD),
            NOW,
            None,
            VerifyResult.RESTORED,
            id="no_sync_since_the_culprits",
        ),  # fmt: skip
        pytest.param(
            snap(REVERT, Health.PROGRESSING, Phase.SUCCEEDED, REVERT), NOW, None, VerifyResult.PENDING, id="rolling_out"
        ),  # fmt: skip
        pytest.param(
            snap(REVERT, Health.HEALTHY, Phase.RUNNING, REVERT), NOW, None, VerifyResult.PENDING, id="sync_running"
        ),  # fmt: skip
        pytest.param(
            snap(OTHER, Health.HEALTHY, Phase.SUCCEEDED, OTHER), NOW, None, VerifyResult.PENDING, id="not_on_the_revert"
        ),  # fmt: skip
        pytest.param(
            snap(BAD, Health.DEGRADED, Phase.SUCCEEDED, BAD),
            DEADLINE,
            None,
            VerifyResult.NOT_HEALED,
            id="past_the_deadline",
        ),  # fmt: skip
        pytest.param(
            snap(BAD, Health.DEGRADED, Phase.SUCCEEDED, BAD),
            DEADLINE,
            WINDOW,
            VerifyResult.PENDING,
            id="past_the_deadline_held_by_a_window",
        ),  # fmt: skip
        pytest.param(None, NOW, None, VerifyResult.PENDING, id="not_seen"),
    ],
)
def test_verdict(seen: AppSnapshot | None, now: datetime, hold: Hold | None, result: VerifyResult) -> None:
    assert verdict_of(seen, REVERT, includes, (), DEADLINE, now, hold).result is result


def test_restored_says_it_proves_nothing_about_the_culprit() -> None:
    v = verdict_of(snap(REVERT, Health.HEALTHY, Phase.FAILED, BAD), REVERT, includes, (), DEADLINE, NOW)
    assert "restored the live state" in v.reason and "no sync run" in v.reason and "does not prove" in v.reason


def test_a_failing_object_still_degraded_is_not_healed() -> None:
    seen = snap(REVERT, Health.HEALTHY, Phase.SUCCEEDED, REVERT, ("Deployment/plate-prod/plate-web",))
    v = verdict_of(seen, REVERT, includes, ("Deployment/plate-prod/plate-web",), DEADLINE, NOW)
    assert v.result is VerifyResult.PENDING


def test_a_hold_moves_the_deadline_to_its_end_bounded() -> None:
    seen = snap(BAD, Health.DEGRADED, Phase.SUCCEEDED, BAD)
    v = verdict_of(seen, REVERT, includes, (), DEADLINE, DEADLINE, WINDOW)
    assert v.hold is WINDOW and v.deadline == WINDOW.until + timedelta(minutes=5) and WINDOW.text in v.reason
    limit = DEADLINE + timedelta(hours=1)
    assert verdict_of(seen, REVERT, includes, (), DEADLINE, DEADLINE, WINDOW, limit).deadline == limit
    past = verdict_of(seen, REVERT, includes, (), DEADLINE, limit, WINDOW, limit)
    assert past.result is VerifyResult.NOT_HEALED and "not allowed to deploy" in past.reason
