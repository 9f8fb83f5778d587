"""Pure: the repo paths a renderer reads from outside an app's source directories, found from the repo's content.

Argo CD renders a directory with Kustomize when it holds a kustomization file and with Helm when it holds a
Chart.yaml (util/app/discovery). Both read files elsewhere in the repo: a chart's `file://` dependencies
(`helm dependency build`), a kustomization's bases, components, patches and generator files. A commit that
changes only those files changes what the app deploys, so blame must see them.

Two steps, so each definition file is parsed once per revision however many apps share it:
`references(directory, files)` parses one directory's definition files, and `closure(roots, refs)` follows
the references from an app's roots. The caller reads the files (fleet_map through the git port), asking for
the directories `closure` reports as unread until none are left.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")  # Kustomize's own list
CHART_FILES = ("Chart.yaml", "requirements.yaml")  # requirements.yaml: dependencies of apiVersion v1 charts
DEFINITION_FILES = CHART_FILES + KUSTOMIZATION_FILES
# A chain of bases deeper than this is a mistake or a cycle through symlinks; a fleet's few real chains are short.
MAX_DEPTH = 8
MAX_DIRECTORIES = 256  # per app: a kustomization that pulls in more is read no further (and says so)

# Kustomize takes a reference as remote only with a scheme, git::, an SCP-style user@host: or github.com/
# (api/internal/git/repospec.go); everything else is a path, and Helm's only local repository is file://.
REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git::|[a-z][a-z0-9-]*@|github\.com[/:])", re.IGNORECASE)
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# A fleet has thousands of Chart.yaml files to parse at the first mapping: libyaml is ten times faster.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class DirectoryRefs:
    """What one directory's definition files point at, as repo paths."""

    follow: tuple[str, ...] = ()  # directories that may hold definition files of their own
    files: tuple[str, ...] = ()  # files (or directories) read as they are


@dataclass(frozen=True, slots=True)
class RendererInputs:
    paths: tuple[str, ...]  # repo paths outside the roots that the renderer reads (sorted, none under another)
    unread: tuple[str, ...] = ()  # directories reached whose definition files the caller has not read yet
    truncated: bool = False  # MAX_DEPTH or MAX_DIRECTORIES stopped the walk


def references(directory: str, files: Mapping[str, str]) -> DirectoryRefs:
    """The repo paths that the definition files of `directory` (file name -> text) make the renderer read."""
    follow: list[str] = []
    read: list[str] = []
    for name, text in sorted(files.items()):
        doc = _load(text)
        if name in CHART_FILES:
            follow += _chart_dependencies(directory, doc)
        elif name in KUSTOMIZATION_FILES:
            more_follow, more_read = _kustomization(directory, doc)
            follow += more_follow
            read += more_read
    return DirectoryRefs(tuple(dict.fromkeys(follow)), tuple(dict.fromkeys(read)))


def closure(roots: Iterable[str], refs: Mapping[str, DirectoryRefs]) -> RendererInputs:
    """Every path reachable from `roots` through `refs` (directory -> its references), breadth first.

    A directory missing from `refs` is reported as unread; a cycle ends where it meets a directory already seen.
    """
    roots = tuple(dict.fromkeys(r for r in roots if r))
    seen = set(roots)
    level = list(roots)
    paths: set[str] = set()
    unread: list[str] = []
    for _ in range(MAX_DEPTH + 1):
        following: list[str] = []
        for directory in level:
            found = refs.get(directory)
            if found is None:
                unread.append(directory)
                continue
            paths.update(found.files)
            paths.update(found.follow)
            following += [d for d in found.follow if d not in seen]
            seen.update(following)
        if not following:
            return RendererInputs(_outside(paths, roots), tuple(sorted(set(unread))))
        if len(seen) > MAX_DIRECTORIES:
            break
        level = following
    return RendererInputs(_outside(paths, roots), tuple(sorted(set(unread))), truncated=True)


