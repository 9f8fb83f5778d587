"""The simulator's model of Helm's template step for a chart in the repo: its `file://` dependencies must exist,
every template must parse, and every named template it includes must be defined by the chart or a dependency.

That is what lets a commit that touches only a shared library chart break the apps whose charts depend on it,
as `helm dependency build` + `helm template` would in Argo CD's repo server.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

import yaml

INCLUDE = re.compile(r'\{\{-?\s*(?:include|template)\s+"([^"]+)"')
DEFINE = re.compile(r'\{\{-?\s*define\s+"([^"]+)"')
TEMPLATE_SUFFIXES = (".yaml", ".yml", ".tpl", ".txt")


def template_error(chart_dir: str, files: dict[str, str], read_tree: Callable[[str], dict[str, str]]) -> str | None:
    """Helm's error for the chart at `chart_dir` (whose files are `files`, path -> text), or None when it renders.
    `read_tree(dir)` gives every file under a dependency's directory; a chart without file:// dependencies is
    left to the rest of the simulator (no reads)."""
    if not _local_dependencies(chart_dir, _chart(files.get(f"{chart_dir}/Chart.yaml"))):
        return None
    templates: dict[str, str] = {}  # "chart-name/templates/x.yaml" -> text, for the chart and its dependencies
    pending, seen = [chart_dir], {chart_dir}
    while pending:
        directory = pending.pop()
        tree = files if directory == chart_dir else read_tree(directory)
        chart = _chart(tree.get(f"{directory}/Chart.yaml"))
        if chart is None:
            return f"Error: directory {directory} not found or has no valid Chart.yaml"
        name = str(chart.get("name") or posixpath.basename(directory))
        for path, text in tree.items():
            rel = path[len(directory) + 1 :]
            if rel.startswith("templates/") and rel.endswith(TEMPLATE_SUFFIXES):
                templates[f"{name}/{rel}"] = text
        for target in _local_dependencies(directory, chart):
            if target not in seen:
                seen.add(target)
                pending.append(target)
    return _parse_error(templates) or _missing_template(templates)


def _local_dependencies(directory: str, chart: dict[str, Any] | None) -> list[str]:
    deps = (chart or {}).get("dependencies") or []
    refs = [str(d.get("repository") or "") for d in deps if isinstance(d, dict)]
    return [
        posixpath.normpath(posixpath.join(directory, r.removeprefix("file://")))
        for r in refs
        if r.startswith("file://")
    ]


def _chart(text: str | None) -> dict[str, Any] | None:
    try:
        chart = yaml.safe_load(text) if text is not None else None
    except yaml.YAMLError:
        return None
    return chart if isinstance(chart, dict) else None


def _parse_error(templates: dict[str, str]) -> str | None:
    for name, text in sorted(templates.items()):
        if text.count("{{") != text.count("}}"):
            return f'parse error at ({name}): unclosed action in template "{name}"'
    return None


def _missing_template(templates: dict[str, str]) -> str | None:
    defined = {d for text in templates.values() for d in DEFINE.findall(text)}
    for name, text in sorted(templates.items()):
        for wanted in INCLUDE.findall(text):
            if wanted not in defined:
                return (
                    f'template: {name}: executing "{name}" at <include "{wanted}" .>: error calling include: '
                    f'template: no template "{wanted}" associated with template "gotpl"'
                )
    return None
