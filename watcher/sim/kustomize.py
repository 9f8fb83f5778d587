"""The simulator's model of `kustomize build` for a directory in the repo: every local resource, base, component
and patch it names must exist and parse; what it reads is what the rendered manifests depend on.

Remote bases are skipped (the simulator has no network); generators, transformers and Helm inflation are not
modelled. Enough for an overlay whose base lives outside the app's directory to break on a commit to the base.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

import yaml

NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git::|[a-z][a-z0-9-]*@|github\.com[/:])", re.IGNORECASE)


class BuildError(Exception):
    """kustomize build failed; the message is kustomize's."""


def is_kustomization(files: dict[str, str], directory: str) -> bool:
    """Argo CD renders a directory with Kustomize when it holds a kustomization file (util/app/discovery); of the
    directory's files (path -> text) the simulator lists only YAML, so `Kustomization` without a suffix is left out."""
    return any(f"{directory}/{name}" in files for name in NAMES)


def build(read: Callable[[str], str | None], directory: str) -> dict[str, str]:
    """path -> text of every file `kustomize build directory` reads. `read(path)` is a file's text at the revision
    (None when there is no such file). Raises BuildError as kustomize would."""
    out: dict[str, str] = {}
    _accumulate(read, directory, out, ())
    return out


def _accumulate(read: Callable[[str], str | None], directory: str, out: dict[str, str], stack: tuple[str, ...]) -> None:
    if directory in stack:
        raise BuildError(f"cycle detected: {' -> '.join((*stack, directory))}")
    name, text = next(((n, t) for n in NAMES if (t := read(f"{directory}/{n}")) is not None), ("", None))
    if text is None:
        raise BuildError(f"unable to find one of {list(NAMES)} in directory '{directory}'")
    k = _yaml(f"{directory}/{name}", text)
    out[f"{directory}/{name}"] = text
    for ref in _strings(k, "resources") + _strings(k, "bases") + _strings(k, "components"):
        if REMOTE.match(ref):
            continue
        path = posixpath.normpath(posixpath.join(directory, ref))
        if any(read(f"{path}/{n}") is not None for n in NAMES):  # a directory first: `git show` lists one
            _accumulate(read, path, out, (*stack, directory))
        elif (content := read(path)) is not None:
            _yaml(path, content)
            out[path] = content
        else:
            raise BuildError(
                f"accumulating resources: accumulation err='accumulating resources from '{ref}': "
                f"open {path}: no such file or directory'"
            )
    patches = [p["path"] for p in k.get("patches") or [] if isinstance(p, dict) and isinstance(p.get("path"), str)]
    for ref in patches + [p for p in _strings(k, "patchesStrategicMerge") if "\n" not in p]:
        path = posixpath.normpath(posixpath.join(directory, ref))
        content = read(path)
        if content is None:
            raise BuildError(f"open {path}: no such file or directory")
        out[path] = content
        _yaml(path, content)


def _yaml(path: str, text: str) -> Any:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
        raise BuildError(
            f"MalformedYAMLError: yaml: line {line}: {getattr(exc, 'problem', 'invalid YAML')} in File: {path}"
        ) from None
    return docs[0] if docs and isinstance(docs[0], dict) else {}


def _strings(k: Any, key: str) -> list[str]:
    values = k.get(key) if isinstance(k, dict) else None
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []
