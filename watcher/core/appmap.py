"""Pure mapping from an Argo CD Application to the paths of the watched repo that define it."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import yaml

from watcher.domain import shared

SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")
URL = re.compile(r"^[a-z][a-z0-9+.-]*://(?:[^@/]*@)?(?P<host>[^/:]+)(?::\d+)?(?P<path>/.*)?$", re.IGNORECASE)


def normalize_repo_url(url: str) -> str:
    """`git@host:org/repo.git`, `ssh://git@host:22/org/repo` and `https://host/org/repo/` all become `host/org/repo`."""
    url = url.strip()
    m = URL.match(url)
    if m:
        host, path = m["host"], m["path"] or ""
    elif (m := SCP_LIKE.match(url)) and not url.startswith("/"):
        host, path = m["host"], m["path"]
    else:  # a local path or file URL without scheme
        host, path = "", url
    path = path.rstrip("/").removesuffix(".git").strip("/")
    return f"{host.lower()}/{path}" if host else "/" + path


def _sources(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    many = spec.get("sources") or []
    one = spec.get("source")
    return list(many) if many else ([one] if one else [])


def app_paths(
    app: Mapping[str, Any], watched_repo: str, manifest_path: str | None = None, renderer_inputs: Iterable[str] = ()
) -> tuple[str, ...]:
    """The repo paths whose change can change what Argo CD deploys for `app` (sorted, de-duplicated).

    `renderer_inputs` are what the app's renderer reads outside its source directories (render_inputs.closure
    over render_roots), found from the repo's content by the caller.
    """
    watched = normalize_repo_url(watched_repo)
    spec = app.get("spec") or {}
    sources = _sources(spec)
    refs = {s["ref"]: s for s in sources if s.get("ref")}
    paths: set[str] = {*renderer_inputs, *render_roots(app, watched_repo)}
    if manifest_path:
        paths.add(manifest_path)
    for src in sources:
        ours = normalize_repo_url(str(src.get("repoURL", ""))) == watched
        base = _clean(src.get("path") or "")
        for value_file in _helm_files(src):
            resolved = _value_file(value_file, base if ours else None, refs, watched)
            if resolved:
                paths.add(resolved)
    return tuple(sorted(paths))


def render_roots(app: Mapping[str, Any], watched_repo: str) -> tuple[str, ...]:
    """The directories Argo CD renders for `app` from the watched repo: its source paths, and the Kustomize
    components the Application adds to them (`kustomize.components`, relative to the source path)."""
    watched = normalize_repo_url(watched_repo)
    roots: list[str] = []
    for src in _sources(app.get("spec") or {}):
        base = _clean(src.get("path") or "")
        if not base or normalize_repo_url(str(src.get("repoURL", ""))) != watched:
            continue
        roots.append(base)
        for component in (src.get("kustomize") or {}).get("components") or []:
            if "://" not in str(component) and (path := _clean(posixpath.join(base, str(component)))):
                roots.append(path)
    return tuple(dict.fromkeys(roots))


def _helm_files(src: Mapping[str, Any]) -> list[str]:
    """Value files and `--set-file` parameters: Argo CD resolves both alike (relative to the path, or `$ref/`)."""
    helm = src.get("helm") or {}
    files = [str(f) for f in helm.get("valueFiles") or []]
    return files + [str(p["path"]) for p in helm.get("fileParameters") or [] if isinstance(p, dict) and p.get("path")]


def _value_file(value_file: str, base: str | None, refs: Mapping[str, Any], watched: str) -> str | None:
    if "://" in value_file:
        return None  # a remote URL: not in the watched repo
    if value_file.startswith("$"):
        ref, _, rest = value_file[1:].partition("/")
        src = refs.get(ref)
        if src is None or normalize_repo_url(str(src.get("repoURL", ""))) != watched:
            return None
        return _clean(rest)
    if base is None:
        return None
    return _clean(posixpath.join(base, value_file))


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path.strip("/")) if path.strip("/") else ""
    return "" if cleaned in (".", "") or cleaned.startswith("..") else cleaned


def application_manifests(files: Mapping[str, str]) -> dict[str, str]:
    """Application name -> repo path of the YAML file that defines it (app-of-apps children)."""
    found: dict[str, str] = {}
    for path, text in sorted(files.items()):
        for doc in _yaml_docs(text):
            if doc.get("kind") == "Application" and str(doc.get("apiVersion", "")).startswith("argoproj.io/"):
                name = (doc.get("metadata") or {}).get("name")
                if name:
                    found.setdefault(str(name), path)
    return found


def _yaml_docs(text: str) -> Iterable[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError:
        return []  # an unparsable file defines no app we can map; Argo CD reports it on its own


def watched_source_paths(apps: Iterable[Mapping[str, Any]], watched_repo: str) -> tuple[str, ...]:
    """Directories under which Application manifests may live: every watched-repo source path."""
    watched = normalize_repo_url(watched_repo)
    paths = {
        _clean(src.get("path") or "")
        for app in apps
        for src in _sources(app.get("spec") or {})
        if normalize_repo_url(str(src.get("repoURL", ""))) == watched
    }
    return tuple(sorted(p for p in paths if p))


TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
OPT_ANNOTATION = "sync-watcher.io/auto-revert"  # "false" opts an app out of auto-revert, "true" in
PREFLIGHT_REVERT_ANNOTATION = "sync-watcher.io/preflight-revert"  # core/preflight.py: revert before Argo CD syncs
KEPT_ANNOTATIONS = frozenset({TRACKING_ANNOTATION, OPT_ANNOTATION, PREFLIGHT_REVERT_ANNOTATION})
TRACKING_LABEL = "app.kubernetes.io/instance"
KEPT_LABELS = frozenset({TRACKING_LABEL, "environment", "env"})  # env labels: metrics and Slack name the env


def parent_app_names(apps: Iterable[Mapping[str, Any]]) -> set[str]:
    """Apps that manage other Applications, from Argo CD's resource tracking (annotation or label)."""
    parents: set[str] = set()
    for app in apps:
        meta = app.get("metadata") or {}
        tracking = str((meta.get("annotations") or {}).get(TRACKING_ANNOTATION, ""))
        if tracking:
            parents.add(tracking.split(":", 1)[0])
        elif label := (meta.get("labels") or {}).get(TRACKING_LABEL):
            parents.add(str(label))
    return parents


