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


M_MMAP_THRESHOLD = -3  # glibc's mallopt(3) parameter
LARGE_BUFFER = 128 * 1024


def keep_large_buffers_apart() -> None:
    """Allocate every buffer of 128 KiB or more (a list body, its chunks, its text) in a mapping of its own, so its
    free gives it back to the OS at once. Without this, glibc raises the threshold after the first such free (up
    to 32 MiB), later list bodies come from the heap, and the heap stays at the peak of a poll: +15 MB at 10k apps."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER)


def release_free_memory() -> None:
    """Give the freed parse of a large list back to the OS (glibc keeps it otherwise; RSS would stay at peak)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
