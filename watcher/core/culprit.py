"""Pure: a culprit must touch what failed, and says how.

When Argo CD names the objects that failed (`syncResult.resources[]`, or the API server's words), a candidate
commit is a culprit only if it changed one of them (in the rendered output when the app was rendered before and
after the commit, else in the files that define them) or changed the Application's sync options, sync policy or
sources. A failure that only a sync option's code path produces (`kubectl replace` for Replace=true, server-side
apply's typed patch for ServerSideApply=true) is the doing of the commit that added the option, not of the commit
whose sync first ran it. Every culprit comes with the line that says why; no line, no culprit.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watcher.core.failure_class import Failure, ObjectRef
from watcher.core.narrow import Candidate, Rendered
from watcher.domain import Commit

# Failure words that only one sync option's path produces, and where Argo CD takes that path.
OPTION_PATHS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    # gitops-engine/pkg/sync/sync_context.go:1434,1461: Replace=true runs `kubectl replace`
    # (pkg/utils/kube/resource_ops.go:302), whose error starts `error when replacing "<tmp file>": `.
    ("Replace=true", re.compile(r'error when replacing "'), "kubectl replace"),
    # sync_context.go:1322,1477: ServerSideApply=true; structured-merge-diff refuses what client-side apply took.
    (
        "ServerSideApply=true",
        re.compile(r"failed to create typed patch object|duplicate entries for key|field not declared in schema"),
        "server-side apply",
    ),
)
# What in an Application decides how and what Argo CD syncs (swagger v1alpha1ApplicationSpec).
SPEC_KEYS = re.compile(
    r"^\s*-?\s*(?P<key>syncOptions|syncPolicy|automated|selfHeal|prune|allowEmpty|retry|managedNamespaceMetadata|"
    r"source|sources|repoURL|targetRevision|path|chart|helm|valueFiles|values|kustomize|directory|plugin|ref)\s*:"
)
SYNC_OPTION = re.compile(r"\b(?P<option>[A-Z][A-Za-z]+=(?:true|false|foreground|background|orphan|[a-z]+))\b")
FILE_HEADER = re.compile(r"^diff --git a/(?P<a>\S+) b/(?P<b>\S+)")


@dataclass(frozen=True, slots=True)
class SpecChange:
    """What a commit changed in the Application's spec: the keys, and the sync options it added."""

    keys: tuple[str, ...]
    added_options: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.added_options:
            return f"added {', '.join(self.added_options)} to the Application's sync options"
        return f"changed the Application's {', '.join(self.keys)}"


@dataclass(frozen=True, slots=True)
class Touch:
    commit: Commit
    why: str  # "changed Deployment/plate-api-stg in the rendered output", "added Replace=true ..."


@dataclass(frozen=True, slots=True)
class Evidence:
    """The candidates that touched what failed, each with why; `line` is the decision's evidence line, or (with no
    culprit) which evidence was missing."""

    touches: tuple[Touch, ...]
    line: str
    option: str = ""  # the sync option whose path failed ("" when the failure is not one option's)
    failed: str = ""  # the failing objects, as the line names them

    @property
    def commits(self) -> tuple[Commit, ...]:
        return tuple(t.commit for t in self.touches)

    def line_for(self, shas: Iterable[str]) -> str:
        """The line for the culprits narrowing kept of these (all of them: the line as it is)."""
        kept = set(shas)
        if not self.touches or self.option or {t.commit.sha for t in self.touches} <= kept:
            return self.line
        return "; ".join(f"{self.failed}: {t.commit.sha[:7]} {t.why}" for t in self.touches if t.commit.sha in kept)


def option_path(failure: Failure, sync_options: Sequence[str]) -> tuple[str, str] | None:
    """(the option, the path) when the failure's words come from one sync option's code path. A ServerSideApply
    shape counts only when the operation used it (operationState.operation.sync.syncOptions) or says so itself."""
    texts = [v.message for v in failure.verdicts] + [v.raw for v in failure.verdicts]
    for option, pattern, path in OPTION_PATHS:
        if any(pattern.search(t) for t in texts):
            if option == "Replace=true" or option in sync_options or any("server-side" in t for t in texts):
                return option, path
    return None


