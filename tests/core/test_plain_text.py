"""Bidirectional control characters shown by name (core/plain_text.py)."""

from __future__ import annotations

import pytest

from watcher.core.plain_text import visible, visible_all

CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)]


@pytest.mark.parametrize("char", CONTROLS)
def test_every_bidi_control_is_shown_by_name(char: str) -> None:
    assert visible(f"a{char}b") == f"a<U+{ord(char):04X}>b"
    assert visible_all({"k": [f"x{char}", 3]}) == {"k": [f"x<U+{ord(char):04X}>", 3]}


def test_other_text_is_left_as_it_is() -> None:
    assert visible("plate-api: bump to 1.2 — ça va, 日本") == "plate-api: bump to 1.2 — ça va, 日本"
