"""Pure: whether one change undoes others, judged by content (the lines each removes and adds), never by words.

A commit message, a trailer, an author's name and email are what anyone types; what a commit does to the files
is what Argo CD deploys. A change is kept as `Delta`: per file, each line's net count (added minus removed), so
the same edit made at another offset (a revert merged three-way over later edits) compares equal, and several
commits add up. A binary file counts its blob ids as lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Delta = Mapping[str, Mapping[str, int]]  # file -> line text -> net count (added - removed)


def delta_of_diff(diff: str) -> dict[str, dict[str, int]]:
    """`git diff -U0 --full-index --no-renames --src-prefix=a/ --dst-prefix=b/` output -> its Delta."""
    out: dict[str, dict[str, int]] = {}
    lines: dict[str, int] = {}
    old_blob = new_blob = ""
    in_hunk = False  # before a file's first @@, "--- a/x" and "+++ b/x" are headers; inside a hunk, changed lines
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            lines, in_hunk = out.setdefault(line.split(" b/", 1)[-1], {}), False
        elif line.startswith("@@"):
            in_hunk = True
        elif not in_hunk:
            if line.startswith("index "):
                old_blob, _, new_blob = line.split()[1].partition("..")
            elif line.startswith("Binary files "):
                _count(lines, f"\0blob {old_blob}", -1)
                _count(lines, f"\0blob {new_blob}", 1)
        elif line.startswith("+"):
            _count(lines, line[1:], 1)
        elif line.startswith("-"):
            _count(lines, line[1:], -1)
    return {f: d for f, d in out.items() if d}


def _count(lines: dict[str, int], text: str, n: int) -> None:
    lines[text] = lines.get(text, 0) + n
    if not lines[text]:
        del lines[text]


def added_up(deltas: Iterable[Delta]) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for d in deltas:
        for f, lines in d.items():
            for text, n in lines.items():
                _count(total.setdefault(f, {}), text, n)
    return {f: d for f, d in total.items() if d}


def undoes(change: Delta, undone: Sequence[Delta]) -> bool:
    """Is `change` exactly the inverse of `undone` (added up) on every file either touches, with something to
    undo? Callers pass both restricted to the files in question (the app's paths, the files a revert touched)."""
    target = added_up(undone)
    if not target:
        return False
    mine = added_up([change])
    files = set(target) | set(mine)
    return all({t: -n for t, n in target.get(f, {}).items()} == mine.get(f, {}) for f in files)
