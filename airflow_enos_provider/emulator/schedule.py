"""A flow's own schedule: the times EnOS starts a periodic instance of it without being asked.

get_flow.md: a periodic flow (``type`` 1) has ``freq``, "a 7-character CronTab expression" in the
Quartz syntax it links to (seconds, minutes, hours, day of month, month, day of week, optional
year; ``"0 0 0 * * ? *"`` in its sample), and ``active``, whether that schedule is started (1) or
paused (0). The emulator reads the common subset of Quartz (numbers, ``*``, ``?``, ranges, lists,
steps, month and day names) and refuses the rest (``L``, ``W``, ``#``) naming it; its times are UTC,
the zone its Get Timezone reports. ``every_ms`` is an emulator-only test aid, not EnOS: a fixed
period shorter than any cron's one second (the benchmark's "every 100 ms").
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = ["MAX_CATCH_UP", "Cron", "Schedule"]

#: The most scheduled instances one read materializes per flow: after a long jump of the clock the
#: latest ones are created, the older fire times are dropped (what EnOS does with fire times it
#: missed is undocumented).
MAX_CATCH_UP = 1000
# How far back a cron's fire times are looked for after a jump of the clock (bounds the day loop).
_MAX_LOOK_BACK_DAYS = 366 * 5
# Quartz's English names, whatever the process's locale (calendar.month_abbr follows LC_TIME).
_MONTHS = {
    name: n
    for n, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1
    )
}
_DAYS = {name.upper(): n for n, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}


def _field(text: str, low: int, high: int, names: dict[str, int], what: str) -> frozenset[int] | None:
    """Return the values one cron field allows, or None for ``*``/``?`` (every value)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if spec == "*":
                first, last = low, high
            else:
                start, _, end = spec.partition("-")
                first = _value(start, names)
                last = _value(end, names) if end else (high if step_text else first)
        except ValueError:
            supported = "numbers, names, *, ?, -, /, ,"
            raise ValueError(f"cron {what} {text!r}: {part!r} is not supported ({supported})") from None
        if not low <= first <= last <= high or step < 1:
            raise ValueError(f"cron {what} {text!r}: {part!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int]) -> int:
    return names[text.upper()] if text.upper() in names else int(text)


@dataclass(frozen=True)
class Cron:
    """A Quartz cron expression: ``sec min hour day-of-month month day-of-week [year]`` (UTC).

    :param expression: the expression, as Get Flow's ``freq`` shows it.
    """

    expression: str

    def __post_init__(self) -> None:
        self._fields()  # refuse a bad expression when the flow is added, not at a read

    def _fields(self) -> list[frozenset[int] | None]:
        parts = self.expression.split()
        if len(parts) not in (6, 7):
            raise ValueError(
                f"cron {self.expression!r}: Quartz cron has 6 or 7 fields "
                "(sec min hour day month weekday [year])"
            )
        parts += ["*"] * (7 - len(parts))
        limits = ((0, 59, "second"), (0, 59, "minute"), (0, 23, "hour"), (1, 31, "day of month"),
                  (1, 12, "month"), (1, 7, "day of week"), (1970, 2099, "year"))  # fmt: skip
        names: tuple[dict[str, int], ...] = (
            {},
            {},
            {},
            {},
            _MONTHS,
            _DAYS,
            {},
        )
        return [
            _field(text, low, high, name_map, what)
            for text, (low, high, what), name_map in zip(parts, limits, names, strict=True)
        ]

    def fire_times(self, after: float, until: float) -> Iterator[float]:
        """Yield the times in ``(after, until]`` the expression names, latest first (epoch seconds)."""
        seconds, minutes, hours, days, months, weekdays, years = self._fields()
        first = datetime.fromtimestamp(after, UTC).date()
        day = datetime.fromtimestamp(until, UTC).date()
        first = max(first, day - timedelta(days=_MAX_LOOK_BACK_DAYS))
        while day >= first:
            if _day_matches(day, days, months, weekdays, years):
                midnight = calendar.timegm(day.timetuple())
                for hour in sorted(hours if hours is not None else range(24), reverse=True):
                    for minute in sorted(minutes if minutes is not None else range(60), reverse=True):
                        for second in sorted(seconds if seconds is not None else range(60), reverse=True):
                            when = midnight + hour * 3600 + minute * 60 + second
                            if when <= after:
                                return
                            if when <= until:
                                yield float(when)
            day -= timedelta(days=1)


def _day_matches(
    day: date,
    days: frozenset[int] | None,
    months: frozenset[int] | None,
    weekdays: frozenset[int] | None,
    years: frozenset[int] | None,
) -> bool:
    weekday = day.isoweekday() % 7 + 1  # Quartz: 1 = Sunday ... 7 = Saturday
    return all(
        allowed is None or value in allowed
        for value, allowed in ((day.day, days), (day.month, months), (weekday, weekdays), (day.year, years))
    )


@dataclass
class Schedule:
    """When a flow's periodic instances fall due: a cron, or (test aid) a fixed period in ms.

    :param cron: the Quartz expression, or None.
    :param every_ms: emulator-only test aid: a period in milliseconds from ``origin``, or None.
    :param origin: the clock time the period counts from (when the flow was added).
    :param until: the clock time up to which fire times have been materialized.
    """

    cron: Cron | None
    every_ms: int | None
    origin: float
    until: float

    def due(self, now: float, limit: int = MAX_CATCH_UP) -> list[float]:
        """Return the fire times in ``(until, now]``, oldest first, at most the latest ``limit``."""
        after, self.until = self.until, max(self.until, now)
        if now <= after:
            return []
        if self.cron is not None:
            times = []
            for when in self.cron.fire_times(after, now):
                times.append(when)
                if len(times) >= limit:
                    break
            return times[::-1]
        assert self.every_ms is not None
        period = self.every_ms / 1000
        first = int((after - self.origin) // period) + 1
        last = int((now - self.origin) // period)
        return [self.origin + k * period for k in range(max(first, last - limit + 1), last + 1)]

    def skip_to(self, now: float) -> None:
        """Count no fire time up to ``now`` (the schedule was paused until then)."""
        self.until = max(self.until, now)