def evidence(
    failure: Failure,
    candidates: Sequence[Candidate],
    manifests: Sequence[str],
    sync_options: Sequence[str] = (),
    charts: Sequence[str] = (),
) -> Evidence | None:
    """Which of `candidates` (newest first) touched what `failure` names; None when it names no object (the rule
    has nothing to say: blame and narrowing decide as before). `manifests` are the repo files holding the
    Application itself (its spec: sync options, policy, sources); `charts` the app's Helm chart directories."""
    objects = failure.objects
    if not objects:
        return None
    failed = ", ".join(str(o) for o in objects[:3])
    option = option_path(failure, sync_options)
    specs = {c.commit.sha: spec_change(c.diff, manifests) for c in candidates}
    if option is not None:
        added = [c for c in candidates if option[0] in (specs[c.commit.sha] or SpecChange(())).added_options]
        added += [c for c in candidates if c not in added and _adds_option(c.diff, option[0])]
        if added:
            by = ", ".join(f"{c.commit.sha[:7]} ({c.commit.subject[:50]})" for c in added)
            line = f"{failed} refused by {option[1]} with {option[0]}; {option[0]} was added by {by}"
            return Evidence(tuple(Touch(c.commit, f"added {option[0]}") for c in added), line, option[0], failed)
    touches: list[Touch] = []
    for c in candidates:
        why = _changed(c, objects, charts, manifests) or _spec_why(specs[c.commit.sha])
        if why:
            touches.append(Touch(c.commit, why))
    touches = _mentioning(_kind_introduced(touches, candidates, failure), candidates, refused_words(failure))
    if not touches:
        shas = ", ".join(c.commit.sha[:7] for c in candidates) or "none"
        unread = [c.commit.sha[:7] for c in candidates if not c.diff and c.after is None]
        missing = f"; no diff or render could be read for {', '.join(unread)}" if unread else ""
        when = f" with {option[0]} (no candidate added it)" if option else ""
        line = (
            f"{failed} failed{when}, but none of the candidates ({shas}) changed it in the rendered output or in the "
            f"files that define it, nor the Application's sync options, policy or sources{missing}"
        )
        return Evidence((), line, option[0] if option else "", failed)
    line = "; ".join(f"{failed}: {t.commit.sha[:7]} {t.why}" for t in touches[:3])
    return Evidence(tuple(touches), line, option[0] if option else "", failed)


# The field the API server refused (`<path>: Invalid value: ...`, `unknown field "<path>"`), and the kind it does
# not know (`no matches for kind "<Kind>"`): apimachinery field/errors.go:105-158, runtime/error.go:140, meta/errors.go.
REFUSED_FIELD = re.compile(
    r"(?P<path>[A-Za-z][\w.\[\]-]*): (?:Invalid value|Forbidden|Required value|Unsupported value|Duplicate value|"
    r'Too long|Too many)|unknown field "(?P<unknown>[^"]+)"'
)
MISSING_KIND = re.compile(r'no matches for kind "(?P<kind>\w+)"|could not find [^/\s]*/(?P<crd>\w+) for requested')
PATH_TOKEN = re.compile(r"[A-Za-z][\w-]*")
COMMON_TOKENS = frozenset({"spec", "metadata", "template", "containers", "status", "data"})


def refused_words(failure: Failure) -> tuple[str, ...]:
    """What the failure says was refused, as a commit's diff would spell it: the refused field's last name
    (`spec.selector` -> `selector`, `unknown field "spec.minAvaliable"` -> `minAvaliable`), or the missing kind."""
    words: list[str] = []
    for v in failure.verdicts:
        for m in REFUSED_FIELD.finditer(v.message):
            tokens = [t for t in PATH_TOKEN.findall(m["path"] or m["unknown"] or "") if t not in COMMON_TOKENS]
            words += tokens[-1:]
        words += [m["kind"] or m["crd"] for m in MISSING_KIND.finditer(v.message)]
    return tuple(dict.fromkeys(w for w in words if w))


MISSING_KIND_ROWS = frozenset({"C9", "C10", "C11"})


def _kind_introduced(touches: list[Touch], candidates: Sequence[Candidate], failure: Failure) -> list[Touch]:
    """A kind the cluster does not serve is the commit's doing only if the commit brought the kind in: seen without
    a render, its changed lines must name it (a chart value change that happens to feed the object does not)."""
    kinds = [v.object.kind for v in failure.verdicts if v.row in MISSING_KIND_ROWS and v.object is not None]
    if not kinds:
        return touches
    unrendered = {c.commit.sha: c.diff for c in candidates if c.before is None or c.after is None}
    kept = []
    for t in touches:
        diff = unrendered.get(t.commit.sha)
        changed = [line for _, lines in _files(diff or "") for line in lines if line[:1] in "+-"]
        if diff is None or any(k in line for k in kinds for line in changed):
            kept.append(t)
    return kept


def _mentioning(touches: list[Touch], candidates: Sequence[Candidate], words: Sequence[str]) -> list[Touch]:
    """Of several commits that touched the object, seen without a render, those whose changed lines name the
    refused field or kind (none does: all of them stay; narrowing may still tell them apart)."""
    unrendered = {c.commit.sha for c in candidates if c.before is None or c.after is None}
    if len(touches) < 2 or not words or not all(t.commit.sha in unrendered for t in touches):
        return touches
    diffs = {c.commit.sha: c.diff for c in candidates}
    said = [re.compile(rf"(?<![A-Za-z0-9]){re.escape(w)}") for w in words]
    named = []
    for t in touches:
        changed = [line[1:] for _, lines in _files(diffs[t.commit.sha]) for line in lines if line[:1] in "+-"]
        hit = next((w for w, p in zip(words, said, strict=True) if any(p.search(line) for line in changed)), None)
        if hit is not None:
            named.append(Touch(t.commit, f"{t.why}; its change names {hit}, which was refused"))
    return named if 0 < len(named) < len(touches) else touches


