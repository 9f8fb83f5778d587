"""The ports the service depends on: what an adapter must do, which calls are on the hot path, and errors named
by what the caller does next. Adapters (watcher.adapters) implement these; tests and the simulator fake them.

Every call here leaves the process, so every implementation bounds it with a deadline of its own and raises
one of the errors in `watcher.domain` (RetryLater, NeedsHuman or a subclass) instead of hanging or
returning half an answer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from watcher.core.branches import RemoteBranches
from watcher.core.detect import AppTracker
from watcher.core.narrow import Rendered
from watcher.core.preflight import Render
from watcher.domain import AppContext, ChangedCommit, Commit, Event, RevertReport, RevertResult


# -- Argo CD --------------------------------------------------------------------------------------------
class AppSource(Protocol):
    """Lists and reads Argo CD Applications as the API returns them (swagger's v1alpha1Application)."""

    def iter_apps(self) -> Iterable[dict[str, Any]]:
        """Every Application, trimmed to the fields detection reads. Hot path: once per list interval; at
        10k apps it must parse in about the time of a bare json.loads, and hold one item's objects at a time
        (the list whole is ~40 MB of them). A bad body may raise RetryLater part way through."""
        ...

    def get_app(self, name: str, namespace: str = "", refresh: str | None = None, project: str = "") -> dict[str, Any]:
        """One whole Application; `refresh="normal"` asks Argo CD to re-read git first; with `project`, a missing
        app answers 404 (without it, 403 as for an app the account may not see)."""
        ...

    def resource_tree(self, name: str, namespace: str = "") -> dict[str, Any]:
        """GET .../resource-tree (swagger's v1alpha1ApplicationTree): what the rollout watch reads."""
        ...


class ArgoCDActions(Protocol):
    """What the reverter asks of Argo CD: a fresh look, and ending a sync still retrying the bad revision."""

    def get_app(
        self, name: str, namespace: str = "", refresh: str | None = None, project: str = ""
    ) -> dict[str, Any]: ...
    def terminate_operation(self, name: str, namespace: str = "") -> None: ...
    def resource_tree(self, name: str, namespace: str = "") -> dict[str, Any]:
        """GET .../resource-tree: each live resource's health (Argo CD 3.x keeps it only there)."""
        ...

    def sync_windows(self, name: str, namespace: str = "") -> dict[str, Any]:
        """GET .../applications/{name}/syncwindows: the app's assigned and active windows (no time zones)."""
        ...

    def project_sync_windows(self, project: str) -> dict[str, Any]:
        """GET /api/v1/projects/{name}/syncwindows: the project's active windows, with their time zones."""
        ...


class Renderer(Protocol):
    """Argo CD's own renderer, read-only (the pre-flight): never a refresh, never a sync."""

    def manifests(self, name: str, namespace: str, revision: str, position: int) -> Render:
        """The app rendered at `revision` (the watched repo's source, at 1-based `position`): its
        manifests, Argo CD's render error, or why Argo CD could not be asked. Asked once: never retried."""
        ...

    def cluster_version(self, server: str) -> str | None:
        """The Kubernetes version of the cluster at `server`, as Argo CD reports it; None when unknown."""
        ...


class CommitStatuses(Protocol):
    """Posts a commit status on the forge (any sha: pushed to a branch or in a pull request)."""

    def post(self, sha: str, state: str, context: str, description: str, target_url: str = "") -> None:
        """`state`: success | failure | error | pending. Raises NeedsHuman when the forge refuses."""
        ...


# -- git ------------------------------------------------------------------------------------------------
class WatchedRepo(Protocol):
    """The watcher's clone of the GitOps repo."""

    def sync(self) -> str:
        """Fetch every watched branch; return the first one's head sha (where app-of-apps manifests are read).
        Raises RetryLater when the remote cannot answer."""
        ...

    def commit(self, sha: str) -> Commit | None:
        """The commit, or None when the clone does not have it (yet); a local read, never a fetch."""
        ...

    def fetch_commits(self, shas: Sequence[str]) -> None:
        """Fetch these commits in one call within the git deadline; what the remote will not give stays
        unknown (logged), never an error."""
        ...

    def yaml_files(self, rev: str, directories: Iterable[str]) -> dict[str, str]:
        """path -> text of every YAML file under `directories` at `rev` (app-of-apps mapping)."""
        ...

    def files_named(self, rev: str, directories: Iterable[str], names: Collection[str]) -> dict[str, str]:
        """path -> text of each file called one of `names` directly inside one of `directories` at `rev`
        (Chart.yaml, kustomization.yaml: what the renderer reads besides the app's directory)."""
        ...


class RevertRepo(Protocol):
    """What blame and the revert need of git. `revert` is the only call that writes to the remote."""

    def sync(self) -> str: ...

    def branch_heads(self) -> RemoteBranches:
        """Fetch every watched branch and ask the remote which branch its HEAD is; RetryLater as `sync`."""
        ...

    def is_ancestor(self, ancestor: str, descendant: str) -> bool: ...

    def changes(self, since: str, until: str, paths: Any, limit: int) -> tuple[list[ChangedCommit], bool]:
        """Mainline commits in (since, until] that touched `paths`, newest first; True when cut at `limit`."""
        ...

    def find_reverts(
        self, shas: Any, branch: str | None = None, paths: Any = (), at: str | None = None
    ) -> dict[str, str]:
        """culprit sha -> the commit on `branch` (None: the first watched) after which its change in `paths` is
        gone (by content, not by message); `at`: judged at that revision instead of the branch head."""
        ...

    def confirmed_reverts(self, commit: Commit) -> tuple[str, ...]:
        """The commits `commit`'s trailer says it reverts, when its content does undo them; else ()."""
        ...

    def patch(self, sha: str, paths: Any) -> str:
        """What `sha` changed in `paths` against its first parent, as a patch ("" when it cannot be read)."""
        ...

    def files_under(self, rev: str, directories: Any) -> dict[str, str]:
        """path -> text of every file under `directories` at `rev`."""
        ...

    def find_by_incident(self, uid: str, culprits: Any, since: datetime) -> str | None:
        """The revert of incident `uid` (crash recovery): its trailer, and content that undoes `culprits`."""
        ...

    def revert(
        self,
        culprits: Any,
        message: str,
        author: tuple[str, str],
        push_branch: str | None,
        retries: int = 3,
        onto: str | None = None,
        only: Any = None,
    ) -> RevertResult:
        """Revert `culprits` on the remote head of `onto` (None: the first watched branch) and push to
        `push_branch` (None: dry run, push nothing). `only`: culprit sha -> the only paths whose change it undoes.
        Raises RetryLater when nothing was pushed and git could not be reached, NeedsHuman otherwise."""
        ...


class PreflightRepo(Protocol):
    """What the pre-flight reads of the watcher's clone: the heads as fetched, and what each new commit changed."""

    def local_heads(self) -> dict[str, str]: ...
    def changes(self, since: str, until: str, paths: Any, limit: int) -> tuple[list[ChangedCommit], bool]: ...


class PreflightReverts(Protocol):
    """The reverter, asked to revert a commit Argo CD cannot render before Argo CD syncs it."""

    def revert_before_sync(
        self, app: str, commit: Commit, branch: str, synced: str | None, evidence: Mapping[str, Any], also: Any
    ) -> str:
        """Decide through the reverter's own checks and act; returns the outcome state or the rule that stopped it."""
        ...


class PullRequests(Protocol):
    def open(self, branch: str, base: str, title: str, body: str) -> str:
        """Open a pull (merge) request from `branch` into `base`; return its web URL. Raises NeedsHuman."""
        ...


class HelmRenderer(Protocol):
    """What `helm template` makes of the chart at `chart_dir` (repo paths -> text in `files`), or the engine's
    error; None when no engine is installed or the chart is not in `files`. Local work, no network."""

    def __call__(
        self, files: Mapping[str, str], chart_dir: str, value_files: Sequence[str], release: str, namespace: str
    ) -> Rendered | None: ...


# -- Slack ----------------------------------------------------------------------------------------------
class SlackTransport(Protocol):
    """Delivers one message. `threads`: whether replies and edits are possible (a bot token, not a webhook)."""

    threads: bool

    def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None = None
    ) -> tuple[str, str | None]:
        """Post; return (channel id, message ts or None)."""
        ...

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None: ...


