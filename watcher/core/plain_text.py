"""Pure: text from outside (commit subjects, authors, Argo CD messages) made safe to show where people read it.

Bidirectional control characters (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F) reorder what a reader sees
("Trojan Source", CVE-2021-42574): a commit subject could make Slack, a pull request or a revert message show
another sha or app than the one it names. Each is replaced by its visible name, e.g. `<U+202E>`.
"""

from __future__ import annotations

import re
from typing import Any

BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    return BIDI.sub(lambda m: f"<U+{ord(m[0]):04X}>", text)


def visible_all(value: Any) -> Any:
    """`visible` on every string inside JSON-like data (Slack blocks, a request body)."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {k: visible_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [visible_all(v) for v in value]
    return value
