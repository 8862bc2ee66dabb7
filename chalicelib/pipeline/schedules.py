"""When a schedule of lakehouse.toml's `[schedules]` fires: EventBridge's `cron(...)` and `rate(...)` expressions.

The local stage plays the schedules with this (EventBridge does on AWS), and `lakehouse cost` counts a month's runs
of the housekeeping job with it. Cron fields follow EventBridge, not Unix cron (six fields, `?`, `L`, `W`, `#`, days
of the week 1-7 from Sunday): pyawscron evaluates them as EventBridge does ("Cron expressions reference", Amazon
EventBridge User Guide).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.errors import ConfigError

RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
CRON = re.compile(r"^cron\((.+)\)$")
MONTH_DAYS = 30  # a month, as the cost estimate counts it (chalicelib/cost/prices.DAYS)


def _rate(expression: str) -> timedelta | None:
    found = RATE.match(expression)
    if found is None:
        return None
    value, unit = int(found.group(1)), found.group(2).rstrip("s")
    if value < 1:
        raise ConfigError("lakehouse.toml", "schedules", expression, "a rate must be at least 1")
    return timedelta(**{f"{unit}s": value})  # minutes, hours or days


def next_time(expression: str, after: datetime) -> datetime:
    """The first time after `after` (aware, UTC) that the schedule fires. A rate fires every period from `after` (on
    AWS, from when the rule was created)."""
    period = _rate(expression)
    if period is not None:
        return after + period
    found = CRON.match(expression)
    if found is None:
        raise ConfigError("lakehouse.toml", "schedules", expression, "must be cron(...) or rate(N unit)")
    from pyawscron import AWSCron  # type: ignore[import-untyped]  # no type hints shipped

    try:
        fires: datetime = AWSCron(found.group(1)).occurrence(after.astimezone(UTC)).next()
    except Exception as exc:  # pyawscron raises plain errors on fields it cannot read
        raise ConfigError(
            "lakehouse.toml", "schedules", expression, f"not an EventBridge cron expression: {exc}"
        ) from None
    if fires is None:
        raise ConfigError("lakehouse.toml", "schedules", expression, "never fires again")
    return fires


def runs_per_month(expression: str, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> int:
    """How often the schedule fires in MONTH_DAYS days from `start`."""
    month = timedelta(days=MONTH_DAYS)
    period = _rate(expression)
    if period is not None:
        return month // period
    end, count, when = start + month, 0, start - timedelta(microseconds=1)
    while (when := next_time(expression, when)) < end:
        count += 1
    return count


@dataclass
class Schedule:
    """One schedule played by a loop that looks every so often (the local stage's scheduler): due once each time the
    expression fires. Its first look only sets the next time; a changed expression starts again from then."""

    name: str
    expression: str | None = None
    next_at: datetime | None = None

    def due(self, expression: str | None, now: datetime) -> bool:
        """Whether the schedule fired since the last look (None: the schedule is not set)."""
        if expression is None:  # not scheduled
            self.expression = self.next_at = None
            return False
        if expression != self.expression or self.next_at is None:
            self.expression, self.next_at = expression, next_time(expression, now)
            return False
        if now < self.next_at:
            return False
        self.next_at = next_time(expression, now)
        return True
