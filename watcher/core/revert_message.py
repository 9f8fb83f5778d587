"""The text of a revert commit (and pull request): what failed, how, what is undone, with parseable trailers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from watcher.core.plain_text import visible
from watcher.domain import APP_TRAILER, INCIDENT_TRAILER, REVERTS_TRAILER, Commit, Incident

MESSAGE_CHARS = 300


def _one_line(text: object, limit: int = MESSAGE_CHARS) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def revert_title(app: str, culprits: Sequence[Commit]) -> str:
    if len(culprits) == 1:
        return visible(f'Revert "{_one_line(culprits[0].subject, 120)}"')
    return f"Revert {len(culprits)} commits that broke {app}"


def revert_message(
    app: str,
    incident: Incident,
    culprits: Sequence[Commit],
    also_touched: Mapping[str, Sequence[str]],
    kept: Mapping[str, Sequence[str]] | None = None,
) -> str:
    ev = incident.evidence
    how = ", ".join(
        f"{label} {ev.get(key)}" for label, key in (("phase", "phase"), ("health", "health")) if ev.get(key)
    )
    conditions = ev.get("conditions")
    found = [c.get("message") for c in conditions if isinstance(c, dict)] if isinstance(conditions, list) else []
    argocd = ev.get("message") or ev.get("health_message") or next(iter(found), "")
    lines = [
        revert_title(app, culprits),
        "",
        f"sync-watcher reverted this automatically: {app} failed after the change was deployed.",
        "",
        f"App:       {app}",
        f"Failure:   {incident.kind.value}" + (f" ({how})" if how else ""),
        f"Revision:  {incident.revision or '-'}",
    ]
    if argocd:
        lines.append(f"Argo CD:   {_one_line(argocd)}")
    lines.append(f"Incident:  #{incident.id}")
    lines.append("")
    for c in culprits:
        lines.append(f"This reverts commit {c.sha} ({_one_line(c.subject, 100)}, by {_one_line(c.author, 60)}).")
        left = (kept or {}).get(c.sha)
        if left:
            lines.append(f"Only its changes to {app} are undone; kept as they are: {', '.join(left)}.")
        others = also_touched.get(c.sha)
        if others:
            lines.append(f"That commit also changed {', '.join(others)}; they get the revert too.")
    lines.append("")
    lines += [f"{REVERTS_TRAILER}: {c.sha}" for c in culprits]
    lines.append(f"{APP_TRAILER}: {app}")
    if incident.uid:  # the store's number restarts at 1 and is shared by every watcher: it names nothing in git
        lines.append(f"{INCIDENT_TRAILER}: {incident.uid}")
    return visible("\n".join(lines) + "\n")  # a subject's bidi controls would reorder what reviewers see
