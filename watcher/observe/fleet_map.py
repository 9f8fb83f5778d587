"""Which repo paths define each watched app: the apps' mapping fields, remapped when the head or the apps change."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from watcher.core import appmap, render_inputs
from watcher.core.dora import environment_of
from watcher.domain import AppContext, AppSnapshot, NeedsHuman, RetryLater, app_key
from watcher.logs import get_logger
from watcher.ports import WatchedRepo


class FleetMap:
    """Every app's mapping fields (kept compact: appmap.Fields) and repo paths; safe to read from any thread."""

    def __init__(self, repo: WatchedRepo, watched_url: str):
        self.repo = repo
        self.watched_url = watched_url
        self.log = get_logger()
        self._lock = threading.Lock()
        self._specs: dict[str, appmap.Fields] = {}
        self._environments: dict[str, str] = {}  # read per app on every scrape: worked out once per spec
        self._paths: dict[str, tuple[str, ...]] = {}
        self._mapped: str | None = None  # the head and app count the paths were computed for
        self._renderer = RendererReads(repo)

    def update(self, specs: Mapping[str, appmap.Fields]) -> None:
        with self._lock:
            for key, spec in specs.items():
                if self._specs.get(key) is not spec:  # an unchanged app's list keeps the object (apps_listing.Known)
                    self._keep(key, spec)

    def remember(self, item: Mapping[str, Any]) -> None:
        """One whole Application, as the stream sends it."""
        meta = item.get("metadata") or {}
        if meta.get("name"):
            key = app_key(str(meta["name"]), str(meta.get("namespace") or ""))
            with self._lock:
                self._keep(key, appmap.compact_fields(item))

    def _keep(self, key: str, fields: appmap.Fields) -> None:
        self._specs[key] = fields
        self._environments[key] = environment_of(key, dict(fields.labels))

    def forget(self, key: str) -> None:
        with self._lock:
            self._specs.pop(key, None)
            self._environments.pop(key, None)

    def remap(self, head: str | None) -> None:
        """Recompute every app's paths when the head or the set of apps changed (git is read outside the lock)."""
        with self._lock:
            signature = f"{head}|{len(self._specs)}"
            if head is None or signature == self._mapped:
                return
            held = list(self._specs.items())
        apps = [(key, appmap.expand_fields(fields)) for key, fields in held]
        url = self.watched_url
        roots = {key: appmap.render_roots(app, url) for key, app in apps}
        try:
            manifests = appmap.application_manifests(
                self.repo.yaml_files(head, appmap.manifest_directories([a for _, a in apps], url))
            )
            inputs = self._renderer.inputs(head, roots)
        except (RetryLater, NeedsHuman, ValueError) as exc:
            self.log.warning("app_mapping_failed", error=str(exc))
            return
        paths = {
            key: appmap.app_paths(app, url, manifests.get(str(app["metadata"]["name"])), inputs.get(roots[key], ()))
            for key, app in apps
        }
        with self._lock:
            self._paths = paths
            self._mapped = signature

    def has_paths(self, key: str) -> bool:
        return key in self._paths

    def paths_of(self, key: str) -> tuple[str, ...]:
        return self._paths.get(key, ())

    def metadata(self, key: str) -> dict[str, Any]:
        fields = self._specs.get(key)
        return dict(appmap.expand_fields(fields)["metadata"]) if fields else {}

    def environment(self, key: str) -> str:
        known = self._environments.get(key)
        return environment_of(key) if known is None else known

    def specs(self) -> dict[str, appmap.Fields]:
        with self._lock:
            return dict(self._specs)

    def copies(self) -> tuple[Mapping[str, dict[str, Any]], dict[str, tuple[str, ...]]]:
        """Every app's mapping fields (expanded as read) and paths, copied at once (blame's input)."""
        with self._lock:
            return appmap.ExpandedFields(dict(self._specs)), dict(self._paths)

    def ref(self, key: str) -> tuple[str, str]:
        """(name, namespace) to ask Argo CD about the app stored under `key`."""
        meta = self.metadata(key)
        return str(meta.get("name") or key.rsplit("/", 1)[-1]), str(meta.get("namespace") or "")

    def context(self, key: str, last: AppSnapshot | None, good_revisions: tuple[str, ...]) -> AppContext:
        """What is known about one app (with the watcher's `last` snapshot), and every app's fields and paths."""
        specs, paths = self.copies()
        meta = (specs.get(key) or {}).get("metadata") or {}
        name, namespace = self.ref(key)
        return AppContext(
            key=key,
            name=name,
            namespace=namespace,
            annotations=dict(meta.get("annotations") or {}),
            last=last,
            good_revisions=good_revisions,
            specs=specs,
            paths=paths,
        )


class RendererReads:
    """What each app's renderer reads outside its source directories (render_inputs), from the repo at a revision.

    Reads only the definition files (Chart.yaml, kustomization files) of the directories the walk reaches, a
    round per level of references. A directory's references are kept per revision and parsed again only when
    its files changed, so a new head costs one ls-tree and local blob reads, and a new app at the same head only
    the directories nobody reached before.
    """

    def __init__(self, repo: WatchedRepo):
        self.repo = repo
        self.log = get_logger()
        self._rev: str | None = None
        self._refs: dict[str, render_inputs.DirectoryRefs] = {}  # at self._rev
        self._parsed: dict[str, tuple[dict[str, str], render_inputs.DirectoryRefs]] = {}  # by the files' content

    def inputs(self, rev: str, roots: Mapping[str, tuple[str, ...]]) -> dict[tuple[str, ...], tuple[str, ...]]:
        """Each distinct root tuple -> the paths its renderer reads outside the roots (apps share charts)."""
        if rev != self._rev:
            self._parsed = {d: v for d, v in self._parsed.items() if d in self._refs}  # forget what nobody reached
            self._rev, self._refs = rev, {}
        distinct = set(roots.values())
        for _ in range(render_inputs.MAX_DEPTH + 2):  # each round reads one more level of references
            unread = {d for r in distinct for d in render_inputs.closure(r, self._refs).unread}
            if not unread:
                break
            self._read(rev, unread)
        found = {r: render_inputs.closure(r, self._refs) for r in distinct}
        cut = sorted(k for k, r in roots.items() if found[r].truncated)
        if cut:
            self.log.warning(
                "renderer_inputs_truncated",
                apps=len(cut),
                first=cut[:5],
                max_depth=render_inputs.MAX_DEPTH,
                max_directories=render_inputs.MAX_DIRECTORIES,
            )
        return {r: f.paths for r, f in found.items()}

    def _read(self, rev: str, directories: set[str]) -> None:
        texts: dict[str, dict[str, str]] = {d: {} for d in directories}
        for path, text in self.repo.files_named(rev, directories, render_inputs.DEFINITION_FILES).items():
            directory, _, name = path.rpartition("/")
            texts.setdefault(directory, {})[name] = text
        for directory, files in texts.items():
            cached = self._parsed.get(directory)
            if cached is None or cached[0] != files:
                cached = (files, render_inputs.references(directory, files))
                self._parsed[directory] = cached
            self._refs[directory] = cached[1]
