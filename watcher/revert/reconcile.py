"""Crash safety: settle each revert whose intent was stored but whose outcome was not, from what git shows.

The outcome is written by the reverter's one writer (`write`), as any other; this module only reads and decides.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from watcher.core.outcome import Outcome, reconciled_outcome
from watcher.domain import Incident, RetryLater, RevertState
from watcher.ports import RevertRepo
from watcher.store.audit import RevertAudit
from watcher.store.detection import DetectionRecords

RECONCILE_MARGIN = timedelta(minutes=10)  # clock skew between this pod and the commit's committer date
Write = Callable[[int, Incident, tuple[()], Outcome], None]  # (revert id, incident, culprits, outcome)


def settle_unfinished(
    audit: RevertAudit,
    incidents: DetectionRecords,
    repo: RevertRepo,
    verify_deadline: Callable[[], datetime],
    write: Write,
    log: Any,
) -> bool:
    """Settle every revert left STARTED; False when git cannot answer yet (nothing is settled then, and
    "started" counts as reverted meanwhile: nothing can be reverted twice)."""
    unfinished = audit.reverts(states=(RevertState.STARTED,))
    if unfinished:
        try:
            repo.sync()
        except RetryLater as exc:
            log.warning("revert_reconcile_waiting_for_git", error=str(exc), unfinished=len(unfinished))
            return False
    deadline = verify_deadline()
    for r in unfinished:
        incident = incidents.incident(r.incident_id)
        if incident is not None:  # its random uid names it in git; content must undo the culprits (find_by_incident)
            try:
                found = repo.find_by_incident(incident.uid or "", r.culprits, r.started_at - RECONCILE_MARGIN)
            except RetryLater as exc:  # content not read in time: unknown, not "no revert"; the rest waits too
                log.warning("revert_reconcile_waiting_for_git", error=str(exc), unfinished=len(unfinished))
                return False
            write(r.id, incident, (), reconciled_outcome(r.mode, found, deadline))
    return True
