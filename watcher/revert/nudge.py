"""After a revert is pushed, make Argo CD deploy it now instead of at its next poll (up to 3 minutes)."""

from __future__ import annotations

from structlog.typing import FilteringBoundLogger

from watcher.core.snapshots import snapshot_from_app
from watcher.domain import AppContext, Phase, RetryLater
from watcher.ports import ArgoCDActions


def deploy_now(
    argocd: ArgoCDActions,
    apps: list[AppContext],
    revert_sha: str,
    terminate_retrying: bool,
    log: FilteringBoundLogger,
    watched_repo: str = "",
) -> None:
    """End a sync still retrying the bad revision (it would hold the app for minutes of backoff), then
    refresh. A failure here only costs time: Argo CD's own poll picks the revert up."""
    for app in apps:
        try:
            snap = snapshot_from_app(argocd.get_app(app.name, app.namespace), True, watched_repo)
            retrying = snap.phase is Phase.RUNNING and snap.operation_revision not in (None, revert_sha)
            if retrying and terminate_retrying:
                argocd.terminate_operation(app.name, app.namespace)
                log.info("sync_operation_terminated", app=app.key, revision=snap.operation_revision)
            argocd.get_app(app.name, app.namespace, refresh="normal")
            log.info("argocd_refresh_requested", app=app.key)
        except RetryLater as exc:
            log.warning("argocd_nudge_failed", app=app.key, error=str(exc))
