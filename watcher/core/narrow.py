"""Pure narrowing: among the commits blame found, the one that introduced what fails, and how it was named.

What fails comes from the incident's evidence (`clues_of`): a failing image, the object and field the API server
refused, the file a render error names. Each candidate commit carries its diff to the app's paths and, for a Helm
app, the app rendered at its parent and at itself. Rendered objects are compared first (the newest commit whose
render first holds the failing value is the one in effect at the failing revision); the diff's text is the
fallback, and there a tie names nobody. When nothing names one commit, the caller keeps every candidate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from watcher.core.blame import AppSources, Blame, BlameOutcome, touches
from watcher.domain import Commit

# `Deployment.apps "plate-api" is invalid: spec.replicas: Invalid value: -1: must be ...` (the API server's words,
# as Argo CD passes them on in the operation's message); several invalid fields come as `is invalid: [a, b]`.
INVALID_OBJECT = re.compile(r'(?P<kind>[A-Za-z]+)(?:\.[\w.-]+)? "(?P<name>[^"]+)" is invalid: ')
INVALID_FIELD = re.compile(r'(?P<path>[A-Za-z][\w.\[\]-]*): Invalid value: (?P<value>"[^"]*"|[^:\s,\]]+)')
IMAGE_IN_MESSAGE = re.compile(r'(?:pulling|pull|image) "?(?P<image>[\w.-]+(?::\d+)?(?:/[\w.-]+)*:[\w.-]+)"?', re.I)
# Files a render error names: `template: plate-api/templates/deployment.yaml:12:3: executing ...`,
# `parse error at (plate-api/templates/x.yaml:4)`, `YAML parse error on plate-api/templates/x.yaml`,
# `failed to parse values-stg.yaml: error converting YAML to JSON`.
TEMPLATE_FILE = re.compile(r"(?:[\w.-]+/)?(?P<file>templates/[\w./-]+?\.(?:ya?ml|tpl|txt))")
VALUES_FILE = re.compile(r"(?P<file>[\w./-]*values[\w.-]*\.ya?ml)")
PATH_TOKEN = re.compile(r"[^.\[\]]+")


@dataclass(frozen=True, slots=True)
class FieldClue:
    """The API server refused `path` of `kind/name` with `value` (quotes stripped)."""

    kind: str
    name: str
    path: str
    value: str


@dataclass(frozen=True, slots=True)
class Clues:
    images: tuple[str, ...] = ()
    fields: tuple[FieldClue, ...] = ()
    files: tuple[str, ...] = ()  # repo-relative suffixes: "templates/deployment.yaml", "values-stg.yaml"
    render_failed: bool = False  # the app's manifests cannot be generated at the failing revision

    def __bool__(self) -> bool:
        return bool(self.images or self.fields or self.files or self.render_failed)


@dataclass(frozen=True, slots=True)
class Rendered:
    """The app rendered at one commit by the Helm engine: its objects, or the engine's error."""

    objects: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    commit: Commit
    files: tuple[str, ...]  # every file the commit changed (a merge: against its first parent)
    diff: str = ""  # its patch, limited to the app's paths
    before: Rendered | None = None  # the app at the commit's (first) parent; None: not rendered
    after: Rendered | None = None
    side: tuple[Candidate, ...] = ()  # a merge: its branch's commits that changed the app, newest first


@dataclass(frozen=True, slots=True)
class Named:
    commits: tuple[Commit, ...]  # newest first; empty: nothing narrowed it
    how: str  # "introduced image x:1 in Deployment/plate-api", or "could not narrow: ..."
    via: str = ""  # "render", "diff" or both
    merges: tuple[Commit, ...] = ()  # merges one of whose branch commits was named

    @property
    def commit(self) -> Commit | None:
        return self.commits[0] if len(self.commits) == 1 else None


@dataclass(frozen=True, slots=True)
class _Match:
    found: tuple[Candidate, ...]
    how: str
    via: str


def clues_of(kind: str, evidence: Mapping[str, object]) -> Clues:
    """What failed, from an incident's evidence (detect's fields; `failing_images` from the rollout watch)."""
    texts = [str(evidence.get(k) or "") for k in ("message", "health_message")]
    conditions = evidence.get("conditions")
    if isinstance(conditions, list):
        texts += [str(c.get("message") or "") for c in conditions if isinstance(c, dict)]
    failing = evidence.get("failing_images")
    images = [str(i) for i in failing] if isinstance(failing, list) else []
    images += [m["image"] for t in texts for m in IMAGE_IN_MESSAGE.finditer(t)]
    fields = [f for t in texts for f in _invalid_fields(t)]
    render = kind == "manifest_error"
    files: list[str] = []
    if render:  # only Helm's own words: the command line before them lists every value file
        said = [t.rpartition("Error:")[2] or t for t in texts]
        files = [m["file"] for t in said for m in TEMPLATE_FILE.finditer(t)]
        files += [m["file"].rsplit("/", 1)[-1] for t in said for m in VALUES_FILE.finditer(t)]
    return Clues(_unique(images), tuple(dict.fromkeys(fields)), _unique(files), render)


