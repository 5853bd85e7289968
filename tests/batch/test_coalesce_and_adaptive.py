"""Webhook coalescing and the adaptive slow-down, both against a real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from warming import keys as K
from warming.batch.coalesce import Coalescer
from warming.broker.messages import Message
from warming.pop.adaptive import DOWN_5XX, DOWN_429, DOWN_SLOW, UP_STEP, Governor
from warming.pop.limits import ClusterLimiter
from warming.settings import Rate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SITE = "https://www.example.com"


@pytest.fixture(scope="module")
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


FLUSH_QUEUE = "test.coalesce.flush"


def coalescer(r: redis.Redis, window_s: float) -> Coalescer:
    """A coalescer whose trailing-batch messages land in FLUSH_QUEUE: payload = batch id."""
    return Coalescer(r, window_s, flush_message=lambda t: Message(FLUSH_QUEUE, t, "id-" + t))


def flushes(r: redis.Redis) -> list[str]:
    return [m.decode() for m in r.lrange(FLUSH_QUEUE, 0, -1)]


def url() -> str:
    return f"{SITE}/post/{uuid.uuid4().hex}"


def bid() -> str:
    return f"b-{uuid.uuid4().hex[:12]}"


def set_state(r: redis.Redis, batch_id: str, state: str) -> None:
    r.hset(K.BATCH.format(id=batch_id), "state", state)


# -- coalescing ----------------------------------------------------------------------


def test_first_claim_leads(r: redis.Redis) -> None:
    c = coalescer(r, window_s=5)
    u1, u2 = url(), url()
    got = c.claim("A-" + bid(), [u1, u2])
    assert got.lead == [u1, u2]
    assert got.carried == {} and got.new_trailing == {}


def test_repeat_while_leader_is_queued_is_carried_by_it(r: redis.Redis) -> None:
    c = coalescer(r, window_s=5)
    a, b, u, fresh = bid(), bid(), url(), url()
    assert c.claim(a, [u]).lead == [u]
    set_state(r, a, "queued")
    got = c.claim(b, [u, fresh])
    assert got.lead == [fresh]
    assert got.carried == {u: a}
    assert got.new_trailing == {}


def test_repeat_while_leader_purges_joins_one_trailing_batch(r: redis.Redis) -> None:
    c = coalescer(r, window_s=5)
    a, u, u2 = bid(), url(), url()
    assert c.claim(a, [u, u2]).lead == [u, u2]
    set_state(r, a, "purging")

    c1, c2, c3 = bid(), bid(), bid()
    first = c.claim(c1, [u])
    assert first.lead == []
    trailing = f"t{c1}"
    assert first.carried == {u: trailing}
    assert list(first.new_trailing) == [trailing]
    leader, wait_s = first.new_trailing[trailing]
    assert leader == a
    assert 4.0 < wait_s <= 5.0, "publishes when the leader's window ends"
    # Created together with the message that will publish it, which waits until then.
    assert flushes(r).count(trailing) == 1
    assert 4.0 < c.wait_s(trailing) <= 5.0
    assert c.leader_of(trailing) == a

    second = c.claim(c2, [u])
    third = c.claim(c3, [u2, u])
    assert second.carried == {u: trailing}
    assert third.carried == {u2: trailing, u: trailing}
    assert second.new_trailing == {} and third.new_trailing == {}
    assert second.lead == [] and third.lead == []
    assert flushes(r).count(trailing) == 1, "one trailing batch, one message"

    assert c.flush(trailing) == sorted([u, u2])


def test_urls_of_two_running_leaders_share_one_trailing_batch_and_message(
    r: redis.Redis,
) -> None:
    c = coalescer(r, window_s=5)
    a, b, ua, ub = bid(), bid(), url(), url()
    c.claim(a, [ua])
    c.claim(b, [ub])
    set_state(r, a, "purging")
    set_state(r, b, "warming")
    got = c.claim(bid(), [ua, ub])
    assert len(set(got.carried.values())) == 1
    trailing = got.carried[ua]
    assert list(got.new_trailing) == [trailing]
    assert flushes(r).count(trailing) == 1
    assert c.flush(trailing) == sorted([ua, ub])


def test_claim_after_the_trailing_batch_flushed_leads_its_own_run(r: redis.Redis) -> None:
    c = coalescer(r, window_s=5)
    a, u = bid(), url()
    c.claim(a, [u])
    set_state(r, a, "warming")
    trailing = next(iter(c.claim(bid(), [u]).new_trailing))
    assert c.flush(trailing) == [u]

    late = c.claim(bid(), [u])
    assert late.lead == [u], "a change after the flush must not be dropped"
    assert late.carried == {} and late.new_trailing == {}
    assert c.flush(trailing) == [], "a flushed trailing batch takes nobody in"


def test_a_trailing_batch_leads_once_published(r: redis.Redis) -> None:
    c = coalescer(r, window_s=5)
    a, u = bid(), url()
    c.claim(a, [u])
    set_state(r, a, "verifying")
    trailing = next(iter(c.claim(bid(), [u]).new_trailing))
    c.lead(trailing, c.flush(trailing))
    set_state(r, trailing, "queued")
    got = c.claim(bid(), [u])
    assert got.carried == {u: trailing}


def test_window_expiry_lets_a_url_lead_again(r: redis.Redis) -> None:
    c = coalescer(r, window_s=0.2)
    a, u = bid(), url()
    assert c.claim(a, [u]).lead == [u]
    set_state(r, a, "queued")
    assert c.claim(bid(), [u]).carried == {u: a}
    time.sleep(0.3)
    again = c.claim(bid(), [u])
    assert again.lead == [u]
    assert again.carried == {}


@pytest.mark.parametrize("window_s", [0.0, 0.001])
def test_no_window_means_no_coalescing(r: redis.Redis, window_s: float) -> None:
    c = coalescer(r, window_s=window_s)
    u = url()
    assert c.claim(bid(), [u]).lead == [u]
    assert c.claim(bid(), [u]).lead == [u]


# -- adaptive ------------------------------------------------------------------------


@pytest.fixture
def limiter(r: redis.Redis) -> Iterator[ClusterLimiter]:
    name = f"test-adaptive-{uuid.uuid4().hex}"
    lim = ClusterLimiter(r, name, Rate.parse("100/s"))
    yield lim
    for key in r.scan_iter(match=K.LIMIT.format(name=name) + "*"):
        r.delete(key)


def test_429_halves_the_rate(r: redis.Redis, limiter: ClusterLimiter) -> None:
    Governor(r, limiter).observe(429)
    assert limiter.factor() == pytest.approx(DOWN_429) == pytest.approx(0.5)


def test_a_burst_of_429s_cuts_once_across_workers(r: redis.Redis, limiter: ClusterLimiter) -> None:
    workers = [Governor(r, limiter), Governor(r, limiter)]
    t0 = time.monotonic()
    for i in range(50):
        workers[i % 2].observe(429)
    assert time.monotonic() - t0 < 0.9, "the burst must fit in one step interval"
    assert limiter.factor() == pytest.approx(0.5)


@pytest.mark.parametrize("status", [500, 502, 503, None])
def test_5xx_and_network_errors_cut_30_percent(
    r: redis.Redis, limiter: ClusterLimiter, status: int | None
) -> None:
    Governor(r, limiter).observe(status)
    assert limiter.factor() == pytest.approx(DOWN_5XX) == pytest.approx(0.7)


def test_slow_origin_miss_cuts_10_percent(r: redis.Redis, limiter: ClusterLimiter) -> None:
    gov = Governor(r, limiter, latency_target_ms=200)
    gov.observe(200, ttfb_ms=150, miss=True)
    gov.observe(200, ttfb_ms=900, miss=False)  # a slow hit says nothing about the origin
    assert limiter.factor() == 1.0
    gov.observe(200, ttfb_ms=250, miss=True)
    assert limiter.factor() == pytest.approx(DOWN_SLOW) == pytest.approx(0.9)


def test_no_latency_target_means_slow_misses_are_fine(
    r: redis.Redis, limiter: ClusterLimiter
) -> None:
    Governor(r, limiter).observe(200, ttfb_ms=60_000, miss=True)
    assert limiter.factor() == 1.0


def test_successes_restore_one_step_per_second(r: redis.Redis, limiter: ClusterLimiter) -> None:
    gov, other = Governor(r, limiter), Governor(r, limiter)
    gov.observe(429)
    for _ in range(20):  # a cut blocks increases for a second
        gov.observe(200)
        other.observe(200)
    assert limiter.factor() == pytest.approx(0.5)
    time.sleep(1.05)
    for _ in range(20):
        gov.observe(200)
        other.observe(200)
    assert limiter.factor() == pytest.approx(0.5 + UP_STEP)
    time.sleep(1.05)
    other.observe(204)
    gov.observe(200)
    assert limiter.factor() == pytest.approx(0.5 + 2 * UP_STEP)


def test_recovery_stops_at_full_rate(r: redis.Redis, limiter: ClusterLimiter) -> None:
    limiter.set_factor(0.98)
    gov = Governor(r, limiter)
    gov.observe(200)
    assert limiter.factor() == 1.0
    assert r.exists(K.LIMIT.format(name=limiter.name) + ":factor") == 0
    gov.observe(200)
    assert limiter.factor() == 1.0
