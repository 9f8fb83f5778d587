"""A JSON list body ({"metadata": ..., "items": [...]}) decoded one item at a time.

At 10k apps Argo CD's list is ~8 MB of JSON and ~40 MB of Python objects once decoded whole; the watcher only
needs one item's objects at a time, so it keeps the text and decodes each item as it reads it. The C scanner
does the decoding (as json.loads does), so this costs about what json.loads does, without its peak.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator
from typing import Any

from watcher.domain import UnreadableItem

# The C scanner behind json.loads (typeshed does not list these two).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_SPACE = re.compile(r"[ \t\n\r]*")


def array_items(text: str, key: str = "items") -> Generator[Any, None, None]:
    """The elements of the array under `key` in the top-level object, each decoded as the caller asks for it.
    `null` or no such key is no items; the other keys are decoded and dropped. Raises ValueError where the text
    stops being what is expected, which may be after some items were yielded: the caller drops what it has."""
    pos = _expect(text, 0, "{")
    if _at(text, pos) == "}":
        _end(text, pos + 1)
        return
    seen = False
    while True:
        name, pos = scanstring(text, _expect(text, pos, '"'))
        pos = _expect(text, pos, ":")
        if name == key:
            if seen:
                raise ValueError(f"{key!r} twice in one object")
            seen = True
            pos = yield from _elements(text, pos)
        else:
            _, pos = _value(text, pos)
        pos = _skip(text, pos)
        if _at(text, pos) == "}":
            _end(text, pos + 1)
            return
        pos = _expect(text, pos, ",")


def _elements(text: str, pos: int) -> Generator[Any, None, int]:
    """Yield the array's elements (null is none); return the position after it."""
    if text.startswith("null", pos):
        return pos + 4
    if _at(text, pos) != "[":
        raise ValueError(f"not an array at char {pos}")
    pos = _skip(text, pos + 1)
    if _at(text, pos) == "]":
        return pos + 1
    while True:
        try:
            item, pos = _value(text, pos)
        except RecursionError:  # nested past the interpreter's depth: this item only, not the list
            end = _skip_value(text, pos)
            item = UnreadableItem(_name_in(text[pos:end]), f"nested too deep to decode ({end - pos} chars)")
            pos = end
        yield item
        pos = _skip(text, pos)
        if _at(text, pos) == "]":
            return pos + 1
        pos = _expect(text, pos, ",")


def _skip_value(text: str, pos: int) -> int:
    """The position after the object or array at `pos`, found without recursion (brackets counted outside
    strings): how an item too deep to decode is stepped over."""
    depth = 0
    i = pos
    while i < len(text):
        c = text[i]
        if c == '"':
            _, i = scanstring(text, i + 1)
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"an item starting at char {pos} never ends")


_NAME = re.compile(r'"metadata"\s*:\s*\{[^{}]*?"name"\s*:\s*"([^"\\]{1,253})"')


def _name_in(item: str) -> str | None:
    found = _NAME.search(item[:4096])  # Argo CD writes metadata first; a deep item's name is near its start
    return found[1] if found else None


def _value(text: str, pos: int) -> tuple[Any, int]:
    try:
        return _SCAN(text, pos)
    except StopIteration:
        raise json.JSONDecodeError("Expecting value", text, pos) from None


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _at(text: str, pos: int) -> str:
    return text[pos : pos + 1]


def _expect(text: str, pos: int, char: str) -> int:
    """The position after `char`, skipping whitespace before and after it (after a quote: none)."""
    pos = _skip(text, pos)
    if _at(text, pos) != char:
        found = repr(_at(text, pos)) if pos < len(text) else "the end"
        raise ValueError(f"expected {char!r} at char {pos}, found {found}")
    return pos + 1 if char == '"' else _skip(text, pos + 1)


def _end(text: str, pos: int) -> None:
    if _skip(text, pos) != len(text):
        raise ValueError(f"extra data after the object at char {pos}")
