"""Pure blame: which commits between an app's last good revision and the failing one changed what it deploys."""

from __future__ import annotations

import enum
import fnmatch
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from watcher.domain import ChangedCommit, Commit


class BlameOutcome(enum.StrEnum):
    CULPRITS = "culprits"  # exactly these commits changed the app
    NO_TOUCH = "no_commit_touches_app"  # the failure came from elsewhere
    TOO_MANY = "too_many_candidates"
    UNKNOWN = "unknown"  # no known good revision, no paths, or history that does not line up


@dataclass(frozen=True, slots=True)
class AppSources:
    """The repo paths that define one app (see appmap.app_paths) and which of them are Helm chart directories."""

    paths: tuple[str, ...]
    helm_dirs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Blame:
    outcome: BlameOutcome
    reason: str
    failing: str | None
    last_good: str | None
    culprits: tuple[Commit, ...] = ()  # newest first
    also_touched: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # culprit sha -> other apps
    named: str = ""  # how narrowing named the culprit among several, or why it could not (see narrow.py)
    only: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # culprit sha -> the only files to revert
    kept: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # culprit sha -> its files left alone

    def evidence(self) -> dict[str, object]:
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "failing_revision": self.failing,
            "last_good_revision": self.last_good,
            "culprits": [
                {
                    "sha": c.sha,
                    "author": c.author,
                    "subject": c.subject,
                    "committed_at": c.committed_at.isoformat(),
                    "merge": c.is_merge,
                    "also_touched": list(self.also_touched.get(c.sha, ())),
                    "only_files": list(self.only.get(c.sha, ())),
                    "kept_files": list(self.kept.get(c.sha, ())),
                }
                for c in self.culprits
            ],
            "named": self.named,
        }


def last_good_revision(own: Sequence[str], argocd_history: Sequence[str], failing: str) -> tuple[str | None, str]:
    """The last revision the app was Synced and Healthy at (not the failing one), and where that came from.

    The watcher's own record (oldest first) comes first; Argo CD's status.history is the fallback.
    """
    for revision in reversed(own):
        if revision and revision != failing:
            return revision, "watcher"
    for revision in reversed(argocd_history):
        if revision and revision != failing:
            return revision, "argocd_history"
    return None, ""


def touches(path: str, sources: AppSources) -> bool:
    """Whether changing `path` can change what the app deploys.

    A chart directory holds every environment's values file; `values-prod.yaml` cannot break the stg app, so
    a values file in a chart directory counts only when the app names it (or it is the chart's `values.yaml`).
    """
    if path in sources.paths:
        return True
    for base in sources.paths:
        if not path.startswith(base + "/"):
            continue
        rest = path[len(base) + 1 :]
        if base in sources.helm_dirs and "/" not in rest and _other_values_file(rest):
            continue
        return True
    return False


def _other_values_file(name: str) -> bool:
    return name != "values.yaml" and fnmatch.fnmatch(name, "values*.y*ml")


def blame(
    app: str,
    failing: str,
    last_good: str | None,
    last_good_is_ancestor: bool,
    changes: Sequence[ChangedCommit],
    sources: AppSources,
    other_apps: Mapping[str, AppSources],
    max_candidates: int,
    truncated: bool = False,
) -> Blame:
    """Culprits among `changes` (mainline commits in (last_good, failing], newest first, as git listed them)."""
    if not sources.paths:
        return Blame(BlameOutcome.UNKNOWN, f"no repo paths known for {app}", failing, last_good)
    if last_good is None:
        return Blame(BlameOutcome.UNKNOWN, "no revision known where the app was synced and healthy", failing, None)
    if last_good == failing:
        return Blame(BlameOutcome.UNKNOWN, "the failing revision is the last good one", failing, last_good)
    if not last_good_is_ancestor:
        return Blame(
            BlameOutcome.UNKNOWN,
            f"last good revision {last_good[:12]} is not an ancestor of {failing[:12]} (history rewritten?)",
            failing,
            last_good,
        )
    culprits = tuple(c.commit for c in changes if any(touches(f, sources) for f in c.files))
    if len(culprits) > max_candidates or (truncated and len(culprits) >= max_candidates):
        return Blame(
            BlameOutcome.TOO_MANY,
            f"{len(culprits)}{'+' if truncated else ''} commits changed {app} since {last_good[:12]} "
            f"(limit {max_candidates})",
            failing,
            last_good,
        )
    if not culprits:
        return Blame(
            BlameOutcome.NO_TOUCH,
            f"none of the commits in {last_good[:12]}..{failing[:12]} changed {app}'s paths",
            failing,
            last_good,
        )
    files = {c.commit.sha: c.files for c in changes}
    also = {
        c.sha: tuple(
            sorted(o for o, src in other_apps.items() if o != app and any(touches(f, src) for f in files[c.sha]))
        )
        for c in culprits
    }
    shown = ", ".join(f"{c.sha[:12]} ({c.subject[:60]})" for c in culprits)
    return Blame(
        BlameOutcome.CULPRITS,
        f"{len(culprits)} commit(s) since {last_good[:12]} changed {app}: {shown}",
        failing,
        last_good,
        culprits,
        {k: v for k, v in also.items() if v},
    )


def helm_dirs(app: Mapping[str, object], paths: Sequence[str]) -> tuple[str, ...]:
    """Source directories of `app` rendered with Helm value files (from appmap.mapping_fields output)."""
    spec = app.get("spec")
    sources = spec.get("sources", []) if isinstance(spec, dict) else []
    dirs = []
    for src in sources:
        if isinstance(src, dict) and src.get("helm") and src.get("path"):
            d = posixpath.normpath(str(src["path"]).strip("/"))
            if d in paths:
                dirs.append(d)
    return tuple(dirs)
