"""Prometheus' text format for the series we write ourselves: the bytes prometheus_client's generate_latest writes,
one line at a time, so that a line can be kept and written again while its app has not changed."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.utils import floatToGoString


def escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def header(name: str, kind: str, documentation: str) -> str:
    """`# HELP` and `# TYPE` of a family; `name` as exposed (a counter's with `_total`)."""
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


def sample(name: str, labels: Sequence[tuple[str, str]], value: float) -> str:
    """One sample line; labels sorted by name, as prometheus_client writes them (our names need no escaping)."""
    inner = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels))
    return f"{name}{{{inner}}} {floatToGoString(value)}\n" if inner else f"{name} {floatToGoString(value)}\n"
