"""Hammer one ClusterLimiter from N processes against a real Redis and print what it achieved.

python bench/bench_limiter.py [--procs 1,2,4] [--rate 120/s] [--seconds 10] [--burst 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
import uuid
from typing import Any

import redis

from warming import keys
from warming.pop.limits import ClusterLimiter
from warming.settings import Rate

# Long enough that a worker never gives up on a slot while others hold the queue.
MAX_WAIT_S = 2.0


def _worker(url: str, name: str, rate: Rate, burst: int, seconds: float, go: Any, out: Any) -> None:
    limiter = ClusterLimiter(redis.Redis.from_url(url), name, rate, burst)
    sends: list[float] = []
    rtts: list[float] = []
    go.wait()
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        grant = limiter.reserve(MAX_WAIT_S)
        rtts.append(time.perf_counter() - t0)
        if grant.ok:
            time.sleep(grant.wait_s)
            sends.append(time.time())
    out.put((sends, rtts))


def _max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def run(url: str, procs: int, rate: Rate, burst: int, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    go, out = ctx.Barrier(procs + 1), ctx.Queue()
    name = f"bench-{uuid.uuid4().hex}"
    args = (url, name, rate, burst, seconds, go, out)
    workers = [ctx.Process(target=_worker, args=args) for _ in range(procs)]
    for w in workers:
        w.start()
    go.wait(timeout=60)
    start = time.time()
    sends: list[float] = []
    rtts: list[float] = []
    for _ in workers:
        s, r = out.get(timeout=seconds + 60)
        sends += s
        rtts += r
    for w in workers:
        w.join()
    key = keys.LIMIT.format(name=name)
    redis.Redis.from_url(url).delete(key, key + ":factor")

    in_run = sum(1 for t in sends if start <= t < start + seconds)
    achieved = in_run / seconds
    return {
        "procs": procs,
        "grants": len(sends),
        "req/s": achieved,
        "% of limit": 100 * achieved / rate.per_second,
        "max in 1 s": _max_in_window(sends, 1.0),
        "p50 rtt ms": 1000 * statistics.median(rtts),
        "p99 rtt ms": 1000 * statistics.quantiles(rtts, n=100)[98],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", default="1,2,4", help="process counts to try, comma-separated")
    parser.add_argument("--rate", default="120/s")
    parser.add_argument("--burst", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    rate = Rate.parse(args.rate)

    rows = [run(args.redis, int(n), rate, args.burst, args.seconds) for n in args.procs.split(",")]
    print(f"limit {rate.per_second:g}/s, burst {args.burst}, {args.seconds:g} s per run")
    header = list(rows[0])
    print("  ".join(f"{h:>10}" for h in header))
    for row in rows:
        print(
            "  ".join(f"{v:>10.4g}" if isinstance(v, float) else f"{v:>10}" for v in row.values())
        )


if __name__ == "__main__":
    main()
