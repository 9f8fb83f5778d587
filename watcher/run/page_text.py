"""How the pages show what they did not write (pure): text from git and Argo CD made inert and clipped, links
checked, shas short with their full form, times in UTC with their age."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MESSAGE_MAX = 2000  # Argo CD's message, a reason, a condition
SUBJECT_MAX = 200
NAME_MAX = 253  # a Kubernetes name

# Characters that change how the text around them is shown (bidi overrides and isolates, as in "Trojan Source",
# CVE-2021-42574) or that a terminal or browser would act on: shown as their code point, never applied.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: object, limit: int) -> str:
    """Untrusted text (git, Argo CD) made inert for display: bidi and control characters shown as `<U+202E>`,
    cut at `limit` characters with the count left out. HTML escaping is the template's (autoescape)."""
    s = "" if text is None else str(text)
    shown = "".join(f"<U+{ord(c):04X}>" if c in BIDI_CONTROLS else c for c in s)
    shown = UNSAFE.sub(lambda m: f"<U+{ord(m.group()):04X}>", shown)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}… ({len(shown) - limit} more characters)"


def safe_url(url: object) -> str | None:
    """Only http(s) links reach an href: a stored URL (a forge's answer) must not be `javascript:`."""
    if not isinstance(url, str) or not re.match(r"https?://[^\s<>\"']+$", url):
        return None
    return url


@dataclass(frozen=True, slots=True)
class Sha:
    """A revision: shown short, the full form in the same element (selectable, and its title)."""

    full: str

    @property
    def short(self) -> str:
        return self.full[:10]


def sha_of(value: object) -> Sha | None:
    return Sha(clean(value, 64)) if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class When:
    """A time in UTC and how long ago it was."""

    iso: str
    text: str
    ago: str


def when(t: datetime | str | None, now: datetime) -> When | None:
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t)
        except ValueError:
            return None
    if t is None:
        return None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return When(t.isoformat(), t.strftime("%Y-%m-%d %H:%M:%S UTC"), age(now - t))


def age(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


# Evidence is stored JSON written by other versions too: a field may be missing or of another type. These read
# one without trusting it (a wrong type reads as nothing), so an odd record shows less instead of failing the page.
def aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def as_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
