"""The simulator's repo server: the GitOps repo's content at a revision, a targetRevision resolved as Argo CD's
repo server does, and an Application's source rendered to what the simulated cluster looks at."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import yaml

from watcher.sim import helm_chart, kustomize
from watcher.sim.chart_repo import BROKEN_REPLICAS, BROKEN_VERSIONS, ChartNotFound, chart_defaults, is_chart_source

RENDERS_KEPT = 4096  # (commit, source) renders remembered; all forgotten at once past this


class RenderError(Exception):
    """Manifests cannot be generated (Argo CD: ComparisonError)."""


@dataclass
class Rendered:
    """What a source renders to, reduced to what the simulated cluster looks at."""

    fingerprint: str
    replicas: Any = 0
    image: str = ""
    memory: Any = None
    workload: bool = True  # False for a directory of plain manifests (the app-of-apps)
    config: str = ""  # fingerprint of the chart's ConfigMap (values under `config`); the rest is the Deployment
    cpu: Any = None  # resources.requests.cpu: what the scheduler fits on the nodes
    env: tuple[tuple[str, str, str], ...] = ()  # (Secret|ConfigMap, name, key) the container reads at start
    hooks: tuple[Hook, ...] = ()  # the chart's Argo CD hook Jobs


@dataclass(frozen=True)
class Hook:
    """A Job in the chart annotated `argocd.argoproj.io/hook` (a PreSync migration, say)."""

    name: str
    hook_type: str  # PreSync | Sync | PostSync | SyncFail
    image: str
    backoff_limit: int = 6
    container: str = "job"


class RepoServer:
    def __init__(self, repo_url: str, workdir: Path, branch: str):
        self.repo_url = repo_url
        self.workdir = workdir
        self.branch = branch
        self.head: str | None = None
        self._repo: git.Repo | None = None
        self._trees: dict[tuple[str, str], dict[str, str]] = {}  # (revision, directory) -> its files
        # What a source renders to at a commit never changes: at 10k apps on a few charts, rendering each app at
        # every git poll (a git process per file) was minutes; now it is once per sources and commit.
        self._rendered: dict[tuple[str, str], Rendered | RenderError] = {}

    def git(self) -> git.Repo:
        if self._repo is None:
            target = self.workdir / "sim-clone.git"
            if target.exists():
                self._repo = git.Repo(target)
            else:
                self._repo = git.Repo.clone_from(self.repo_url, target, bare=True, multi_options=["--no-tags"])
                self._repo.git.config("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
        return self._repo

    def poll(self) -> str:
        repo = self.git()
        repo.git.fetch("origin", "--prune", "--tags", "--force")  # a moved tag is re-resolved, as the repo server does
        self.head = repo.git.rev_parse(f"refs/remotes/origin/{self.branch}")
        return self.head

    def resolve(self, target: str) -> str | None:
        """An Application's targetRevision as the repo server resolves it: the branch (or HEAD, or nothing)
        follows the head; a tag, another branch or a commit is looked up; None when git has no such thing."""
        if target in ("", "HEAD", self.branch, f"refs/heads/{self.branch}"):
            return self.head
        for ref in (f"refs/tags/{target}", f"refs/remotes/origin/{target}", target):
            try:
                return str(self.git().git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}"))
            except git.GitCommandError:
                continue
        return None

    def file(self, rev: str, path: str) -> str | None:
        try:
            return str(self.git().git.show(f"{rev}:{path}"))
        except git.GitCommandError:
            return None

    def dir_files(self, rev: str, path: str) -> dict[str, str]:
        try:
            names = self.git().git.ls_tree("-r", "--name-only", rev, "--", path).splitlines()
        except git.GitCommandError:
            return {}
        return {n: self.file(rev, n) or "" for n in names if n.endswith((".yaml", ".yml"))}

    def tree(self, rev: str, path: str) -> dict[str, str]:
        """Every file under `path` at `rev`, whatever its name (a library chart's templates are .tpl): kept per
        revision, since the controller renders every app at every poll and a shared chart is read by several."""
        if (rev, path) not in self._trees:
            try:
                names = self.git().git.ls_tree("-r", "--name-only", rev, "--", path).splitlines()
            except git.GitCommandError:
                names = []
            if len(self._trees) >= 64:
                self._trees.clear()
            self._trees[(rev, path)] = {n: self.file(rev, n) or "" for n in names}
        return self._trees[(rev, path)]

    def _kustomize_build(self, rev: str, path: str) -> Rendered:
        try:
            files = kustomize.build(lambda f: self.file(rev, f), path)
        except kustomize.BuildError as exc:
            raise RenderError(f"`kustomize build {path}` failed exit status 1: Error: {exc}") from None
        return Rendered(hashlib.sha1(json.dumps(files, sort_keys=True).encode()).hexdigest(), workload=False)

    def applications(self, rev: str, root_manifest: str) -> list[dict[str, Any]]:
        """The root Application and every Application in its source directory at `rev` (none when the root does
        not parse: Argo CD reports that as the root's own ComparisonError)."""
        root_text = self.file(rev, root_manifest)
        root = yaml.safe_load(root_text) if root_text else None
        if not isinstance(root, dict):
            return []
        root["metadata"].setdefault("namespace", "argocd")
        found = [root]
        for text in self.dir_files(rev, root["spec"]["source"]["path"]).values():
            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError:
                continue  # the root app reports it as a ComparisonError on its own
            for doc in docs:
                if isinstance(doc, dict) and doc.get("kind") == "Application":
                    doc["metadata"].setdefault("namespace", "argocd")
                    annotations = doc["metadata"].setdefault("annotations", {})
                    # Argo CD v3 resource tracking: how the watcher tells the parent of an app.
                    annotations["argocd.argoproj.io/tracking-id"] = (
                        f"{root['metadata']['name']}:argoproj.io/Application:argocd/{doc['metadata']['name']}"
                    )
                    found.append(doc)
        return found

    def render(self, manifest: dict[str, Any], rev: str) -> Rendered:
        """The app's source(s) at `rev` (the revision of its source in this repo). A multi-source app whose
        chart comes from the Helm repository takes its values through a `ref` source (`$values/...`)."""
        spec = manifest["spec"]
        sources = [spec["source"]] if spec.get("source") else list(spec.get("sources") or [])
        key = (rev, json.dumps(sources, sort_keys=True, default=str))
        if key not in self._rendered:
            if len(self._rendered) >= RENDERS_KEPT:
                self._rendered.clear()
            try:
                self._rendered[key] = self._render(sources, rev)
            except RenderError as exc:
                self._rendered[key] = exc
        result = self._rendered[key]
        if isinstance(result, RenderError):
            raise RenderError(*result.args)
        return result

    def _render(self, sources: list[dict[str, Any]], rev: str) -> Rendered:
        chart = next((s for s in sources if is_chart_source(s)), None)
        if chart is not None:
            return self._render_chart(chart, sources, rev)
        source = next((s for s in sources if s.get("path")), sources[0] if sources else {})
        path = source.get("path", "")
        files = self.dir_files(rev, path)
        if not files:
            raise RenderError(f"{path}: app path does not exist")
        if "helm" not in source:
            if kustomize.is_kustomization(files, path):
                return self._kustomize_build(rev, path)
            for name, content in sorted(files.items()):
                try:
                    list(yaml.safe_load_all(content))
                except yaml.YAMLError as exc:
                    raise RenderError(f"failed to unmarshal {posixpath.basename(name)}: {exc}") from None
            digest = hashlib.sha1(json.dumps(files, sort_keys=True).encode()).hexdigest()
            return Rendered(digest, workload=False)
        if error := helm_chart.template_error(path, files, lambda d: self.tree(rev, d)):
            raise RenderError(error)
        value_files = ["values.yaml", *((source.get("helm") or {}).get("valueFiles") or [])]
        values: dict[str, Any] = {}
        for vf in value_files:
            full = posixpath.normpath(posixpath.join(path, vf))
            text = files.get(full) if full.startswith(path) else self.file(rev, full)
            if text is None and vf == "values.yaml":
                continue
            values = _merge(values, _values(vf, full, text))
        rendered = _rendered(values)
        hooks = chart_hooks(files, values)
        if hooks:
            rendered.hooks = hooks
            rendered.fingerprint = hashlib.sha1(f"{rendered.fingerprint}{hooks}".encode()).hexdigest()
        return rendered

    def _render_chart(self, chart: dict[str, Any], sources: list[dict[str, Any]], rev: str) -> Rendered:
        """A chart from the Helm repository at its version; `$ref/...` value files read this repo at `rev`."""
        name, version = str(chart["chart"]), str(chart.get("targetRevision", ""))
        try:
            defaults = chart_defaults(name, version)
        except ChartNotFound as exc:
            raise RenderError(str(exc)) from None
        refs = {s["ref"] for s in sources if s.get("ref") and s.get("repoURL") == self.repo_url}
        base = self.file(rev, f"helm/applications/{name}/values.yaml")  # the published chart's own values
        values = _merge(_values("values.yaml", name, base) if base else {}, defaults)
        for vf in (chart.get("helm") or {}).get("valueFiles") or []:
            ref, _, rest = str(vf).removeprefix("$").partition("/")
            if not str(vf).startswith("$") or ref not in refs:
                raise RenderError(f"{vf}: value files of a Helm repository chart come through a ref source")
            values = _merge(values, _values(str(vf), rest, self.file(rev, posixpath.normpath(rest))))
        rendered = _rendered(values | {"chartVersion": version})
        if version in BROKEN_VERSIONS:
            rendered.replicas = BROKEN_REPLICAS  # the bad release's template ignores the values
        return rendered


def _values(vf: str, full: str, text: str | None) -> dict[str, Any]:
    if text is None:
        raise RenderError(f"open {full}: no such file or directory")
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
        raise RenderError(
            f"failed to parse {vf}: error converting YAML to JSON: yaml: line {line}: "
            f"{getattr(exc, 'problem', 'invalid YAML')}"
        ) from None
    if not isinstance(loaded, dict):
        raise RenderError(f"failed to parse {vf}: values must be a map")
    return loaded


def _rendered(values: dict[str, Any]) -> Rendered:
    image = values.get("image") or {}
    memory = ((values.get("resources") or {}).get("limits") or {}).get("memory")
    fingerprint = hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    config = hashlib.sha1(json.dumps(values.get("config"), sort_keys=True, default=str).encode()).hexdigest()
    return Rendered(
        fingerprint,
        values.get("replicaCount", 1),
        f"{image.get('repository')}:{image.get('tag')}",
        memory,
        config=config,
        cpu=((values.get("resources") or {}).get("requests") or {}).get("cpu"),
        env=_env_refs(values.get("env")),
    )


def _env_refs(env: Any) -> tuple[tuple[str, str, str], ...]:
    """The Secret and ConfigMap keys the container's `env` reads (valueFrom.secretKeyRef/configMapKeyRef)."""
    refs = []
    for item in env if isinstance(env, list) else []:
        source = (item or {}).get("valueFrom") or {} if isinstance(item, dict) else {}
        for field_name, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = source.get(field_name)
            if isinstance(ref, dict) and not ref.get("optional"):
                refs.append((kind, str(ref.get("name", "")), str(ref.get("key", ""))))
    return tuple(refs)


HOOK = re.compile(r"argocd\.argoproj\.io/hook:\s*['\"]?(\w+)")
IF_VALUE = re.compile(r"\A\s*\{\{-?\s*if\s+\.Values\.([\w.]+)\s*-?\}\}")
CONTROL_LINE = re.compile(r"^\s*\{\{-?\s*(?:if|end|with|range)\b.*\}\}\s*$", re.M)
VALUE_REF = re.compile(r"\{\{-?\s*\.Values\.([\w.]+)\s*-?\}\}")


def chart_hooks(files: dict[str, str], values: dict[str, Any]) -> tuple[Hook, ...]:
    """The chart's hook Jobs: templates of `kind: Job` with the hook annotation, their `{{ .Values.x }}`
    references filled from the values (the one piece of Helm's templating a hook's image needs here)."""
    hooks = []
    for path, text in sorted(files.items()):
        if "/templates/" not in path or "kind: Job" not in text or not (m := HOOK.search(text)):
            continue
        if (guard := IF_VALUE.search(text)) and not _lookup(values, guard[1]):
            continue  # the whole template sits in `{{- if .Values.x }}` and x is not set
        filled = CONTROL_LINE.sub("", VALUE_REF.sub(lambda v: str(_lookup(values, v[1])), text))
        try:
            job = yaml.safe_load(filled) or {}
        except yaml.YAMLError:
            continue
        pod_spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
        containers = pod_spec.get("containers") or [{}]
        name = str((job.get("metadata") or {}).get("name") or posixpath.basename(path).rsplit(".", 1)[0])
        limit = (job.get("spec") or {}).get("backoffLimit", 6)
        image, container = str(containers[0].get("image", "")), str(containers[0].get("name", "job"))
        hooks.append(Hook(name, m[1], image, int(limit) if str(limit).isdigit() else 6, container))
    return tuple(hooks)


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return "" if node is None else node


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
