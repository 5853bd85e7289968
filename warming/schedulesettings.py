"""`[[schedules]]`: batches Celery beat starts on a cron line or an interval.

Beside `warming.settings` (which re-exports it), like `warming.cdnsettings`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from warming import defaults

__all__ = ["ScheduleSettings", "parse_duration_s"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CRON_FIELD = re.compile(r"^[0-9*/,\-A-Za-z]+$")


def parse_duration_s(text: str) -> float | None:
    """Seconds in `90s`, `15m`, `1h`, `7d`, `2w`; None for anything else."""
    m = _DURATION.match(text)
    return float(m.group(1)) * _UNIT_S[m.group(2)] if m else None


class ScheduleSettings(BaseModel):
    """One schedule: when (`cron` or `every`), what (one or more sources), how."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Five fields, minute hour day-of-month month day-of-week, in UTC: "*/15 * * * *".
    cron: str | None = None
    # An interval: "15m", "1h", "1d".
    every: str | None = None
    sitemap: str | None = None  # a URL or a path on site.base_url; robots.txt works too
    file: str | None = None  # one URL or path a line, read on the worker at each run
    tags: list[str] = Field(default_factory=list)
    urls: list[str] = Field(default_factory=list)  # URLs or paths
    # An analytics CSV export or access log, read on the worker at each run: its `top`
    # most visited URLs (all without `top`), most visited first.
    analytics: str | None = None
    top: int | None = Field(default=None, ge=1)
    priority: Literal["high", "normal", "bulk"] = defaults.SCHEDULE_PRIORITY
    purge: bool = defaults.SCHEDULE_PURGE
    # Sitemaps: only pages whose lastmod is after the previous run (all on the first run).
    changed_only: bool = defaults.SCHEDULE_CHANGED_ONLY
    exclude: list[str] = Field(default_factory=list)
    limit: int | None = Field(default=None, ge=1)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        fields = v.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ValueError("must be five cron fields: minute hour day month weekday")
        from celery.schedules import crontab

        minute, hour, day, month, weekday = fields
        try:
            crontab(minute, hour, day_of_month=day, month_of_year=month, day_of_week=weekday)
        except ValueError as e:
            raise ValueError(f"is not a valid cron line: {e}") from None
        return " ".join(fields)

    @field_validator("every")
    @classmethod
    def _every(cls, v: str | None) -> str | None:
        if v is not None:
            s = parse_duration_s(v)
            if s is None or s < defaults.SCHEDULE_MIN_INTERVAL_S:
                raise ValueError(
                    f"must be an interval like '15m', '1h' or '1d', at least "
                    f"{defaults.SCHEDULE_MIN_INTERVAL_S:g} s"
                )
        return v

    @model_validator(mode="after")
    def _when_and_what(self) -> ScheduleSettings:
        if (self.cron is None) == (self.every is None):
            raise ValueError("needs exactly one of cron or every")
        if not (self.sitemap or self.file or self.tags or self.urls or self.analytics):
            raise ValueError("needs something to warm: sitemap, file, tags, urls or analytics")
        return self

    @property
    def every_s(self) -> float | None:
        return parse_duration_s(self.every) if self.every else None

    def interval_s(self, now: datetime | None = None) -> float:
        """Seconds from one run to the next (a cron line's next gap after `now`)."""
        every = self.every_s
        if every:
            return every
        from celery.schedules import crontab

        assert self.cron is not None
        minute, hour, day, month, weekday = self.cron.split()
        c = crontab(minute, hour, day_of_month=day, month_of_year=month, day_of_week=weekday)
        first = (now or datetime.now(UTC)) + c.remaining_estimate(now or datetime.now(UTC))
        return max(60.0, float(c.remaining_estimate(first).total_seconds()))

    @property
    def when(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {self.every}"