def _invalid_fields(text: str) -> Iterator[FieldClue]:
    objects = list(INVALID_OBJECT.finditer(text))
    for i, obj in enumerate(objects):
        end = objects[i + 1].start() if i + 1 < len(objects) else len(text)
        for m in INVALID_FIELD.finditer(text, obj.end(), end):
            yield FieldClue(obj["kind"], obj["name"], m["path"], m["value"].strip('"'))


def narrow(candidates: Sequence[Candidate], clues: Clues) -> Named:
    """The commits among `candidates` (newest first) that introduced what `clues` say fails: one per failure
    (the API server lists every invalid field of an object at once), or none when any failure names nobody."""
    if not clues:
        return Named((), "could not narrow: the failure names no image, field or file")
    found = [_one(candidates, clue) for clue in _each(clues)]
    missed = next((f for f in found if not f.commits), None)
    if missed is not None:
        return missed
    order = {s.commit.sha: i for i, s in enumerate(x for c in candidates for x in (*c.side, c))}
    commits = sorted({c.sha: c for f in found for c in f.commits}.values(), key=lambda c: order[c.sha])
    vias = " and ".join(dict.fromkeys(f.via for f in found if f.via))
    merges = tuple({m.sha: m for f in found for m in f.merges}.values())
    return Named(tuple(commits), "; ".join(dict.fromkeys(f.how for f in found)), vias, merges)


def _each(clues: Clues) -> Iterator[Clues]:
    yield from (Clues(images=(i,)) for i in clues.images)
    yield from (Clues(fields=(f,)) for f in clues.fields)
    if clues.files or clues.render_failed:
        yield Clues(files=clues.files, render_failed=clues.render_failed)


def _one(candidates: Sequence[Candidate], clue: Clues) -> Named:
    named = _named(candidates, clue)
    if named.commit is None:
        return named
    chosen = next(c for c in candidates if c.commit.sha == named.commit.sha)
    if chosen.side:
        inner = _named(chosen.side, clue)
        if inner.commit is not None:
            where = f" in {inner.commit.sha[:12]} on the branch merged by {chosen.commit.sha[:12]}"
            return Named(inner.commits, inner.how + where, inner.via, (chosen.commit,))
    return named


def _named(candidates: Sequence[Candidate], clues: Clues) -> Named:
    misses = []
    for rule in RULES:
        for match in rule(candidates, clues):
            if len(match.found) == 1 or (match.found and match.via == "render"):
                return Named((match.found[0].commit,), match.how, match.via)
            if match.found:
                misses.append(f"{match.how} in {len(match.found)} commits ({_shas(match.found)})")
    if len(candidates) == 1:  # one commit: nothing to tell apart (a merge whose branch did not narrow)
        only = candidates[0].commit
        return Named((only,), f"the only commit that changed the app ({only.sha[:12]})")
    why = "; ".join(misses) or f"no commit's render or diff shows {_said(clues)}"
    return Named((), f"could not narrow: {why}")


def _by_render(candidates: Sequence[Candidate], clues: Clues) -> Iterator[_Match]:
    rendered = [c for c in candidates if c.before is not None and c.after is not None]
    if clues.render_failed:
        broke = tuple(c for c in rendered if c.after and c.after.error and c.before and not c.before.error)
        yield _Match(broke, "broke the render", "render")
    for image in clues.images:
        found = tuple(c for c in rendered if image in _images(c.after) and image not in _images(c.before))
        where = _owner_of_image(found[0].after, image) if found else ""
        yield _Match(found, f"introduced image {image}{where}", "render")
    for f in clues.fields:
        found = tuple(c for c in rendered if _value(c.after, f) == f.value and _value(c.before, f) != f.value)
        yield _Match(found, f"set {f.path} of {f.kind}/{f.name} to {f.value}", "render")


def _by_diff(candidates: Sequence[Candidate], clues: Clues) -> Iterator[_Match]:
    for image in clues.images:
        repository, _, tag = image.rpartition(":")
        tag_line = re.compile(rf"\btag:\s*[\"']?{re.escape(tag)}[\"']?\s*$")
        found = tuple(c for c in candidates if any(image in a or tag_line.search(a) for a in _added(c.diff)))
        yield _Match(found, f"introduced image {image}", "diff")
    for f in clues.fields:
        value = re.compile(rf"(?<![\w.-]){re.escape(f.value)}(?![\w.-])")
        found = tuple(c for c in candidates if any(value.search(a.partition("#")[0]) for a in _added(c.diff)))
        yield _Match(found, f"set {f.path} of {f.kind}/{f.name} to {f.value}", "diff")
    for name in clues.files:
        found = tuple(c for c in candidates if any(p == name or p.endswith("/" + name) for p in c.files))
        yield _Match(found, f"changed {name}, which the render error names", "diff")