# -- leadership -----------------------------------------------------------------------------------------
class LeaderLock(Protocol):
    """The lock only one replica holds at a time (a PostgreSQL session-level advisory lock). Raises RetryLater
    when the database cannot answer: the caller then counts the lock as not held."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this replica holds it now."""
        ...

    def holds(self) -> bool:
        """A round trip on the lock's own session: True only if that session is alive and still holds it."""
        ...

    def release(self) -> None: ...


class Fence(Protocol):
    """Whether this replica may act. Everything that changes the world outside the store asks first."""

    def leading(self) -> bool:
        """The leader, within its lease, as of the last confirmation: no I/O (asked on every observation)."""
        ...

    def confirm(self) -> bool:
        """The same after a fresh round trip on the lock's session: asked right before a push, a recorded
        decision or a Slack message, so a leader cut off from the database stops before it acts."""
        ...


# -- news between the wings -----------------------------------------------------------------------------
class Listener(Protocol):
    """Hears what the wings did: every recorded event (observe) and every revert step (revert). The daemon wires
    the listeners (the reverter, Slack, and whatever the demo, the bench or a test passes in); a class that
    hears only one kind subclasses this and keeps the other's default, which ignores it. Called on the wing's
    own thread: enqueue, never block."""

    def on_event(self, e: Event) -> None:
        return None

    def on_report(self, r: RevertReport) -> None:
        return None


# -- the watcher, as the reverter and the HTTP views see it ----------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """What the HTTP views show, copied at once: every app's tracker, open incidents and paths, poll times."""

    trackers: dict[str, AppTracker]
    open_incidents: Mapping[tuple[str, str], int]  # (app, kind) -> open incidents
    paths: Mapping[str, tuple[str, ...]]
    last_success: Mapping[str, float]  # "argocd" | "git" -> unix time of the last successful poll


@dataclass(frozen=True, slots=True)
class FleetHealth:
    """What /readyz and /healthz read: a few numbers, not a copy of the fleet (they are probed every few seconds)."""

    last_success: Mapping[str, float]  # "argocd" | "git" -> unix time of the last successful poll
    failing: Mapping[str, str]  # "store" -> why its last write failed
    in_flight: Mapping[str, float]  # poll -> seconds it has been running


class Fleet(Protocol):
    """What other parts ask the watcher, instead of reaching into its attributes."""

    def app_context(self, key: str) -> AppContext: ...
    def environment(self, key: str) -> str: ...
    def status(self) -> FleetStatus: ...
    def health(self) -> FleetHealth: ...
