"""Pure: the five-field cron schedules of Argo CD's sync windows, and when a window is active.

Argo CD parses a window's schedule with robfig/cron's standard parser (minute hour day-of-month month
day-of-week, or a descriptor such as `@daily`; pkg/apis/application/v1alpha1/types.go:2976) and evaluates it
in UTC shifted by the window's time zone offset *now* (`scheduleOffsetByTimeZone`, types.go:3041-3049): a window
is active when the first firing after `now + offset - duration` is before `now + offset` (types.go:2985-2990).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # day-of-week 7 is Sunday too
MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
MAX_SCAN = timedelta(days=8)  # a firing further than this from now is not looked for (a yearly window: unknown)


class CronError(ValueError):
    """A schedule this module cannot read: the caller says the window's end is unknown."""


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool  # day-of-month is `*`: only the weekday restricts (and the other way round), as in cron
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        fields = DESCRIPTORS.get(text.strip().lower(), text).split()
        if len(fields) != 5:
            raise CronError(f"cron schedule {text!r} does not have 5 fields")
        sets = [_field(f, lo, hi, i) for i, (f, (lo, hi)) in enumerate(zip(fields, RANGES, strict=True))]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays, fields[2] in ("*", "?"), fields[4] in ("*", "?"))

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        day, weekday = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday


def _field(text: str, lo: int, hi: int, index: int) -> frozenset[int]:
    names = MONTHS if index == 3 else DAYS if index == 4 else {}
    out: set[int] = set()
    for part in text.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body in ("*", "?"):
            start, end = lo, hi
        else:
            first, _, last = body.partition("-")
            start = _value(first, names)
            end = _value(last, names) if last else (hi if step_text else start)
        if not (lo <= start <= end <= hi) or step < 1:
            raise CronError(f"cron field {text!r} is out of range {lo}-{hi}")
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _value(text: str, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    try:
        return int(text)
    except ValueError:
        raise CronError(f"cron value {text!r} is not a number") from None


def zone_offset(zone: str, now: datetime) -> timedelta:
    """The zone's UTC offset now; an unknown zone is UTC (Argo CD logs a warning and uses UTC, types.go:3043-3046)."""
    try:
        offset = now.astimezone(ZoneInfo(zone)).utcoffset() if zone else None
    except (ZoneInfoNotFoundError, ValueError):
        offset = None
    return offset or timedelta(0)


def active_until(schedule: str, duration: timedelta, zone: str, now: datetime) -> datetime | None:
    """When the window that is active at `now` ends (its latest firing + duration, in real time); None when it is
    not active now."""
    cron = Cron.parse(schedule)
    offset = zone_offset(zone, now)
    shifted = (now + offset).astimezone(UTC).replace(second=0, microsecond=0)
    earliest = now + offset - duration
    t = shifted
    while t > earliest and now + offset - t <= MAX_SCAN:
        if cron.matches(t) and t < now + offset:
            return t + duration - offset
        t -= timedelta(minutes=1)
    return None


def next_start(schedule: str, zone: str, now: datetime) -> datetime | None:
    """The next firing after `now` in real time (when an allow window opens), within MAX_SCAN; else None."""
    cron = Cron.parse(schedule)
    offset = zone_offset(zone, now)
    t = (now + offset).astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = t + MAX_SCAN
    while t < end:
        if cron.matches(t):
            return t - offset
        t += timedelta(minutes=1)
    return None
