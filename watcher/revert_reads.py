"""The reverter's three reads for one incident, each once: Argo CD (a fresh GET), git (the blame range), the
store (the app's revert history). What they return is plain data for `revert_facts.facts_of`."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from watcher.adapters.argocd import degraded_in_tree, health_is_in_the_tree, snapshot_from_app
from watcher.blame import last_good_revision
from watcher.branches import Follow
from watcher.domain import ChangedCommit, EventKind, Health, Incident
from watcher.policy import still_failing
from watcher.ports import AppContext, ArgoCDActions, Fleet, NeedsHuman, RetryLater, RevertRepo
from watcher.revert_facts import ArgoCDView, Facts, GitView, Watched, facts_of, sources_of
from watcher.store.audit import RevertAudit


class IncidentReader:
    def __init__(
        self,
        fleet: Fleet,
        argocd: ArgoCDActions,
        repo: RevertRepo,
        audit: RevertAudit,
        max_candidates: int,
        watched: Watched | None = None,
    ):
        self.fleet = fleet
        self.argocd = argocd
        self.repo = repo
        self.audit = audit
        self.max_candidates = max_candidates
        self.watched = watched

    def facts(self, incident: Incident, now: datetime) -> Facts:
        """Three reads, then one pure function builds the facts. Git is read only while the app still fails."""
        context = self.fleet.app_context(incident.app)
        argocd = self.read_argocd(context.name, context.namespace, incident.kind is EventKind.DEGRADED)
        snap = argocd.snapshot
        failing = snap is not None and still_failing(snap, incident.kind, incident.revision)
        git = self.read_git(incident, context, argocd) if failing and incident.revision else None
        history = self.audit.revert_history(incident.app, now)
        return facts_of(incident, context, argocd, git, history, self.max_candidates, self.watched)

    def read_argocd(self, name: str, namespace: str, degraded: bool = False) -> ArgoCDView:
        """A fresh GET; for a degraded app whose resources' health is only in the resource tree (Argo CD 3.x),
        the tree too: which resource degraded decides whether the sync is to blame."""
        try:
            repo = self.watched.repo_url if self.watched else ""
            app = self.argocd.get_app(name, namespace)
            snap = snapshot_from_app(app, True, repo)
            if degraded and snap.health is Health.DEGRADED and health_is_in_the_tree(app):
                tree = self.argocd.resource_tree(name, namespace)
                snap = replace(snap, degraded_resources=degraded_in_tree(tree))
            return ArgoCDView(snap)
        except RetryLater as exc:
            return ArgoCDView(None, str(exc))

    def read_git(self, incident: Incident, context: AppContext, argocd: ArgoCDView) -> GitView:
        assert incident.revision is not None
        history = argocd.snapshot.history_revisions if argocd.snapshot else ()
        last_good, source = last_good_revision(context.good_revisions, history, incident.revision)
        own, _ = sources_of(context)
        changes: list[ChangedCommit] = []
        truncated = False
        newer: list[ChangedCommit] = []
        limit = self.max_candidates * 4 + 10
        try:
            remote = self.repo.branch_heads()
        except RetryLater as exc:
            return GitView(last_good, source, error=str(exc))
        follows = self.watched.following(context, remote) if self.watched else None
        if follows is not None and follows.kind is not Follow.BRANCH:
            return GitView(last_good, source, remote=remote)  # no branch of ours to blame: the policy alerts
        branch = follows.branch if follows is not None and follows.branch else next(iter(remote.heads))
        head = remote.heads[branch]
        try:
            ancestor = bool(last_good) and self.repo.is_ancestor(str(last_good), incident.revision)
            if last_good and ancestor and own.paths:
                changes, truncated = self.repo.changes(last_good, incident.revision, own.paths, limit)
            if own.paths and head != incident.revision and self.repo.is_ancestor(incident.revision, head):
                newer, _ = self.repo.changes(incident.revision, head, own.paths, limit)
            undone = self.repo.find_reverts([c.commit.sha for c in changes], branch) if changes else {}
        except (RetryLater, NeedsHuman) as exc:
            return GitView(last_good, source, error=str(exc), remote=remote)
        # A newer commit that only reverts a culprit is "undone", not "a fix of unknown effect".
        fixes = tuple(c.commit.sha for c in newer if c.commit.sha not in set(undone.values()))
        return GitView(last_good, source, ancestor, tuple(changes), truncated, undone, head, fixes, remote=remote)
