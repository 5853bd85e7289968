"""Countdowns the stages ask for: capped below the broker's visibility timeout."""

from __future__ import annotations

from warming import defaults
from warming.pop.retry import retry_delay
from warming.settings import FetchSettings


def cap(seconds: float) -> float:
    """A countdown Redis will not redeliver early (CELERY_NOTES: ETA vs visibility)."""
    return min(max(seconds, 0.0), defaults.RETRY_AFTER_CAP_S)


def backoff(fetch: FetchSettings, retry_after: float | None, attempt: int) -> float:
    """The wait before `attempt + 1`: the server's Retry-After, else jittered backoff."""
    return retry_delay(
        retry_after,
        attempt,
        fetch.backoff_base_s,
        min(fetch.retry_after_cap_s, defaults.RETRY_AFTER_CAP_S),
    )
