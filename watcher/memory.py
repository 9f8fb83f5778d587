"""Keeping the watcher's memory flat across large list polls: no GC during a parse, freed pages back to the OS."""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any


@contextmanager
def gc_paused() -> Iterator[None]:
    """Parsing a 10k-app list makes ~10^6 acyclic objects; collecting during that only burns CPU."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@lru_cache(maxsize=1)
def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None  # not glibc: nothing to trim


def release_free_memory() -> None:
    """Give the freed parse of a large list back to the OS (glibc keeps it otherwise; RSS would stay at peak)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
