"""Pure: a revert the policy would make, while Argo CD may not deploy it (core/sync_permit.py).

A deny sync window (or allow windows none of which is open) keeps Argo CD from syncing anything automatically:
a revert pushed now would sit in git, the app would stay broken, and the verification would call it "not
healed". So the reverter waits until the window ends - bounded by WATCHER_REVERT__HOLD_MAX_SECONDS from the
failure - says why, and decides again then (a person may fix it meanwhile, or sync by hand where the window
allows manual syncs). An app the ApplicationSet controller syncs is reverted: its controller deploys the revert at
the app's step (verification waits for it). An app with no automated sync is the policy's `no_automated_sync`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.core.policy import ago
from watcher.core.sync_permit import Held, Hold
from watcher.domain import Action, Decision

HOLD_RULES = frozenset({"sync_window"})
RECHECK = timedelta(minutes=5)


def held_decision(decision: Decision, hold: Hold | None, detected_at: datetime, hold_max: timedelta,
                  now: datetime) -> Decision:  # fmt: skip
    if decision.action is not Action.REVERT or hold is None or hold.reason is not Held.SYNC_WINDOW:
        return decision
    names = ", ".join(c[:12] for c in decision.culprits)
    if now - detected_at >= hold_max:
        return Decision(
            Action.ALERT,
            "held_too_long",
            f"{names} would be reverted, but Argo CD has not been allowed to sync for {ago(now - detected_at)}: "
            f"{hold.text}; revert and sync by hand",
            decision.culprits,
            evidence=_with(decision.evidence, hold.text),
        )
    return Decision(
        Action.WAIT,
        "sync_window",
        f"{names} would be reverted ({decision.reason}), but Argo CD may not deploy it: {hold.text}; waiting",
        decision.culprits,
        evidence=_with(decision.evidence, hold.text),
        wait_until=hold.until or now + RECHECK,  # an end not known: look again in a few minutes, not every 30 s
    )


def _with(evidence: str, hold: str) -> str:
    return f"{evidence}; {hold}" if evidence else hold
