"""The middle layer's fixture: a Rig (tests/support/reverter_rig.py) per test, on a SQLite file in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import watcher.revert.retry_queue
from tests.support.reverter_rig import FakeClock, Rig, settings_for
from watcher.store import Store


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """One clock for the test; the reverter's retry queue reads it too (it calls time.monotonic otherwise)."""
    fake = FakeClock()
    monkeypatch.setattr(watcher.revert.retry_queue, "time", fake)
    return fake


@pytest.fixture
def rig(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., Rig]]:
    """rig(mode="push", **revert_settings) -> a Rig; its store is closed after the test."""
    made: list[Rig] = []

    def make(mode: str = "push", **revert: Any) -> Rig:
        root = tmp_path / f"rig{len(made)}"
        settings = settings_for(root, mode, **revert)
        made.append(Rig(settings, clock, Store(settings.store.url)))
        return made[-1]

    yield make
    for r in made:
        r.store.close()
