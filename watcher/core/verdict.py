"""Pure: what Argo CD's answer after a pushed revert proves.

Healed only when Argo CD compared *and deployed* it: the app is Synced and Healthy on the revert (or a
descendant), its last operation ran on such a revision and succeeded, and none of the objects that failed is
still Degraded. Synced and Healthy on the revert with no operation on it is something else: Argo CD replaces
`status.sync` with each comparison but leaves `operationState` as it was (controller/appcontroller.go:2020-2024),
and runs no auto-sync for an app that compares Synced (appcontroller.go:2538-2543) - the revert restored manifests
that were already live (a refused apply never changed them), so it restored the live state and proves nothing
about the culprit. Past the deadline with neither, the revert did not heal - unless Argo CD was not allowed to
deploy it (`sync_permit.Hold`): then the watcher waits, bounded, and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.core.outcome import settled_on_a_revision
from watcher.core.sync_permit import Hold
from watcher.domain import AppSnapshot, Phase, VerifyResult


@dataclass(frozen=True, slots=True)
class Verdict:
    result: VerifyResult  # PENDING while waiting (for Argo CD, or for a hold to end)
    reason: str
    hold: Hold | None = None  # PENDING because Argo CD may not deploy it: why, and the new deadline
    deadline: datetime | None = None


def verdict_of(
    snap: AppSnapshot | None,
    revert: str,
    includes: Callable[[str], bool],
    failing_objects: tuple[str, ...],
    deadline: datetime | None,
    now: datetime,
    hold: Hold | None = None,
    hold_limit: datetime | None = None,
) -> Verdict:
    """`includes(rev)`: rev is the revert or a descendant. `failing_objects`: "Kind/namespace/name" that failed.
    `hold` is asked only past the deadline; `hold_limit` is the latest a hold may push the deadline to."""
    short = revert[:12]
    settled = settled_on_a_revision(snap)
    if snap is not None and settled is not None and includes(settled):
        ran = (
            snap.phase is Phase.SUCCEEDED and bool(snap.operation_revision) and includes(snap.operation_revision or "")
        )
        still = [o for o in failing_objects if o in snap.degraded_resources]
        if ran and not still:
            return Verdict(
                VerifyResult.HEALED,
                f"Argo CD synced revert {short} (operation at {(snap.operation_revision or '')[:12]}) and the app is "
                "Healthy",
            )
        if not ran:
            return Verdict(
                VerifyResult.RESTORED,
                f"restored the live state: Argo CD shows Synced at {settled[:12]} with no sync run, so revert "
                f"{short}'s manifests were already live; the app is Healthy, which does not prove the culprit was "
                "the cause",
            )
    if deadline is None or now < deadline:
        return Verdict(VerifyResult.PENDING, "waiting for Argo CD to deploy the revert")
    if hold is not None and (hold_limit is None or now < hold_limit):
        step = timedelta(minutes=5)
        until = hold.until + step if hold.until else now + step
        until = min(until, hold_limit) if hold_limit else until
        return Verdict(VerifyResult.PENDING, f"Argo CD may not deploy revert {short}: {hold.text}", hold, until)
    why = f"; Argo CD was not allowed to deploy it: {hold.text}" if hold is not None else ""
    return Verdict(VerifyResult.NOT_HEALED, f"revert {short} did not bring the app back within the deadline{why}")