def _outside(paths: Iterable[str], roots: tuple[str, ...]) -> tuple[str, ...]:
    """Paths not already covered by a root or by another path (a directory covers what is under it)."""
    kept: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(path == d or path.startswith(d + "/") for d in (*roots, *kept)):
            kept.append(path)
    return tuple(sorted(kept))


def _load(text: str) -> Any:
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        return None  # the renderer fails on it and Argo CD says so; it names nothing we can follow


def _chart_dependencies(directory: str, chart: Any) -> list[str]:
    found = []
    for dep in _list(chart, "dependencies"):
        repository = str(dep.get("repository") or "") if isinstance(dep, dict) else ""
        if repository.startswith("file://") and (path := _local(directory, repository.removeprefix("file://"))):
            found.append(path)
    return found


def _kustomization(directory: str, k: Any) -> tuple[list[str], list[str]]:
    """(directories to follow, paths read as they are) named by one kustomization (api/types/kustomization.go)."""
    follow: list[str] = []
    read: list[str] = []
    # resources and bases name files or kustomization directories; generators, transformers and validators
    # name files of plugin configs or kustomization directories too. Components are always directories.
    for key in ("resources", "bases", "components", "generators", "transformers", "validators"):
        for ref in _strings(_list(k, key)):
            if path := _local(directory, ref):
                (read if path.endswith(MANIFEST_SUFFIXES) else follow).append(path)
    for key in ("crds", "configurations", "patchesStrategicMerge"):
        read += _paths(directory, _strings(_list(k, key)))
    for key in ("patches", "patchesJson6902", "replacements"):
        read += _paths(directory, (str(p["path"]) for p in _list(k, key) if isinstance(p, dict) and p.get("path")))
    for key in ("configMapGenerator", "secretGenerator"):
        read += _paths(directory, _generator_sources(_list(k, key)))
    openapi = k.get("openapi") if isinstance(k, dict) else None
    if isinstance(openapi, dict) and openapi.get("path"):
        read += _paths(directory, [str(openapi["path"])])
    follow_charts, read_values = _helm_charts(directory, k)
    return follow + follow_charts, read + read_values


def _generator_sources(generators: list[Any]) -> Iterator[str]:
    for g in generators:
        if not isinstance(g, dict):
            continue
        for entry in _strings(g.get("files") or []):
            yield entry.split("=", 1)[-1]  # `key=path` names the key the file's content gets
        yield from _strings(g.get("envs") or [])
        if isinstance(g.get("env"), str):
            yield g["env"]


def _helm_charts(directory: str, k: Any) -> tuple[list[str], list[str]]:
    """Kustomize's Helm inflation: local charts live under helmGlobals.chartHome (default `charts`)."""
    charts = _list(k, "helmCharts")
    if not charts:
        return [], []
    globals_ = k.get("helmGlobals") if isinstance(k.get("helmGlobals"), dict) else {}
    home = str(globals_.get("chartHome") or "charts")
    follow: list[str] = []
    read: list[str] = []
    for chart in charts:
        if not isinstance(chart, dict):
            continue
        if chart.get("name") and not chart.get("repo"):
            follow += _paths(directory, [posixpath.join(home, str(chart["name"]))])
        read += _paths(directory, _strings([chart.get("valuesFile"), *(chart.get("additionalValuesFiles") or [])]))
    return follow, read


def _paths(directory: str, refs: Iterable[str]) -> list[str]:
    return [p for ref in refs if (p := _local(directory, ref))]


def _local(directory: str, ref: str) -> str | None:
    """`ref` as a repo path, or None when it is remote, inline, absolute or leaves the repo."""
    ref = ref.strip()
    if not ref or "\n" in ref or ref.startswith("/") or REMOTE.match(ref):
        return None
    path = posixpath.normpath(posixpath.join(directory, ref))
    return None if path == "." or path == ".." or path.startswith("../") else path


def _list(doc: Any, key: str) -> list[Any]:
    value = doc.get(key) if isinstance(doc, dict) else None
    return value if isinstance(value, list) else []


def _strings(values: Iterable[Any]) -> Iterator[str]:
    return (v for v in values if isinstance(v, str) and v)
