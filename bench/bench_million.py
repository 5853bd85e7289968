"""A batch of a million pairs, run to the end: publish time, pairs/s, memory of every process.

python bench/bench_million.py                       # 250,000 URLs x 4 PoPs = 1,000,000 pairs
python bench/bench_million.py --urls 25000          # a tenth, to try it first

A fast local world (origin without latency, a shield and three edge Varnish PoPs, each
with `--storage` of cache so nothing is evicted), a private redis-server, `--workers`
workers (`-P threads -c 32`). The batch is published with `warming warm --file ...
--no-purge --json` (its wall time is the publish time), followed to the end by polling
its state, and its report read with `warming report --json` (streamed). Printed: the
publish time, verified pairs/s (hits / (finished - started)), the counts, and the peak
memory of each process of ours (workers' PSS, the CLI runs' max RSS) and of Redis
(used_memory peak and RSS), against issue 10's limits: 500 MB per process, 300 MB Redis.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cluster import machine, parse_iso, run_cli, start_workers, write_urls
from bench_throughput import THREADS, PrivateRedis, _kind, config_for, log

from warming.sandbox import start_world

PROCESS_LIMIT_MB = 500
REDIS_LIMIT_MB = 300


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    red = PrivateRedis(tmp)
    try:
        with start_world(n_edges=3, shield=True, latency_s=0.0, storage=args.storage) as world:
            config = config_for(tmp / "million.toml", red.url, world, "100000/s")
            logdir = tmp / "logs"
            logdir.mkdir()
            workers = start_workers(config, logdir, "million", args.workers, "threads", THREADS)
            try:
                urls = write_urls(tmp / "urls.txt", "/m/", args.urls)
                before = red.used()
                log(f"publishing {args.urls} URLs x {len(world.pops())} PoPs")
                pub = run_cli(config, "warm", "--file", str(urls), "--no-purge", "--json",
                              timeout=args.timeout)  # fmt: skip
                if pub.rc != 0:
                    raise RuntimeError(f"publish failed ({pub.rc}): {pub.stderr[-2000:]}")
                batch_id = json.loads(pub.stdout.strip().splitlines()[-1])["batch_id"]
                log(f"published {batch_id} in {pub.wall_s:.1f} s")
                state, peak_used, peak_rss = _follow(red, workers, batch_id, args.timeout)
                log(f"batch {state}")
                rep = run_cli(config, "report", batch_id, "--json", timeout=args.timeout)
                after = red.used()
                kinds = _by_kind(red)
                chunk_bytes = sum(len(v) for v in red.r.hvals(f"warming:batch:{batch_id}:chunks"))
                sample = red.r.hget(f"warming:batch:{batch_id}:chunks", "1:0:0")
            finally:
                for w in workers:
                    w.sample()
                    w.stop()
    finally:
        red.stop()
    report = json.loads(rep.stdout)
    started, finished = parse_iso(report["started_at"]), parse_iso(report["finished_at"])
    assert started is not None and finished is not None, report["state"]
    elapsed = finished - started
    c = report["counts"]
    rows = report["results"]
    ours = {
        **{f"worker {i}": round(w.pss_peak_kb / 1024) for i, w in enumerate(workers)},
        "warming warm (publish)": round(pub.maxrss_kb / 1024),
        "warming report --json": round(rep.maxrss_kb / 1024),
    }
    return {
        "urls": args.urls,
        "pairs": c["total"],
        "counts": c,
        "results_in_report": len(rows),
        "every_result_hit": all(r["outcome"] == "hit" for r in rows),
        "publish_s": round(pub.wall_s, 1),
        "elapsed_s": round(elapsed, 1),
        "verified_pairs_per_s": round(c["hit"] / elapsed, 1),
        "process_peak_mb": ours,
        "process_limit_mb": PROCESS_LIMIT_MB,
        "redis_used_peak_mb": round(peak_used / 2**20),
        "redis_rss_peak_mb": round(peak_rss / 2**20),
        "redis_limit_mb": REDIS_LIMIT_MB,
        "redis_after_batch_bytes_per_pair": round((after - before) / max(1, c["total"])),
        "redis_after_batch_bytes_per_pair_by_kind": {
            k: round(v / max(1, c["total"])) for k, v in kinds.most_common(8)
        },
        "chunk_row_bytes_per_pair": round(chunk_bytes / max(1, c["total"]), 1),
        "chunk_sample": (sample or b"").decode()[:300],
        "report_read_s": round(rep.wall_s, 1),
        "report_bytes": len(rep.stdout),
    }


def _by_kind(red: PrivateRedis) -> Counter[str]:
    sizes: Counter[str] = Counter()
    for k in red.r.scan_iter(count=1000):
        sizes[_kind(k.decode())] += int(red.r.memory_usage(k, samples=0) or 0)
    return sizes


def _follow(red: PrivateRedis, workers: list[Any], batch_id: str, timeout_s: float) -> tuple[
    str, int, int
]:
    """Poll the batch's state until it ends, sampling memory; (state, peak used, peak rss)."""
    key = f"warming:batch:{batch_id}"
    end = time.monotonic() + timeout_s
    peak_used = peak_rss = 0
    last = 0.0
    while time.monotonic() < end:
        mem = red.r.info("memory")
        peak_used = max(peak_used, int(mem["used_memory"]))
        peak_rss = max(peak_rss, int(mem["used_memory_rss"]))
        for w in workers:
            w.sample()
        state = (red.r.hget(key, "state") or b"").decode()
        if state in ("done", "failed"):
            return state, peak_used, peak_rss
        if time.monotonic() - last > 30:
            done = red.r.hlen(f"{key}:chunks")
            log(f"{state}: {done} chunks recorded, redis {peak_used / 2**20:.0f} MB")
            last = time.monotonic()
        time.sleep(1.0)
    raise TimeoutError(f"batch {batch_id} not done in {timeout_s} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--urls", type=int, default=250_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--storage", default="malloc,1g", help="each Varnish's -s")
    ap.add_argument("--timeout", type=float, default=7200.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="warming-million-") as tmp:
        out = {"machine": machine(), **run(args, Path(tmp))}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    worst = max(out["process_peak_mb"].values())
    ok = worst < PROCESS_LIMIT_MB and out["redis_rss_peak_mb"] < REDIS_LIMIT_MB
    print(f"largest process {worst} MB (limit {PROCESS_LIMIT_MB}), Redis RSS peak "
          f"{out['redis_rss_peak_mb']} MB (limit {REDIS_LIMIT_MB}): "
          f"{'met' if ok else 'NOT met'}", file=sys.stderr)  # fmt: skip
    return 0 if ok and out["every_result_hit"] else 1


if __name__ == "__main__":
    sys.exit(main())
