"""Paths of the real tools and of ../shared/reference."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"


def prometheus_tool(name: str) -> str:
    """Path of Debian's prometheus or promtool: a failure in CI (which installs them), a skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} missing: .ci/run installs Debian's prometheus package")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return path


def reference(*parts: str) -> Path:
    path = SHARED.joinpath("reference", *parts)
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared must sit beside the checkout")
    return path
