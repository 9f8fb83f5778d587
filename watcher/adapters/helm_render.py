"""An app's Helm chart rendered at one commit by the real Helm engine (helm_python, Helm's Go SDK in-process),
as Argo CD's repo server runs `helm template`: the chart, its file:// dependencies, the app's value files.

helm_python is optional at run time (the `helm` extra): without it nothing is rendered and narrowing falls back
to each commit's diff. Rendering is in-process and takes milliseconds; a chart it cannot render is an answer
(the engine's error), not a failure of the watcher.
"""

from __future__ import annotations

import importlib.util
import posixpath
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from watcher.core.narrow import Rendered
from watcher.logs import get_logger

# The engine is a bundled Go library: an image without it still narrows by diff. It is loaded when first needed,
# not at import: loading it adds ~51 MB to the process (bench/run.py --parts memory at 10k apps: 161 MB with it
# imported at start, 111 MB without), and Argo CD's own renderer is asked first (revert/reads.py).
_NOT_LOADED: Any = object()
helm_python: Any = _NOT_LOADED


def _engine() -> Any:
    """helm_python, imported on the first render; None when the `helm` extra is not installed."""
    global helm_python
    if helm_python is _NOT_LOADED:
        engine: Any = None
        try:
            import helm_python as engine
        except ImportError:  # pragma: no cover - depends on the install
            pass
        helm_python = engine
    return helm_python


MAX_DEPENDENCY_DEPTH = 4


def available() -> bool:
    """Whether the engine can be loaded (without loading it)."""
    if helm_python is _NOT_LOADED:
        return importlib.util.find_spec("helm_python") is not None
    return helm_python is not None


def render_app(
    files: Mapping[str, str], chart_dir: str, value_files: Sequence[str], release: str, namespace: str
) -> Rendered | None:
    """The objects `helm template` makes of the chart at `chart_dir` (repo paths -> text in `files`), or the
    engine's error; None when the engine is not installed or the chart is not in `files`."""
    if f"{chart_dir}/Chart.yaml" not in files:
        return None
    engine = _engine()
    if engine is None:
        return None
    values: dict[str, Any] = {}
    try:
        for name in value_files:
            text = files.get(posixpath.normpath(posixpath.join(chart_dir, name)))
            if text is None:
                return Rendered(error=f"Error: open {name}: no such file or directory")
            values = _merge(values, yaml.safe_load(text) or {})
    except yaml.YAMLError as exc:
        return Rendered(error=f"Error: failed to parse {name}: {exc}")
    with tempfile.TemporaryDirectory(prefix="sw-render-") as tmp:
        root = Path(tmp) / posixpath.basename(chart_dir)
        _write_chart(files, chart_dir, root, 0)
        try:
            chart = engine.Chart.load(str(root))
            try:
                out = chart.render(values, name=release, namespace=namespace)
            finally:
                chart.close()
            objects = [d for n, t in sorted(out.items()) if n.endswith((".yaml", ".yml")) for d in _docs(t)]
        except (engine.HelmError, yaml.YAMLError) as exc:
            return Rendered(error=str(exc))
    return Rendered(tuple(objects))


def _write_chart(files: Mapping[str, str], chart_dir: str, root: Path, depth: int) -> None:
    """Copy the chart's files to `root`, and each file:// dependency into `root/charts/<name>` (what
    `helm dependency build` leaves there)."""
    prefix = chart_dir + "/"
    for path, text in files.items():
        if path.startswith(prefix):
            target = root / path[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    try:
        meta = yaml.safe_load(files.get(prefix + "Chart.yaml", "")) or {}
    except yaml.YAMLError:
        return  # Helm says what is wrong with it when it loads the chart
    for dep in meta.get("dependencies") or [] if isinstance(meta, dict) else []:
        repo = str(dep.get("repository") or "") if isinstance(dep, dict) else ""
        if not repo.startswith("file://") or depth >= MAX_DEPENDENCY_DEPTH:
            continue
        source = posixpath.normpath(posixpath.join(chart_dir, repo.removeprefix("file://")))
        if not any(p.startswith(source + "/") for p in files):
            get_logger().info("helm_dependency_not_read", chart=chart_dir, dependency=source)
            continue
        _write_chart(files, source, root / "charts" / str(dep.get("name") or posixpath.basename(source)), depth + 1)


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def _merge(a: dict[str, Any], b: Any) -> dict[str, Any]:
    if not isinstance(b, dict):
        return a
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
