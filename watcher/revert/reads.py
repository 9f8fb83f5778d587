"""The reverter's three reads for one incident, each once: Argo CD (a fresh GET), git (the blame range), the
store (the app's revert history). What they return is plain data for `revert_facts.facts_of`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from watcher.core.blame import AppSources, last_good_revision, touches
from watcher.core.branches import Follow
from watcher.core.detect import is_commit
from watcher.core.facts import (
    ArgoCDView,
    Facts,
    GitView,
    Watched,
    facts_of,
    failure_of,
    manifest_files,
    sources_of,
)
from watcher.core.narrow import Candidate, Rendered
from watcher.core.policy import still_failing
from watcher.core.preflight import source_position
from watcher.core.rollout import RolloutRules, not_from_this_deploy
from watcher.core.snapshots import degraded_in_tree, health_is_in_the_tree, snapshot_from_app
from watcher.core.sync_permit import synced_by_appset
from watcher.domain import (
    AppContext,
    AppSnapshot,
    ChangedCommit,
    EventKind,
    Health,
    Incident,
    NeedsHuman,
    RetryLater,
    SyncStatus,
)
from watcher.logs import get_logger
from watcher.ports import ArgoCDActions, Fleet, HelmRenderer, Renderer, RevertRepo
from watcher.store.audit import RevertAudit

# Runtime failures whose pods are worth a look: are the failing ones the deploy's? (a tree read per decision)
TREE_KINDS = frozenset({EventKind.DEGRADED, EventKind.STUCK_PROGRESSING})
MAX_KEPT_APPS = 20  # a culprit that changed more apps than this is reverted whole: their states are not looked up


class IncidentReader:
    def __init__(
        self,
        fleet: Fleet,
        argocd: ArgoCDActions,
        repo: RevertRepo,
        audit: RevertAudit,
        max_candidates: int,
        watched: Watched | None = None,
        narrow: bool = True,
        split: bool = True,
        renderer: HelmRenderer | None = None,
    ):
        self.fleet = fleet
        self.argocd = argocd
        self.repo = repo
        self.audit = audit
        self.max_candidates = max_candidates
        self.watched = watched
        self.narrow = narrow  # read each candidate's diff and render when several commits changed the app
        self.split = split  # revert only the culprit's changes to the failing app
        self.renderer = renderer  # None: no Helm engine, narrowing compares diffs only
        # Argo CD's own renderer, asked first when narrowing (it renders every app shape: Kustomize, OCI and Helm
        # repository charts, multi-source, plugins); the Helm engine above is the fallback. Set by the daemon.
        self.argocd_renderer: Renderer | None = None

    def facts(self, incident: Incident, now: datetime) -> Facts:
        """Three reads, then one pure function builds the facts. Git is read only while the app still fails."""
        context = self.fleet.app_context(incident.app)
        argocd = self.read_argocd(context.name, context.namespace, incident.kind, incident.revision)
        snap = argocd.snapshot
        failing = snap is not None and still_failing(snap, incident.kind, incident.revision)
        failure = failure_of(incident.kind, snap)
        names = failure is not None and bool(failure.objects)  # then even one commit's diff and render are read
        readable = incident.revision or incident.kind is EventKind.MANIFEST_ERROR  # a render error at no commit
        git = self.read_git(incident, context, argocd, names) if failing and readable else None
        history = self.audit.revert_history(incident.app, now)
        return facts_of(
            incident, context, argocd, git, history, self.max_candidates, self.watched, self.split, self.narrow
        )

    def read_argocd(
        self, name: str, namespace: str, kind: EventKind | None = None, revision: str | None = None
    ) -> ArgoCDView:
        """A fresh GET; for an app still unhealthy after the deploy of `revision`, the resource tree too: which
        resource degraded (Argo CD 3.x keeps its health only there) and whose pods fail decide whether the sync is
        to blame."""
        try:
            repo = self.watched.repo_url if self.watched else ""
            app = self.argocd.get_app(name, namespace)
            snap = snapshot_from_app(app, True, repo)
            old_pods: tuple[str, ...] = ()
            started = snap.operation_started_at
            if kind in TREE_KINDS and kind is not None and still_failing(snap, kind, revision) and started:
                tree = self.argocd.resource_tree(name, namespace)
                if kind is EventKind.DEGRADED and health_is_in_the_tree(app):
                    snap = replace(snap, degraded_resources=degraded_in_tree(tree))
                old_pods = not_from_this_deploy(tree, started, RolloutRules().restarts)
            return ArgoCDView(snap, progressive=synced_by_appset(app), old_pods=old_pods)
        except RetryLater as exc:
            return ArgoCDView(None, str(exc))

    def snapshot_of(self, key: str) -> AppSnapshot | None:
        """A fresh GET of the app by its key (None: Argo CD did not answer): the verifier's look at what a
        list cannot show."""
        context = self.fleet.app_context(key)
        return self.read_argocd(context.name, context.namespace).snapshot

    def read_git(self, incident: Incident, context: AppContext, argocd: ArgoCDView, names: bool = False) -> GitView:
        """The range (last good, failing] of the branch the app follows. The failing end is the incident's
        commit; for a render error Argo CD resolved to no commit (sync.revision "main" or empty, controller/
        state.go:696-708) it is the branch head now: every commit since the last good one that touched the app
        is a candidate, as any of them may be what does not render."""
        history = argocd.snapshot.history_revisions if argocd.snapshot else ()
        last_good, source = last_good_revision(context.good_revisions, history, incident.revision or "")
        own, _ = sources_of(context)
        unexercised: list[ChangedCommit] = []
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
        failing = incident.revision or ""
        if incident.kind is EventKind.MANIFEST_ERROR and not is_commit(failing):
            failing = head
        last_good, source = last_good_revision(context.good_revisions, history, failing)
        try:
            ancestor = bool(last_good) and self.repo.is_ancestor(str(last_good), failing)
            if last_good and ancestor and own.paths:
                changes, truncated = self.repo.changes(last_good, failing, own.paths, limit)
                unexercised = self.unexercised(context, own, last_good, history, failing, branch)
                changes = [*changes, *unexercised]
            if own.paths and head != failing and self.repo.is_ancestor(failing, head):
                newer, _ = self.repo.changes(failing, head, own.paths, limit)
            changes = [self._confirmed(c) for c in changes]
            undone = self.repo.find_reverts([c.commit.sha for c in changes], branch, own.paths) if changes else {}
            candidates = self.candidates(context, own, changes, names) if not truncated else ()
            healthy = self.healthy_others(context, failing, changes) if self.split else frozenset()
        except (RetryLater, NeedsHuman) as exc:
            return GitView(last_good, source, error=str(exc), remote=remote, failing=failing)
        # A newer commit that only reverts a culprit is "undone", not "a fix of unknown effect".
        fixes = tuple(c.commit.sha for c in newer if c.commit.sha not in set(undone.values()))
        view = GitView(last_good, source, ancestor, tuple(changes), truncated, undone, head, fixes, remote=remote)
        spec_only = tuple(c.commit.sha for c in unexercised)
        return replace(view, candidates=candidates, healthy=healthy, unexercised=spec_only, failing=failing)

    def unexercised(
        self,
        context: AppContext,
        own: AppSources,
        last_good: str,
        history: Sequence[str],
        failing: str,
        branch: str | None = None,
    ) -> list[ChangedCommit]:
        """Commits between the last revision Argo CD deployed (status.history) and the watcher's last good one
        that changed the Application itself: Argo CD runs no sync for a spec change that leaves the rendered
        manifests alone (controller/appcontroller.go autoSync compares the rendered state), so "Synced at that
        commit" proved nothing of a sync option it added; the next sync is the first to use it."""
        deployed = next((r for r in reversed(history) if r and r != failing), None)
        manifests = manifest_files(context, own)
        if not deployed or deployed == last_good or not manifests or not self.repo.is_ancestor(deployed, last_good):
            return []
        found, _ = self.repo.changes(deployed, last_good, manifests, self.max_candidates)
        if not found:
            return []
        # A change reverted within the range (a failed bump and its revert, which needed no sync) left nothing.
        # Both by content: a trailer alone does not make a commit a revert (_confirmed). Judged at the range's
        # end, not the head: the same change pushed again after the range is a new commit, blamed on its own.
        found = [self._confirmed(c) for c in found]
        undone = self.repo.find_reverts([c.commit.sha for c in found], branch, manifests, at=last_good)
        gone = set(undone) | set(undone.values())
        return [c for c in found if c.commit.sha not in gone and not c.commit.reverts]

    def _confirmed(self, c: ChangedCommit) -> ChangedCommit:
        """A `Sync-Watcher-Reverts` trailer is a hint anyone can write: a commit counts as a revert (the policy's
        culprit_is_revert) only when its content undoes what it names."""
        if not c.commit.reverts:
            return c
        return replace(c, commit=replace(c.commit, reverts=self.repo.confirmed_reverts(c.commit)))

    def healthy_others(self, context: AppContext, revision: str, changes: Sequence[ChangedCommit]) -> frozenset[str]:
        """The other apps the range changed that are Synced and Healthy at `revision`: their changes are proven
        good, and a split revert may keep them. Any other app's state is unknown here, and its files are undone."""
        _, others = sources_of(context)
        touched = sorted({o for c in changes for o, src in others.items() if any(touches(f, src) for f in c.files)})
        if len(touched) > MAX_KEPT_APPS:
            return frozenset()
        return frozenset(o for o in touched if _healthy_at(self.fleet.app_context(o).last, revision))

    def candidates(
        self, context: AppContext, own: AppSources, changes: Sequence[ChangedCommit], names: bool = False
    ) -> tuple[Candidate, ...]:
        """The commits blame will name, with what narrowing compares: read only when there is something to tell
        apart (several commits, or a merge whose branch holds several), or when the failure names objects (a
        culprit must have touched one of them), and no more than blame would revert."""
        mine = [c for c in changes if any(touches(f, own) for f in c.files)]
        plain = tuple(Candidate(c.commit, c.files) for c in mine)
        wanted = names or len(mine) > 1 or any(c.commit.is_merge for c in mine)
        if not (self.narrow or names) or not wanted or len(mine) > self.max_candidates:
            return plain
        try:
            return self._read_all(context, own, mine)
        except (RetryLater, NeedsHuman) as exc:  # narrowing is optional: blame as before, and say so
            get_logger().warning("narrowing_read_failed", app=context.key, error=str(exc)[:300])
            return plain

    def _read_all(self, context: AppContext, own: AppSources, mine: list[ChangedCommit]) -> tuple[Candidate, ...]:
        repo_url = self.watched.repo_url if self.watched else ""
        render = _renderer(self.repo, context, own, self.renderer, self.argocd_renderer, repo_url)
        out = []
        for c in mine:
            side: tuple[Candidate, ...] = ()
            if c.commit.is_merge:
                first, second = c.commit.parents[:2]
                branch, cut = self.repo.changes(first, second, own.paths, self.max_candidates)
                mine_side = [b for b in branch if any(touches(f, own) for f in b.files)]
                side = () if cut else tuple(self._read(b, own, render) for b in mine_side)
            out.append(replace(self._read(c, own, render), side=side))
        return tuple(out)

    def _read(self, c: ChangedCommit, own: AppSources, render: Callable[[str], Rendered | None]) -> Candidate:
        sha, parents = c.commit.sha, c.commit.parents
        before = render(parents[0]) if parents else None  # a root commit: nothing before it to compare
        return Candidate(c.commit, c.files, self.repo.patch(sha, own.paths), before, render(sha) if parents else None)


