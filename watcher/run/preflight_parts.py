"""The pre-flight wing, built from settings: Argo CD's renderer, the forge's commit statuses, the reverter."""

from __future__ import annotations

from watcher.adapters.argocd import ArgoCDClient
from watcher.adapters.argocd_renders import ArgoCDRenders
from watcher.adapters.forge_status import commit_statuses_for
from watcher.adapters.gitrepo import GitRepo
from watcher.domain import Clock, utcnow
from watcher.logs import get_logger
from watcher.metrics.registry import Metrics
from watcher.ports import CommitStatuses, Fleet
from watcher.preflight.wing import Preflight
from watcher.revert.preflight_revert import PreflightReverter
from watcher.revert.reverter import Reverter
from watcher.settings import Settings
from watcher.store import Store


def preflight_for(
    settings: Settings,
    fleet: Fleet,
    repo: GitRepo,
    argocd: ArgoCDClient,
    store: Store,
    reverter: Reverter,
    metrics: Metrics,
    clock: Clock = utcnow,
) -> Preflight:
    from watcher.adapters.object_schemas import validator_for

    statuses: CommitStatuses | None = None
    if settings.preflight.commit_status and settings.forge.kind:
        try:
            statuses = commit_statuses_for(settings.forge, settings.git.url)
        except Exception as exc:  # noqa: BLE001 - no token: the verdicts are still recorded, the gap logged
            get_logger().warning("preflight_commit_status_off", error=str(exc))
    renders = ArgoCDRenders(argocd)
    reverter.reader.argocd_renderer = renders  # narrowing asks Argo CD's renderer first, the Helm engine after
    wing = Preflight(
        settings,
        fleet,
        repo,
        renders,
        store.preflight,
        metrics.preflight,
        statuses=statuses,
        reverts=PreflightReverter(reverter, store.preflight),
        validator_for=validator_for,
        clock=clock,
    )
    return wing
