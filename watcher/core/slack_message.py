"""A notice as a Slack message: untrusted text escaped, clipped to Block Kit's limits, built with slack_sdk's models."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from watcher.core.appmap import normalize_repo_url
from watcher.core.notices import CommitRef, Notice
from watcher.domain import EventKind, RevertStep

HEADER_MAX = 150  # Block Kit: header text
SECTION_MAX = 3000  # Block Kit: section text
MAX_BLOCKS = 50  # Block Kit: blocks per message (slack_sdk does not check this one)
ARGOCD_MESSAGE_MAX = 1200
SUBJECT_MAX = 200
CULPRITS_SHOWN = 5
FALLBACK_MAX = 400

ICONS = {
    EventKind.SYNC_FAILING: ":large_orange_circle:",
    EventKind.SYNC_FAILED: ":red_circle:",
    EventKind.MANIFEST_ERROR: ":red_circle:",
    EventKind.DEGRADED: ":red_circle:",
    EventKind.ROLLOUT_FAILING: ":red_circle:",
    EventKind.STUCK_PROGRESSING: ":large_orange_circle:",
    EventKind.DEGRADED_UNATTRIBUTED: ":large_orange_circle:",
    EventKind.RECOVERED: ":large_green_circle:",
    EventKind.APP_REMOVED: ":wastebasket:",
    RevertStep.REVERT_PUSHED: ":leftwards_arrow_with_hook:",
    RevertStep.REVERT_PROPOSED: ":leftwards_arrow_with_hook:",
    RevertStep.REVERT_DRY_RUN: ":test_tube:",
    RevertStep.REVERT_FAILED: ":x:",
    RevertStep.ALERT_ONLY: ":raised_hand:",
    RevertStep.SUSPENDED: ":no_entry:",
    RevertStep.CIRCUIT_OPEN: ":no_entry:",
}


BROADCASTS = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)


def escape(text: str) -> str:
    """Slack's three control characters escaped (no <!channel>, no disguised link) and @here-style words broken."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return BROADCASTS.sub("@\u2060\\1", text)  # a word joiner: reads the same, pings nobody