def spec_change(diff: str, manifests: Sequence[str]) -> SpecChange | None:
    """What the diff changed in the Application manifests among its files (None: nothing of their spec)."""
    keys: list[str] = []
    added: list[str] = []
    removed: list[str] = []
    for path, lines in _files(diff):
        if path not in manifests:
            continue
        for line in lines:
            if line[:1] not in "+-":
                continue
            m = SPEC_KEYS.match(line[1:])
            if m:
                keys.append(m["key"])
            options = [o["option"] for o in SYNC_OPTION.finditer(line[1:])]
            if options:
                keys.append("syncOptions")
            (added if line[0] == "+" else removed).extend(options)
    if not keys:
        return None
    new = tuple(dict.fromkeys(o for o in added if o not in removed))
    return SpecChange(tuple(dict.fromkeys(keys)), new)


def _spec_why(change: SpecChange | None) -> str:
    return str(change) if change is not None else ""


def _adds_option(diff: str, option: str) -> bool:
    """The option added anywhere the app reads it: a resource's `argocd.argoproj.io/sync-options` annotation
    counts as much as the Application's syncOptions (sync_context.go:1434 reads both)."""
    added = [line[1:] for _, lines in _files(diff) for line in lines if line.startswith("+")]
    removed = [line[1:] for _, lines in _files(diff) for line in lines if line.startswith("-")]
    return any(option in a for a in added) and not any(option in r for r in removed)


def _changed(c: Candidate, objects: Sequence[ObjectRef], charts: Sequence[str], manifests: Sequence[str]) -> str:
    """How `c` changed one of `objects`: in the rendered output when it was rendered before and after (what the
    render says is final), else in a file that defines it ("" when neither). The app's own Application manifest
    defines no object of the app: what it changes is judged as a spec change."""
    rendered = c.before is not None and c.after is not None and not (c.before.error or c.after.error)
    for obj in objects:
        if rendered:
            before, after = _find(c.before, obj), _find(c.after, obj)
            if before != after:
                how = "added" if before is None else "removed" if after is None else "changed"
                return f"{how} {obj.kind}/{obj.name} in the rendered output"
            continue
        for path, lines in _files(c.diff):
            if path in manifests:
                continue
            if _defines(path, lines, obj):
                return f"changed {path}, which defines {obj.kind}/{obj.name}"
            if _renders(path, lines, obj, charts):
                return f"changed {path}, from which the chart renders {obj.kind}/{obj.name} (not rendered here)"
    return ""


def _renders(path: str, lines: Sequence[str], obj: ObjectRef, charts: Sequence[str]) -> bool:
    """Without a render: a value file of the app's chart feeds every object of the release, and a template that
    holds `kind: <Kind>` (or is named after the kind, `templates/deployment.yaml`) may produce it."""
    chart = next((d for d in charts if path.startswith(d + "/")), None)
    if chart is None:
        return False
    rest = path[len(chart) + 1 :]
    if "/" not in rest and rest.endswith((".yaml", ".yml")) and rest.startswith("values"):
        return True
    if not rest.startswith("templates/"):
        return False
    stem = posixpath.splitext(posixpath.basename(rest))[0].lower()
    if stem.startswith("_"):  # a helper (`_helpers.tpl`): included by every template, so by the object's too
        return True
    kind = re.compile(rf"^[+\- ]\s*kind:\s*{re.escape(obj.kind)}\s*$", re.IGNORECASE)
    return obj.same(stem, obj.name) or any(kind.match(line) for line in lines)


def _find(r: Rendered | None, obj: ObjectRef) -> Mapping[str, Any] | None:
    for o in r.objects if r else ():
        meta = o.get("metadata") or {}
        if obj.same(str(o.get("kind") or ""), str(meta.get("name") or ""), str(meta.get("namespace") or "")):
            return o
    return None


def _defines(path: str, lines: Sequence[str], obj: ObjectRef) -> bool:
    """A file defines the object when it is named after it (`apps/plate-cache-prod.yaml`, the app-of-apps
    convention) or its changed hunk holds `name: <name>`. A values file or template that renders it without
    naming it is seen only in a render."""
    stem = posixpath.splitext(posixpath.basename(path))[0]
    if stem == obj.name:
        return True
    name = re.compile(rf"^[+\- ]\s*name:\s*['\"]?{re.escape(obj.name)}['\"]?\s*$")
    return any(name.match(line) for line in lines)


def _files(diff: str) -> Iterator[tuple[str, list[str]]]:
    """(path, its diff lines) per file of a `git diff` patch."""
    path, lines = "", list[str]()
    for line in diff.splitlines():
        m = FILE_HEADER.match(line)
        if m:
            if path:
                yield path, lines
            path, lines = m["b"], []
        elif path and not line.startswith(("+++", "---", "@@", "index ", "new file", "deleted file")):
            lines.append(line)
    if path:
        yield path, lines