RULES: tuple[Callable[[Sequence[Candidate], Clues], Iterator[_Match]], ...] = (_by_render, _by_diff)


def _added(diff: str) -> list[str]:
    return [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def _walk(node: object) -> Iterator[tuple[str, object]]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield str(k), v
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _images(r: Rendered | None) -> set[str]:
    if r is None:
        return set()
    return {str(v) for obj in r.objects for k, v in _walk(obj) if k == "image" and isinstance(v, str)}


def _owner_of_image(r: Rendered | None, image: str) -> str:
    for obj in r.objects if r else ():
        if image in {str(v) for k, v in _walk(obj) if k == "image"}:
            return f" in {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
    return ""


def _value(r: Rendered | None, f: FieldClue) -> str | None:
    """The rendered value at `f.path` of the object `f` names (None: no such object or field)."""
    for obj in r.objects if r else ():
        if obj.get("kind") != f.kind or (obj.get("metadata") or {}).get("name") != f.name:
            continue
        node: object = obj
        for token in PATH_TOKEN.findall(f.path):
            if isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            elif isinstance(node, Mapping) and token in node:
                node = node[token]
            else:
                return None
        return str(node)
    return None


def _said(clues: Clues) -> str:
    said = [*clues.images, *(f"{f.path}={f.value}" for f in clues.fields), *clues.files]
    return ", ".join(said) or "the render failure"


def _shas(found: Sequence[Candidate]) -> str:
    return ", ".join(c.commit.sha[:12] for c in found)


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


@dataclass(frozen=True, slots=True)
class Split:
    """Revert only the culprit's files that change the failing app; keep the rest (other apps' changes)."""

    only: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # culprit sha -> files to revert
    kept: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # culprit sha -> files left as they are


def split(culprits: Sequence[tuple[Commit, tuple[str, ...]]], undone: Callable[[str], bool]) -> Split:
    """Per culprit (with every file it changed): the files to revert when some of them may be kept."""
    only, kept = {}, {}
    for commit, files in culprits:
        mine = tuple(f for f in files if undone(f))
        others = tuple(f for f in files if not undone(f))
        if mine and others:
            only[commit.sha], kept[commit.sha] = mine, others
    return Split(only, kept)


def narrowed(
    app: str,
    b: Blame,
    candidates: Sequence[Candidate],
    clues: Clues,
    own: AppSources,
    others: Mapping[str, AppSources],
    split_on: bool,
    healthy: frozenset[str] = frozenset(),
    narrow_on: bool = True,
) -> Blame:
    """`b` with its culprits narrowed to the one that introduced what fails (when one is named), and each
    culprit's revert limited to the app's files (when `split_on` and the culprit also changed other files).

    A file is kept only when every other app it changes is in `healthy` (Synced and Healthy with the change):
    another app the culprit broke too gets the revert of its files as well, in the same commit."""
    if b.outcome is not BlameOutcome.CULPRITS:
        return b
    mine = [c for c in candidates if c.commit.sha in {k.sha for k in b.culprits}]
    culprits, named, reason = b.culprits, b.named, b.reason  # b.named: the evidence rule may have named it
    if narrow_on and (len(mine) > 1 or any(c.side for c in mine)):
        found = narrow(mine, clues)
        if found.commits and (len(found.commits) < len(mine) or found.merges):
            culprits = found.commits
            shown = ", ".join(f"{c.sha[:12]} ({c.subject[:60]})" for c in culprits)
            named = f"{found.how}" + (f" (seen in the {found.via})" if found.via else "")
            reason = f"{reason}; narrowed to {shown}: {found.how}"
        elif not found.commits:
            named = found.how
            reason = f"{reason}; {found.how}: reverting all {len(mine)}"
    files = {c.commit.sha: c.files for c in mine} | {s.commit.sha: s.files for c in mine for s in c.side}
    files = {sha: files.get(sha) or () for sha in (c.sha for c in culprits)}
    sick = [src for o, src in others.items() if o not in healthy]

    def undone(f: str) -> bool:
        return touches(f, own) or any(touches(f, src) for src in sick)

    cut = split([(c, files[c.sha]) for c in culprits], undone) if split_on else Split()
    if cut.only:
        kept = sorted({f for fs in cut.kept.values() for f in fs})
        reason += f"; reverting only its changes to {app}, keeping {', '.join(kept[:5])}"
    also = {
        sha: tuple(sorted(o for o, src in others.items() if any(touches(f, src) for f in cut.only.get(sha, fs))))
        for sha, fs in files.items()
    }
    also = {k: v for k, v in also.items() if v} if files and any(files.values()) else dict(b.also_touched)
    return replace(b, reason=reason, culprits=culprits, also_touched=also, named=named, only=cut.only, kept=cut.kept)