def clip(text: str, limit: int) -> str:
    """`text` escaped, cut so that the escaped form fits `limit` (never inside an entity)."""
    n = min(len(text), limit)
    while True:
        cut = text[:n]
        out = escape(cut) + ("…" if n < len(text) else "")
        if len(out) <= limit:
            return out
        n -= max(1, (len(out) - limit) // 4)


@dataclass(frozen=True, slots=True)
class Links:
    """Where a reader can click: Argo CD's UI and the repo's web UI when the remote is a host we know."""

    argocd_ui: str
    commit_base: str | None  # commit URL = commit_base + sha
    pages: str = ""  # where people open the watcher's pages (WATCHER_HTTP__EXTERNAL_URL), "" when not exposed

    def app(self, key: str) -> str | None:
        if not self.argocd_ui:
            return None
        namespace, _, name = key.rpartition("/")
        return f"{self.argocd_ui}/applications/{namespace or 'argocd'}/{name}"

    def commit(self, sha: str) -> str | None:
        return f"{self.commit_base}{sha}" if self.commit_base and sha else None

    def incident(self, incident_id: int | None) -> str | None:
        return f"{self.pages}/ui/incidents/{incident_id}" if self.pages and incident_id else None


KNOWN_HOSTS: dict[str, Callable[[str], str]] = {
    "github.com": lambda path: f"https://github.com/{path}/commit/",
    "gitlab.com": lambda path: f"https://gitlab.com/{path}/-/commit/",
    "bitbucket.org": lambda path: f"https://bitbucket.org/{path}/commits/",
}


def links_for(argocd_ui: str, git_url: str, web_url: str = "", forge_kind: str = "", pages: str = "") -> Links:
    host, _, path = normalize_repo_url(git_url).partition("/")
    if web_url:
        base = web_url.rstrip("/") + ("/-/commit/" if forge_kind == "gitlab" or "gitlab" in host else "/commit/")
    elif host in KNOWN_HOSTS and path:
        base = KNOWN_HOSTS[host](path)
    else:
        base = None
    return Links(argocd_ui.rstrip("/"), base, pages.rstrip("/"))


def _link(url: str | None, label: str) -> str:
    # URLs are ours (settings + hex shas); "|" and ">" would end the link early, so they cannot appear.
    return f"<{url}|{label}>" if url and not any(c in url for c in "|<> ") else label


def _commit_line(c: CommitRef, links: Links) -> str:
    who = clip(c.author, 100)
    subject = clip(c.subject, SUBJECT_MAX)
    return f"{_link(links.commit(c.sha), f'`{c.sha[:10]}`')} by {who}: {subject}"


def header_text(n: Notice) -> str:
    env = n.environment
    text = f"{ICONS.get(n.kind, '')} {n.headline}: {n.app}" + (f" ({env})" if env else "")
    return text if len(text) <= HEADER_MAX else text[: HEADER_MAX - 1] + "…"


def fallback_text(n: Notice) -> str:
    """The notification line (push, desktop): no blocks there, so it carries the essentials."""
    return clip(f"{n.headline}: {n.app} - {n.detail}", FALLBACK_MAX)


def blocks_for(n: Notice, links: Links, resolved: str | None = None) -> list[dict[str, Any]]:
    """The message's blocks; `resolved` marks an incident's thread parent once the app is healthy again."""
    blocks: list[Any] = [HeaderBlock(text=PlainTextObject(text=header_text(n), emoji=True))]
    if resolved:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(f"✅ Resolved: {resolved}", SECTION_MAX))))
    facts = [f"*What happened:* {clip(n.detail, 1500)}"]
    if n.revision:
        facts.append(f"*Revision:* {_link(links.commit(n.revision), f'`{n.revision[:10]}`')}")
    if n.rule:
        facts.append(f"*Rule:* `{clip(n.rule, 64)}`")
    if n.evidence:  # commit subjects and Argo CD's words are in it: not ours (clip escapes them)
        facts.append(f"*Evidence:* {clip(n.evidence, 600)}")
    blocks.append(SectionBlock(text=MarkdownTextObject(text=clip_joined(facts))))
    if n.culprits:
        shown = [f"• {_commit_line(c, links)}" for c in n.culprits[:CULPRITS_SHOWN]]
        more = len(n.culprits) - CULPRITS_SHOWN
        if more > 0:
            shown.append(f"… and {more} more")
        title = "*Culprit:*" if len(n.culprits) == 1 else f"*Culprits ({len(n.culprits)}):*"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip_joined([title, *shown]))))
    elif n.revision_commit is not None and not n.resolves:
        line = _commit_line(n.revision_commit, links)
        note = "_Argo CD's revision is the head of the push; the blamed commit follows in the decision._"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip_joined([f"*Commit deployed:* {line}", note]))))
    if n.argocd_message.strip():
        title = "*Error:*" if n.kind is RevertStep.REVERT_FAILED else "*Argo CD says:*"
        body = clip(n.argocd_message.strip().replace("```", "'''"), ARGOCD_MESSAGE_MAX)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"{title}\n```{body}```")))
    refs = [_link(links.incident(n.incident_id), "The whole story")] if links.incident(n.incident_id) else []
    refs += [_link(links.app(n.app), "Open in Argo CD")] if links.app(n.app) else []
    if n.revert_sha:
        refs.append(f"Revert {_link(links.commit(n.revert_sha), f'`{n.revert_sha[:10]}`')}")
    if n.url:
        refs.append(_link(n.url, "Pull request"))
    refs.append(
        f"sync-watcher · {n.severity.name.lower()}" + (f" · incident #{n.incident_id}" if n.incident_id else "")
    )
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip_joined([" · ".join(refs)]))]))
    out = [b.to_dict() for b in blocks]  # to_dict() validates every length Block Kit limits
    return out[:MAX_BLOCKS]


def clip_joined(lines: list[str]) -> str:
    """Lines already escaped, joined; cut at a line boundary when together they pass a section's limit."""
    text = "\n".join(lines)
    while len(text) > SECTION_MAX and len(lines) > 1:
        lines = lines[:-1]
        text = "\n".join(lines) + "\n…"
    return text[:SECTION_MAX]
