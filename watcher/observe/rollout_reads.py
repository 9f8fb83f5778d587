"""The rollout watch's reads: the resource trees of the apps whose new rollout is under way -> verdicts.

The verdicts are handed to the cycle's observation as an argument (observe_rollout folds them in); nothing is
recorded here.
"""

from __future__ import annotations

from datetime import datetime

from watcher.core.rollout import RolloutRules, RolloutVerdict, RolloutWatch, assess
from watcher.domain import AppSnapshot
from watcher.logs import get_logger
from watcher.metrics.registry import Metrics
from watcher.observe.apps_listing import read_trees
from watcher.ports import AppSource

Due = dict[str, tuple[tuple[str, datetime], AppSnapshot]]  # app -> ((revision, sync started), last snapshot)


class RolloutReads:
    """Since when which pod fails, per app whose tree is read; what each round of reads concludes."""

    def __init__(self, argocd: AppSource, rules: RolloutRules, metrics: Metrics):
        self.argocd = argocd
        self.rules = rules
        self.metrics = metrics
        self.log = get_logger()
        self.rollouts: dict[str, RolloutWatch] = {}

    def verdicts(self, due: Due, max_apps: int, concurrency: int, now: datetime) -> dict[str, RolloutVerdict]:
        """Read up to `max_apps` trees (newest deploys first, `concurrency` reads in flight, each within the
        client's deadline). A tree that cannot be read is logged and counted, never a failure."""
        self.rollouts = {k: w for k, w in self.rollouts.items() if k in due}
        chosen = sorted(due, key=lambda k: due[k][0][1], reverse=True)[:max_apps]
        refs = [(k, due[k][1].name, due[k][1].namespace) for k in chosen]
        verdicts: dict[str, RolloutVerdict] = {}
        for key, tree in read_trees(self.argocd, refs, concurrency):
            if isinstance(tree, Exception):
                self.metrics.rollout_reads.labels("failed").inc()
                self.log.warning("resource_tree_unreadable", app=key, error=str(tree), error_type=type(tree).__name__)
                continue
            self.metrics.rollout_reads.labels("read").inc()
            (revision, started), _ = due[key]
            watch, verdict = assess(self.rollouts.get(key, RolloutWatch()), tree, revision, started, now, self.rules)
            self.rollouts[key] = watch
            if verdict is not None:
                verdicts[key] = verdict
        return verdicts
