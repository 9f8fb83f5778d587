"""The layering contract (pyproject's [tool.importlinter]) holds for the code, and it catches a breach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(tree)}
    return subprocess.run(
        [LINT, "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_code(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "watcher", tree / "watcher", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_code_keeps_the_layering_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "named"),
    [
        ("core/detect.py", "import watcher.adapters.gitrepo", "watcher.adapters"),  # a pure module reaching git
        ("core/policy.py", "import sqlalchemy", "sqlalchemy"),  # a pure module reaching the database
        ("domain.py", "import watcher.observe.cycle", "watcher.observe"),  # an upward import
        ("revert/reverter.py", "import watcher.notify.notifier", "watcher.notify"),  # the wings stay independent
        ("core/a_new_rule.py", "import httpx", "httpx"),  # a new file in core/ is checked without editing the contract
        ("revert/reads.py", "import watcher.adapters.helm_render", "watcher.adapters"),  # a wing reaching an adapter
        ("observe/a_new_source.py", "import watcher.adapters.argocd", "watcher.adapters"),  # a new wing file too
    ],
)
def test_a_breach_of_the_contract_fails_the_check(tmp_path: Path, module: str, line: str, named: str) -> None:
    tree = copy_of_the_code(tmp_path)
    path = tree / "watcher" / module
    before = path.read_text() if path.exists() else ""
    path.write_text(before + f"\n{line}  # noqa\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and named in result.stdout
