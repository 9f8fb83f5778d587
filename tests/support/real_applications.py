"""The real Application objects in tests/fixtures/applications, by name."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "applications"


NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


@functools.cache
def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())
