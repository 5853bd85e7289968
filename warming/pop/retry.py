"""How long to wait before retrying: Retry-After when the server gave one, else backoff."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["backoff_delay", "parse_retry_after", "retry_delay"]

# Share of the wait added as jitter to a Retry-After: enough that thousands of tasks
# told "120" do not come back in the same millisecond, small enough to honour the server.
RETRY_AFTER_JITTER = 0.1
# RFC 9111 section 1.2.2: a delta-seconds too large to represent is read as 2**31.
_MAX_DELTA_S = float(2**31)
# 2.0 ** 1024 raises OverflowError; far past any cap, so the exponent stops here.
_MAX_EXPONENT = 1023

_DELTA_SECONDS = re.compile(r"[0-9]+")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date).

    A date in the past gives 0.0; an absent, negative or unreadable value gives None.
    A naive `now` is taken as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return min(float(text), _MAX_DELTA_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    current = now if now is not None else datetime.now(UTC)
    # HTTP-dates are always GMT (RFC 9110 section 5.6.7); the asctime form carries no zone.
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    return max(0.0, (when - current).total_seconds())


def backoff_delay(
    attempt: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Full-jitter exponential backoff for `attempt` (from 0), never below base_s / 2.

    Uniform in [0, min(cap_s, base_s * 2**attempt)), raised to base_s / 2 so a retry is
    never instantaneous, and never above cap_s.
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    delay = max(base_s / 2, rand() * ceiling)
    return max(0.0, min(delay, cap_s))


def retry_delay(
    retry_after: float | None,
    attempt: int,
    base_s: float,
    cap_s: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds until the next attempt: Retry-After (capped, jittered) when given, else backoff."""
    if retry_after is None or math.isnan(retry_after) or retry_after < 0:
        return backoff_delay(attempt, base_s, cap_s, rand)
    spread = RETRY_AFTER_JITTER * min(max(rand(), 0.0), 1.0)
    if retry_after >= cap_s:
        # The server's wait is already cut short; spread just below the cap, or every task
        # of a 429 storm would come back at exactly cap_s.
        return max(0.0, cap_s * (1.0 - spread))
    return min(retry_after * (1.0 + spread), cap_s)
