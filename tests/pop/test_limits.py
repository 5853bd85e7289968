"""ClusterLimiter and ConcurrencyLimit against a real Redis (db 15, keys under a test prefix).

The load tests check when the reserved slots start, not when threads happen to wake: a
slot is known to lie between (before the call + wait) and (after the call + wait), and a
window counts only the slots certainly inside it. A busy machine wakes threads late,
which would bunch the observed sends and fail an exact bound by chance; it only widens
these intervals, so the bound can stay exact.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from tests.support import TEST_REDIS
from warming import keys
from warming.pop.limits import FACTOR_IDLE_TTL_S, MIN_FACTOR, ClusterLimiter, ConcurrencyLimit
from warming.settings import Rate

REDIS_URL = f"{TEST_REDIS}/15"
# Every limit name made by this run starts with this, so cleanup touches nothing else in
# db 15, not even the keys of another run of this file going on at the same time.
NAME_PREFIX = f"test-ratelimit-{uuid.uuid4().hex[:8]}-"

# (earliest, latest) time at which a reserved slot can have started.
Slot = tuple[float, float]


def _connect() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is required under CI=true: {e}", pytrace=False)
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {e}", allow_module_level=True)
    return client


_connect().close()

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def r() -> Iterator[redis.Redis]:
    client = _connect()
    yield client
    pattern = keys.LIMIT.format(name=NAME_PREFIX) + "*"
    for key in client.scan_iter(match=pattern):
        client.delete(key)
    client.close()


def _name() -> str:
    return NAME_PREFIX + uuid.uuid4().hex


def _acquire(limiter: ClusterLimiter, clock: Callable[[], float]) -> Slot | None:
    """Acquire as a caller would; when the reserved slot started, on `clock`."""
    before = clock()
    replied: list[float] = []

    def sleep(seconds: float) -> None:
        replied.append(clock())
        time.sleep(seconds)

    grant = limiter.acquire(max_wait_s=2.0, sleep=sleep)
    if not grant.ok:
        return None
    return before + grant.wait_s, (replied[0] if replied else clock()) + grant.wait_s


def _most_in_window(slots: list[Slot], window_s: float) -> int:
    """The most slots certainly inside one window [t, t + window_s)."""
    slots = sorted(slots)
    best = 0
    for i, (start, _) in enumerate(slots):
        end = start + window_s
        inside = 0
        for earliest, latest in slots[i:]:
            if earliest >= end:
                break
            inside += latest < end
        best = max(best, inside)
    return best


def _busy_s(slots: list[Slot]) -> float:
    """An upper bound on the time from the first slot to the last."""
    return max(latest for _, latest in slots) - min(earliest for earliest, _ in slots)


def _hammer(limiter: ClusterLimiter, threads: int, demand_s: float) -> list[Slot]:
    """Threads that each acquire in a loop for `demand_s`; the slots they got."""
    per_thread: list[list[Slot]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def run(out: list[Slot]) -> None:
        start.wait()
        end = time.monotonic() + demand_s
        while time.monotonic() < end:
            slot = _acquire(limiter, time.monotonic)
            if slot is not None:
                out.append(slot)

    workers = [threading.Thread(target=run, args=(out,)) for out in per_thread]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=10)
    return [slot for out in per_thread for slot in out]


# Hypothesis reports a failure through libcst, which warns on import; with warnings as
# errors that would hide the failing example behind an INTERNALERROR.
@pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")
# No shrinking: each example is ~1 s of real time, and a smaller rate explains nothing more.
@settings(max_examples=6, deadline=None, database=None, phases=[Phase.explicit, Phase.generate])
@given(
    rate=st.integers(min_value=20, max_value=500),
    burst=st.integers(min_value=1, max_value=5),
    threads=st.integers(min_value=1, max_value=8),
    demand_s=st.floats(min_value=0.5, max_value=0.8),
)
def test_threads_never_exceed_the_rate_and_use_most_of_it(
    r: redis.Redis, rate: int, burst: int, threads: int, demand_s: float
) -> None:
    limiter = ClusterLimiter(r, _name(), Rate(rate, 1.0), burst=burst)
    slots = _hammer(limiter, threads, demand_s)
    case = f"{rate}/s burst {burst}, {threads} threads, {len(slots)} grants"

    for window_s in (1.0, 0.25):
        most = _most_in_window(slots, window_s)
        assert most <= rate * window_s + burst + 1, f"{case}: {most} in {window_s} s"
    # The first `burst` go at once; after that one per interval is full use.
    use = (len(slots) - burst) / (_busy_s(slots) * rate)
    assert use >= 0.9, f"{case}: {use:.0%} of the limit"


def _process_worker(
    name: str, rate: str, burst: int, ready: Any, go: Any, until: Any, out: Any
) -> None:
    limiter = ClusterLimiter(redis.Redis.from_url(REDIS_URL), name, Rate.parse(rate), burst)
    slots: list[Slot] = []
    ready.wait()
    go.wait()
    while time.time() < until.value:
        slot = _acquire(limiter, time.time)
        if slot is not None:
            slots.append(slot)
    out.put(slots)


def test_processes_share_one_limit(r: redis.Redis) -> None:
    procs, rate, burst, duration_s = 3, 100, 2, 2.0
    ctx = mp.get_context("spawn")
    ready, go, until, out = ctx.Barrier(procs + 1), ctx.Event(), ctx.Value("d"), ctx.Queue()
    args = (_name(), f"{rate}/s", burst, ready, go, until, out)
    workers = [ctx.Process(target=_process_worker, args=args) for _ in range(procs)]
    for w in workers:
        w.start()
    ready.wait(timeout=30)
    # One deadline for all, so a process that starts late can't stretch the run.
    until.value = time.time() + duration_s
    go.set()
    slots = [slot for _ in workers for slot in out.get(timeout=30)]
    for w in workers:
        w.join(timeout=10)
        assert w.exitcode == 0

    # Each process may hold one reservation that starts just after the deadline.
    assert len(slots) <= rate * duration_s + burst + procs + 1
    assert len(slots) >= 0.9 * rate * duration_s
    assert _most_in_window(slots, 1.0) <= rate + burst + 1


# The tests below use slow rates so that a busy machine pausing between two calls for a
# few tens of milliseconds can't be mistaken for a wrong answer.


def test_burst_goes_at_once_then_one_per_interval(r: redis.Redis) -> None:
    limiter = ClusterLimiter(r, _name(), Rate.parse("2/s"), burst=3)
    waits = [limiter.reserve(max_wait_s=1.0).wait_s for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.4 < waits[3] <= 0.5


def test_refused_reservation_reserves_nothing(r: redis.Redis) -> None:
    limiter = ClusterLimiter(r, _name(), Rate.parse("2/s"))
    assert limiter.reserve(max_wait_s=2.0).wait_s == 0.0
    assert 0.4 < limiter.reserve(max_wait_s=2.0).wait_s <= 0.5

    refused = limiter.reserve(max_wait_s=0.6)
    after = limiter.reserve(max_wait_s=2.0)

    assert not refused.ok
    assert 0.8 < refused.wait_s <= 1.0
    assert after.ok
    # Had the refusal reserved a slot, this one would be an interval (0.5 s) later.
    assert refused.wait_s - 0.25 < after.wait_s <= refused.wait_s


def test_factor_slows_every_process_and_is_clamped(r: redis.Redis) -> None:
    name = _name()
    limiter = ClusterLimiter(r, name, Rate.parse("100/s"))
    other = ClusterLimiter(r, name, Rate.parse("100/s"))

    def achieved() -> tuple[float, float]:
        """The lowest and highest rate the slots can have had."""
        slots = _hammer(limiter, threads=2, demand_s=0.4)
        shortest = max(earliest for earliest, _ in slots) - min(latest for _, latest in slots)
        return (len(slots) - 1) / _busy_s(slots), (len(slots) - 1) / shortest

    full = achieved()
    other.set_factor(0.5)
    assert limiter.factor() == 0.5
    half = achieved()
    assert full[0] >= 90 and full[1] <= 105, full
    assert half[0] >= 45 and half[1] <= 52.5, half

    other.set_factor(0.0)
    assert limiter.factor() == MIN_FACTOR
    first, second = limiter.reserve(max_wait_s=5.0), limiter.reserve(max_wait_s=5.0)
    # One interval at 5% of 100/s is 0.2 s.
    assert 0.15 < second.wait_s - first.wait_s <= 0.2
    other.set_factor(3.0)
    assert limiter.factor() == 1.0


def test_keys_expire_once_idle(r: redis.Redis) -> None:
    name = _name()
    key = keys.LIMIT.format(name=name)
    limiter = ClusterLimiter(r, name, Rate.parse("10/s"), burst=2)
    limiter.reserve(max_wait_s=1.0)
    limiter.reserve(max_wait_s=1.0)
    # The state lives until its TAT, at most two intervals ahead.
    assert 0 < r.pttl(key) <= 201

    limiter.set_factor(0.5)
    r.pexpire(key + ":factor", 1000)
    limiter.reserve(max_wait_s=1.0)
    # Using the limit keeps its slow-down alive.
    assert 1000 < r.pttl(key + ":factor") <= FACTOR_IDLE_TTL_S * 1000

    leases = ConcurrencyLimit(r, name, limit=2, ttl_s=0.2)
    assert leases.try_acquire() is not None
    assert 0 < r.pttl(key + ":leases") <= 200

    time.sleep(0.6)
    assert r.exists(key, key + ":leases") == 0


def test_concurrency_never_exceeds_limit(r: redis.Redis) -> None:
    limit = ConcurrencyLimit(r, _name(), limit=3, ttl_s=5.0)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "held": 0}

    def run() -> None:
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            with limit.hold(max_wait_s=1.0, poll_s=0.002) as ok:
                if not ok:
                    continue
                with lock:
                    state["now"] += 1
                    state["held"] += 1
                    state["peak"] = max(state["peak"], state["now"])
                time.sleep(0.005)
                with lock:
                    state["now"] -= 1

    workers = [threading.Thread(target=run) for _ in range(10)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=10)

    assert state["peak"] == 3
    assert state["held"] >= 30
    assert r.zcard(keys.LIMIT.format(name=limit.name) + ":leases") == 0


def test_expired_lease_is_reclaimed(r: redis.Redis) -> None:
    name = _name()
    crashed = ConcurrencyLimit(r, name, limit=2, ttl_s=0.5)
    alive = ConcurrencyLimit(r, name, limit=2, ttl_s=5.0)
    crashed_at = time.monotonic()
    lost = crashed.try_acquire()
    assert lost is not None
    assert alive.try_acquire() is not None
    assert alive.try_acquire() is None

    started = time.monotonic()
    with alive.hold(max_wait_s=0.03) as ok:
        assert not ok
    assert 0.03 <= time.monotonic() - started < 0.4

    time.sleep(max(0.0, crashed.ttl_s + 0.05 - (time.monotonic() - crashed_at)))
    # The live lease keeps the key, so only pruning can free the lost one.
    token = alive.try_acquire()
    assert token is not None
    assert token != lost
    assert alive.try_acquire() is None
    alive.release(token)
    assert alive.try_acquire() is not None
