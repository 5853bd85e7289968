"""Retry-After parsing, backoff bounds and the delay chosen between them."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warming.pop.retry import backoff_delay, parse_retry_after, retry_delay

# Two minutes before the RFC 9110 example date "Wed, 21 Oct 2015 07:28:00 GMT".
NOW = datetime(2015, 10, 21, 7, 26, 0, tzinfo=UTC)


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), ("0", 0.0), (" 5 ", 5.0), ("007", 7.0), ("9" * 5000, float(2**31))],
)
def test_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:28:00 GMT",  # IMF-fixdate
        "Wednesday, 21-Oct-15 07:28:00 GMT",  # obsolete RFC 850
        "Wed Oct 21 07:28:00 2015",  # obsolete asctime, no zone: GMT
    ],
)
def test_http_date_in_the_future(value: str) -> None:
    assert parse_retry_after(value, now=NOW) == 120.0


def test_http_date_in_the_past_is_zero() -> None:
    later = datetime(2015, 10, 21, 8, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=later) == 0.0


def test_naive_now_is_utc() -> None:
    naive = datetime(2015, 10, 21, 7, 27, 30)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=naive) == 30.0


def test_default_now_is_the_clock() -> None:
    seconds = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT")
    assert seconds is not None and seconds > 0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "-5",
        "-0",
        "+5",
        "1.5",
        "1e3",
        "120s",
        "Wed, 99 Oct 2015 07:28:00 GMT",
    ],
)
def test_absent_negative_or_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@given(st.text(max_size=100))
def test_any_text_gives_none_or_a_wait(value: str) -> None:
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


@given(st.integers(min_value=0, max_value=2**31))
def test_any_delta_seconds_round_trips(n: int) -> None:
    assert parse_retry_after(str(n)) == float(n)


@pytest.mark.parametrize(
    ("attempt", "rand", "delay"),
    [
        (0, 0.0, 0.5),  # floor: base/2, never instantaneous
        (0, 0.9, 0.9),
        (3, 0.5, 4.0),  # uniform over [0, 8)
        (4, 0.25, 4.0),
        (4, 0.75, 12.0),
        (10, 0.5, 15.0),  # 2**10 capped at 30
        (-3, 0.9, 0.9),  # a negative attempt counts as the first
    ],
)
def test_backoff_examples(attempt: int, rand: float, delay: float) -> None:
    assert backoff_delay(attempt, 1.0, 30.0, fixed(rand)) == pytest.approx(delay)


def test_backoff_survives_huge_attempts() -> None:
    assert backoff_delay(10**6, 1.0, 30.0, fixed(0.999)) == pytest.approx(29.97)


def test_backoff_cap_below_the_floor_still_caps() -> None:
    assert backoff_delay(0, 10.0, 2.0, fixed(0.0)) == 2.0


@given(
    attempt=st.integers(min_value=0, max_value=5000),
    base=st.floats(min_value=0.01, max_value=100),
    cap=st.floats(min_value=0.01, max_value=10_000),
    rand=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_bounds(attempt: int, base: float, cap: float, rand: float) -> None:
    delay = backoff_delay(attempt, base, cap, fixed(rand))
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    assert delay <= cap
    assert delay <= max(ceiling, base / 2)
    assert delay >= min(base / 2, cap)


@given(
    attempt=st.integers(min_value=0, max_value=40),
    low=st.floats(min_value=0, max_value=1, exclude_max=True),
    high=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_grows_with_the_random_draw(attempt: int, low: float, high: float) -> None:
    low, high = sorted((low, high))
    assert backoff_delay(attempt, 1.0, 60.0, fixed(low)) <= backoff_delay(
        attempt, 1.0, 60.0, fixed(high)
    )


def test_backoff_with_real_randomness_spreads() -> None:
    delays = {backoff_delay(8, 1.0, 300.0) for _ in range(50)}
    assert all(0.5 <= d <= 256.0 for d in delays)
    assert len(delays) > 40


@pytest.mark.parametrize(
    ("retry_after", "rand", "delay"),
    [
        (10.0, 0.0, 10.0),  # exactly what the server asked
        (10.0, 0.5, 10.5),  # plus up to 10%
        (29.0, 0.9, 30.0),  # the jitter never pushes past the cap
        (0.0, 0.7, 0.0),
        (120.0, 0.0, 30.0),  # capped
        (120.0, 0.5, 28.5),  # capped, spread just below the cap
        (math.inf, 0.0, 30.0),
    ],
)
def test_retry_after_is_honoured_and_capped(retry_after: float, rand: float, delay: float) -> None:
    assert retry_delay(retry_after, 3, 1.0, 30.0, fixed(rand)) == pytest.approx(delay)


def test_capped_retry_after_still_spreads() -> None:
    delays = {retry_delay(3600.0, 0, 1.0, 30.0, fixed(r)) for r in (0.1, 0.4, 0.7, 0.95)}
    assert len(delays) == 4


@pytest.mark.parametrize("retry_after", [None, -1.0, math.nan])
def test_no_usable_retry_after_means_backoff(retry_after: float | None) -> None:
    expected = backoff_delay(4, 1.0, 30.0, fixed(0.5))
    assert expected == 8.0
    assert retry_delay(retry_after, 4, 1.0, 30.0, fixed(0.5)) == expected


@given(
    retry_after=st.floats(min_value=0, max_value=1e7),
    cap=st.floats(min_value=0.1, max_value=1000),
    rand=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_retry_delay_bounds(retry_after: float, cap: float, rand: float) -> None:
    delay = retry_delay(retry_after, 0, 1.0, cap, fixed(rand))
    assert 0 <= delay <= cap
    if retry_after < cap:
        assert retry_after <= delay <= retry_after * 1.1 + 1e-9
    else:
        assert delay >= cap * 0.9 - 1e-9
