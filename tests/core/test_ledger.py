"""The incident ledger (pure): what each event opens, closes and counts, over timelines of events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watcher.core.ledger import IncidentLedger, LedgerCounts, fold, ledger_of
from watcher.domain import Event, EventKind, Incident

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
K = EventKind


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(kind: EventKind, seconds: float, revision: str | None = "r1", app: str = "a", **evidence: Any) -> Event:
    return Event(app, kind, revision, at(seconds), "why", dict(evidence))


def run(events: list[Event], start: IncidentLedger | None = None) -> tuple[IncidentLedger, list[LedgerCounts]]:
    ledger, counted = start or IncidentLedger(), []
    for e in events:
        ledger, counts = fold(ledger, e)
        counted.append(counts)
    return ledger, counted


def commit(seconds: float) -> dict[str, Any]:
    return {"sha": "r1", "committed_at": at(seconds).isoformat()}


@pytest.mark.parametrize(
    "events, counts",
    [
        pytest.param(
            [ev(K.SYNC_FAILED, 30, onset=at(10).isoformat())],
            [LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=20.0, change_failure_stage="sync")],
            id="a failure counts its time to detect from the onset Argo CD reports, and a failed change",
        ),
        pytest.param(
            [ev(K.DEGRADED, 5)],
            [LedgerCounts(failure=K.DEGRADED, detect_seconds=0.0, change_failure_stage="runtime")],
            id="without an onset the failure began when it was seen; degraded is a runtime change failure",
        ),
        pytest.param(
            [ev(K.SYNC_FAILED, 5, onset=at(9).isoformat())],
            [LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=0.0, change_failure_stage="sync")],
            id="an onset after detection (clock skew) is zero seconds, not negative",
        ),
        pytest.param(
            [ev(K.SYNC_FAILED, 1), ev(K.DEGRADED, 2)],
            [
                LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=0.0, change_failure_stage="sync"),
                LedgerCounts(failure=K.DEGRADED, detect_seconds=0.0),
            ],
            id="one revision that opens two incidents is one failed change",
        ),
        pytest.param(
            [ev(K.SYNC_FAILED, 1), ev(K.RECOVERED, 9, "r2"), ev(K.SYNC_FAILED, 20)],
            [
                LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=0.0, change_failure_stage="sync"),
                LedgerCounts(restore_seconds=8.0),
                LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=0.0),
            ],
            id="the same revision failing again after a recovery is still one failed change",
        ),
        pytest.param(
            [ev(K.SYNC_FAILED, 1, "r1"), ev(K.SYNC_FAILED, 2, "r2")],
            [
                LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=0.0, change_failure_stage="sync"),
                LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=0.0, change_failure_stage="sync"),
            ],
            id="a second revision failing is a second failed change",
        ),
        pytest.param(
            [ev(K.SYNC_FAILED, 1, None), ev(K.DEGRADED_UNATTRIBUTED, 2)],
            [
                LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=0.0),
                LedgerCounts(failure=K.DEGRADED_UNATTRIBUTED, detect_seconds=0.0),
            ],
            id="no revision, or a failure no change caused: an incident, not a failed change",
        ),
        pytest.param(
            [ev(K.SYNC_FAILED, 10, onset=at(4).isoformat()), ev(K.DEGRADED, 20), ev(K.RECOVERED, 64, "r2")],
            [
                LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=6.0, change_failure_stage="sync"),
                LedgerCounts(failure=K.DEGRADED, detect_seconds=0.0),
                LedgerCounts(restore_seconds=60.0),
            ],
            id="time to restore runs from the first open incident's onset",
        ),
        pytest.param(
            [ev(K.SYNC_FAILED, 1), ev(K.APP_REMOVED, 9)],
            [LedgerCounts(failure=K.SYNC_FAILED, detect_seconds=0.0, change_failure_stage="sync"), LedgerCounts()],
            id="a removal closes the incidents but restores nothing",
        ),
        pytest.param(
            [ev(K.RECOVERED, 9)],
            [LedgerCounts()],
            id="a recovery with nothing open restores nothing",
        ),
        pytest.param(
            [ev(K.DEPLOYED, 100, commit=commit(40), finished_at=at(95).isoformat())],
            [LedgerCounts(deployed=True, lead_seconds=55.0)],
            id="a deploy counts its lead time from the commit to the finished sync",
        ),
        pytest.param(
            [ev(K.DEPLOYED, 100), ev(K.DEPLOYED, 101, commit=commit(40))],
            [LedgerCounts(deployed=True), LedgerCounts(deployed=True)],
            id="a deploy without its commit or its finish time has no lead time",
        ),
        pytest.param(
            [ev(K.DEPLOYED, 100, commit=commit(99), finished_at=at(98).isoformat())],
            [LedgerCounts(deployed=True, lead_seconds=0.0)],
            id="a commit dated after its sync finished (clock skew) is zero lead time",
        ),
        pytest.param(
            [ev(K.DEPLOY_STARTED, 1), ev(K.SYNC_FAILING, 2)],
            [LedgerCounts(), LedgerCounts()],
            id="a sync starting or still retrying counts nothing",
        ),
    ],
)
def test_fold_counts(events: list[Event], counts: list[LedgerCounts]) -> None:
    assert run(events)[1] == counts


@pytest.mark.parametrize(
    "events, open_now, since",
    [
        ([ev(K.SYNC_FAILED, 1), ev(K.SYNC_FAILED, 2, "r2")], {("a", "sync_failed"): 2}, {"a": at(1)}),
        (
            [ev(K.DEGRADED, 5), ev(K.SYNC_FAILED, 6, app="b"), ev(K.RECOVERED, 7)],
            {("b", "sync_failed"): 1},
            {"b": at(6)},
        ),
        ([ev(K.SYNC_FAILED, 5), ev(K.DEGRADED, 3, onset=at(1).isoformat())], None, {"a": at(5)}),
        ([ev(K.MANIFEST_ERROR, 1), ev(K.APP_REMOVED, 2)], {}, {}),
    ],
    ids=["counts per kind", "a recovery closes only its app", "the first onset stands", "a removal closes all"],
)
def test_fold_keeps_what_is_open(
    events: list[Event], open_now: dict[tuple[str, str], int] | None, since: dict[str, datetime]
) -> None:
    ledger, _ = run(events)
    if open_now is not None:
        assert dict(ledger.open) == open_now
    assert dict(ledger.since) == since


def test_fold_never_changes_the_ledger_it_was_given() -> None:
    before = IncidentLedger()
    after, _ = fold(before, ev(K.SYNC_FAILED, 1))
    assert (dict(before.open), dict(before.since), dict(before.last_failed_change)) == ({}, {}, {})
    assert after.open_kinds("a") == ["sync_failed"] and after.open_kinds("b") == []


def test_a_restart_resumes_from_the_open_incidents() -> None:
    def incident(app: str, kind: EventKind, detected: float, onset: float | None = None) -> Incident:
        evidence: dict[str, object] = {"onset": at(onset).isoformat()} if onset is not None else {}
        return Incident(1, app, kind, "r1", at(detected), None, "why", evidence)

    ledger = ledger_of([incident("a", K.DEGRADED, 10), incident("a", K.SYNC_FAILED, 20, onset=5)])
    assert dict(ledger.open) == {("a", "degraded"): 1, ("a", "sync_failed"): 1}
    assert dict(ledger.since) == {"a": at(5)}  # the oldest onset, whichever incident it belongs to
    _, (counts,) = run([ev(K.RECOVERED, 65, "r2")], ledger)
    assert counts == LedgerCounts(restore_seconds=60.0)