def manifest_directories(apps: Iterable[Mapping[str, Any]], watched_repo: str) -> tuple[str, ...]:
    """Where to look for Application manifests: the parents' source paths, or every source path if unknown."""
    apps = list(apps)
    parents = parent_app_names(apps)
    candidates = [a for a in apps if (a.get("metadata") or {}).get("name") in parents] if parents else apps
    return watched_source_paths(candidates, watched_repo)


class Source(NamedTuple):
    repo_url: Any  # each of these as the Application has it, or None where it is empty or missing
    path: Any
    ref: Any
    target_revision: Any
    chart: Any
    value_files: tuple[Any, ...]  # spec.source.helm.valueFiles, () for none
    file_parameters: tuple[tuple[Any, Any], ...] = ()  # spec.source.helm.fileParameters as (name, path)
    components: tuple[Any, ...] = ()  # spec.source.kustomize.components


SOURCE_KEYS = ("repoURL", "path", "ref", "targetRevision", "chart")


class Fields(NamedTuple):
    """mapping_fields, kept as tuples: what every watched app holds for as long as it is watched. As the nested
    dicts mapping_fields gives, 10k apps held ~10 MB (a dict and its key table per level); as this, ~2 MB."""

    name: Any
    namespace: Any
    annotations: tuple[tuple[str, Any], ...]  # the KEPT_ANNOTATIONS it has
    labels: tuple[tuple[str, Any], ...]  # the KEPT_LABELS it has
    sources: tuple[Source, ...]


