"""One codec between the frozen domain records and JSON (rows, evidence, HTTP views): pydantic TypeAdapters.

Replaces hand-written to/from-JSON pairs: a field added to a record is stored and read back without a second
edit, and a row that does not fit its record fails loudly, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import TypeAdapter

from watcher.core.detect import AppTracker

T = TypeVar("T")


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(cls: type[T]) -> TypeAdapter[T]:
    found = _ADAPTERS.get(cls)
    if found is None:  # built once per record type: building one costs milliseconds
        found = _ADAPTERS[cls] = TypeAdapter(cls)
    return found


def to_json(value: object) -> Any:
    """A record (or anything holding records) as JSON-able data: enums as values, datetimes as ISO text."""
    return _adapter(type(value)).dump_python(value, mode="json")


def from_json(cls: type[T], data: Any) -> T:
    return _adapter(cls).validate_python(data)


def from_row(cls: type[T], row: Any) -> T:
    """A SQLAlchemy row as a record; SQLite hands back naive datetimes, which are UTC here."""
    mapping: Mapping[str, Any] = row._mapping
    return from_json(cls, {k: _utc(v) if isinstance(v, datetime) else v for k, v in mapping.items()})


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def tracker_to_json(t: AppTracker) -> dict[str, Any]:
    return to_json(t)  # type: ignore[no-any-return]


def tracker_from_json(d: Any) -> AppTracker:
    return from_json(AppTracker, d)