def _healthy_at(snap: AppSnapshot | None, revision: str) -> bool:
    if snap is None:
        return False
    return snap.sync_status is SyncStatus.SYNCED and snap.health is Health.HEALTHY and snap.sync_revision == revision


def _renderer(
    repo: RevertRepo,
    context: AppContext,
    own: AppSources,
    engine: HelmRenderer | None,
    argocd: Renderer | None = None,
    repo_url: str = "",
) -> Callable[[str], Rendered | None]:
    """Render the app at a revision: Argo CD's renderer first (each revision asked once per incident read), else
    the Helm engine (None: not a Helm app of the watched repo, or no engine). For the engine Argo CD's release name
    is the app's name; the destination namespace is not kept, so "default" stands in."""
    spec = context.specs.get(context.key, {})
    chart = _helm_source(spec, own)
    position = source_position(spec.get("spec") or {}, repo_url) if argocd is not None and repo_url else 0
    cache: dict[str, Rendered | None] = {}

    def render(rev: str) -> Rendered | None:
        if rev not in cache:
            cache[rev] = _by_argocd(argocd, context, rev, position) if position else None
            if cache[rev] is None and chart is not None and engine is not None:
                files = repo.files_under(rev, own.paths)
                cache[rev] = engine(files, chart[0], chart[1], context.name, "default")
        return cache[rev]

    return render


def _by_argocd(argocd: Renderer | None, context: AppContext, rev: str, position: int) -> Rendered | None:
    """Argo CD's render as narrowing reads it; None when Argo CD could not be asked (the engine is tried)."""
    if argocd is None:
        return None
    found = argocd.manifests(context.name, context.namespace, rev, position)
    if found.unreachable:
        get_logger().info("narrowing_render_by_engine", app=context.key, why=found.unreachable[:200])
        return None
    return Rendered(error=found.error) if found.failed else Rendered(tuple(found.manifests))


def _helm_source(spec: Mapping[str, Any], own: AppSources) -> tuple[str, tuple[str, ...]] | None:
    """The one Helm chart directory of the app in the watched repo and its value files (more: not rendered)."""
    sources = (spec.get("spec") or {}).get("sources") or []
    found = [
        (str(s.get("path", "")).strip("/"), tuple(str(f) for f in (s.get("helm") or {}).get("valueFiles", ())))
        for s in sources
        if isinstance(s, dict) and str(s.get("path", "")).strip("/") in own.helm_dirs
    ]
    return found[0] if len(found) == 1 else None