def compact_fields(app: Mapping[str, Any]) -> Fields:
    """The part of an Application this module reads (mapping_fields), as Fields. Strings many apps repeat are
    shared (domain.shared)."""
    meta = app.get("metadata") or {}
    annotations = tuple(
        (shared(k), shared(v)) for k, v in (meta.get("annotations") or {}).items() if k in KEPT_ANNOTATIONS
    )
    labels = tuple((shared(k), shared(v)) for k, v in (meta.get("labels") or {}).items() if k in KEPT_LABELS)

    def source(s: Mapping[str, Any]) -> Source:
        repo_url, path, ref, target_revision, chart = (shared(s[k]) if s.get(k) else None for k in SOURCE_KEYS)
        helm = s.get("helm") or {}
        files = tuple(shared(f) for f in helm.get("valueFiles") or ())
        parameters = tuple(
            (p.get("name"), shared(p.get("path"))) for p in helm.get("fileParameters") or () if isinstance(p, dict)
        )
        components = tuple((s.get("kustomize") or {}).get("components") or ())
        return Source(repo_url, path, ref, target_revision, chart, files, parameters, components)

    sources = tuple(source(s) for s in _sources(app.get("spec") or {}))
    return Fields(meta.get("name"), shared(meta.get("namespace")), annotations, labels, sources)


def expand_fields(fields: Fields) -> dict[str, Any]:
    """Fields as the Application-shaped dicts the rest of this module reads (what mapping_fields returns)."""

    def source(s: Source) -> dict[str, Any]:
        kept: dict[str, Any] = {k: v for k, v in zip(SOURCE_KEYS, s, strict=False) if v}
        helm: dict[str, Any] = {}
        if s.value_files:
            helm["valueFiles"] = list(s.value_files)
        if s.file_parameters:
            helm["fileParameters"] = [{"name": n, "path": p} for n, p in s.file_parameters]
        if helm:
            kept["helm"] = helm
        if s.components:
            kept["kustomize"] = {"components": list(s.components)}
        return kept

    metadata = {"name": fields.name, "namespace": fields.namespace}
    if fields.annotations:  # most apps have none of these: no empty dict each (readers take a missing one as empty)
        metadata["annotations"] = dict(fields.annotations)
    if fields.labels:
        metadata["labels"] = dict(fields.labels)
    return {"metadata": metadata, "spec": {"sources": [source(s) for s in fields.sources]}}


def mapping_fields(app: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an Application this module reads: kept per app instead of the whole spec (memory)."""
    return expand_fields(compact_fields(app))


class ExpandedFields(Mapping[str, dict[str, Any]]):
    """Every app's Fields, read as mapping_fields dicts: each expanded when asked for, none kept expanded."""

    def __init__(self, fields: Mapping[str, Fields]):
        self._fields = fields

    def __getitem__(self, key: str) -> dict[str, Any]:
        return expand_fields(self._fields[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def deploys_from_repo(app: Mapping[str, Any], repo_url: str) -> bool | None:
    """Whether a git source of `app` is the watched repo (a `ref` source of value files counts); None when the
    app's sources are not known. An app that deploys only from elsewhere (a Helm repository's chart, another
    git repo) has no commit in the watched repo to blame: a bump of its chart version there is a change to
    its Application manifest, which Argo CD reports as a chart version, not as a commit."""
    sources = (app.get("spec") or {}).get("sources")
    if not sources:
        return None
    return watched_git_source(sources, repo_url) is not None


def watched_git_source(sources: Any, repo_url: str) -> int | None:
    """The position of the first git source from the watched repo (a Helm repository's chart is not one)."""
    watched = normalize_repo_url(repo_url)
    for i, s in enumerate(sources if isinstance(sources, list) else []):
        if isinstance(s, dict) and not s.get("chart") and normalize_repo_url(str(s.get("repoURL", ""))) == watched:
            return i
    return None
