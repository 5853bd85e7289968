"""Is warming, which warms AND proves every pair, as fast as a warmer that only warms?

python bench/bench_throughput.py                 # uncapped 1 and 2 workers, capped, memory
python bench/bench_throughput.py --only uncapped --workers 2

Each contender gets its own fresh, cold world (issue 10's setup): an origin answering in
`--latency-ms` (20), a shield Varnish and three edge Varnish PoPs, `--urls` (400) URLs.
In ONE run, side by side:

- the reference (`../shared/bench/reference_warmer.py`: 100 threads, keep-alive, no purge,
  no retries, no verification): its warm GETs per second;
- warming, `celery -A warming worker -P threads -c 32` x N: verified pairs per second,
  hits / (finished - started) from the batch's own report, uncapped
  (`limits.prefetch = 100000/s`) with 1 and 2 workers;
- warming capped at `--cap` (120/s) with PoPs refusing (429) above `--throttle` (150/s)
  GETs/s each: time to all verified against requests / cap and pairs / cap, the lowest
  per-second request rate after the first second (from the PoPs' own logs), 429s;
- Redis memory per pair after the batch (used_memory of a private redis-server, before
  the batch and after it, so results, records, plan and indexes all count).

Batches are published with `--no-purge` (the caches are cold; purges have their own
limit, `limits.purge`), so both contenders send the same GETs' worth of warming.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cluster import (
    SITE,
    machine,
    max_in_window,
    parse_iso,
    run_cli,
    start_pop_logs,
    start_workers,
    write_urls,
)

from warming.sandbox import World, start_world

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "bench" / "reference_warmer.py"
THREADS = 32


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of the bench's own: its used_memory is warming's and nothing else's."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.r = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                self.r.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def used(self) -> int:
        return int(self.r.info("memory")["used_memory"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _kind(key: str) -> str:
    """`warming:batch:<id>:warm` -> `warming:batch:*:warm`; Celery's keys by prefix."""
    parts = key.split(":")
    if parts[0] == "warming" and parts[1] in ("tagurls", "urlkeys"):
        return f"warming:{parts[1]}:*"
    if parts[0] == "warming" and len(parts) > 2:
        return ":".join([*parts[:2], "*", *parts[3:4]])
    return key.split("-")[0] if key.startswith("celery-task-meta") else parts[0]


def config_for(path: Path, broker: str, world: World, prefetch: str) -> Path:
    lines = [
        f"broker_url = {json.dumps(broker)}",
        "[site]",
        f"base_url = {json.dumps(SITE)}",
        "[limits]",
        f"prefetch = {json.dumps(prefetch)}",
        'purge = "10000/s"',
    ]
    for p in world.pops():
        lines += ["[[pops]]"] + [f"{k} = {json.dumps(v)}" for k, v in p.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def cold_world(args: argparse.Namespace, throttle: int | None = None) -> World:
    return start_world(
        n_edges=3, shield=True, latency_s=args.latency_ms / 1000, throttle_rps=throttle
    )


def run_reference(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with cold_world(args) as world:
        paths = tmp / "ref-paths.txt"
        paths.write_text("".join(f"/bench/ref/p{i}\n" for i in range(args.urls)))
        cmd = [sys.executable, str(args.reference), "--host", "www.example.com",
               "--paths", str(paths), "--json"]  # fmt: skip
        for p in world.pops():
            cmd += ["--pop", p["url"]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_warming(
    args: argparse.Namespace, tmp: Path, tag: str, workers: int, cap: str, throttle: int | None
) -> dict[str, Any]:
    """One batch of args.urls x 4 PoPs on a cold world; its figures."""
    rdir = tmp / f"redis-{tag}"
    rdir.mkdir()
    red = PrivateRedis(rdir)
    try:
        with cold_world(args, throttle) as world:
            config = config_for(tmp / f"{tag}.toml", red.url, world, cap)
            logdir = tmp / f"logs-{tag}"
            logdir.mkdir()
            procs = start_workers(config, logdir, tag, workers, "threads", THREADS)
            spies = [spy(w.proc.pid, args.profile / f"{tag}-w{i}.txt") for i, w in
                     enumerate(procs)] if args.profile else []  # fmt: skip
            try:
                pop_logs = start_pop_logs(world, logdir, tag)
                urls = write_urls(tmp / f"{tag}-urls.txt", f"/bench/{tag}/", args.urls)
                before = red.used()
                t_pub = time.monotonic()
                cli = run_cli(config, "warm", "--file", str(urls), "--no-purge", "--wait",
                              "--json", timeout=args.timeout)  # fmt: skip
                wall = time.monotonic() - t_pub
                for s_ in spies:
                    s_.send_signal(2)
                    s_.wait(30)
                for w in procs:
                    w.sample()
                time.sleep(1.0)  # let the PoPs' logs catch up
                hits_by_pop = [log_.stop() for log_ in pop_logs]
                after = red.used()
                keys: Counter[str] = Counter()
                sizes: Counter[str] = Counter()
                for k in red.r.scan_iter(count=1000):
                    kind = _kind(k.decode())
                    keys[kind] += 1
                    sizes[kind] += int(red.r.memory_usage(k, samples=0) or 0)
            finally:
                for w in procs:
                    w.stop()
    finally:
        red.stop()
    report = json.loads(cli.stdout)
    started, finished = parse_iso(report["started_at"]), parse_iso(report["finished_at"])
    assert started is not None and finished is not None, report
    elapsed = finished - started
    ours = [
        h for hits, _, _ in hits_by_pop for h in hits if not h.fill and h.method in ("GET", "HEAD")
    ]
    per_s = Counter(int(h.t - started) for h in ours)
    seconds = range(1, max(1, int(elapsed)))
    rates = [per_s.get(s, 0) for s in seconds]
    c = report["counts"]
    return {
        "tag": tag,
        "workers": workers,
        "cap": cap,
        "pairs": c["total"],
        "hit": c["hit"],
        "miss": c["miss"],
        "failed": c["failed"],
        "elapsed_s": round(elapsed, 2),
        "wall_s": round(wall, 2),
        "verified_pairs_per_s": round(c["hit"] / elapsed, 1) if elapsed > 0 else 0.0,
        "requests": len(ours),
        "requests_per_pair": round(len(ours) / max(1, c["total"]), 2),
        "status_429": sum(1 for h in ours if h.status == 429),
        "min_rate_after_1s": min(rates) if rates else None,
        "rate_per_s": rates,
        "max_in_any_1s": max_in_window([h.t for h in ours])[0] if ours else 0,
        "max_in_any_1s_at_s": round(max_in_window([h.t for h in ours])[1] - started, 2)
        if ours
        else None,
        "by_method": dict(Counter(h.method for h in ours)),
        "redis_bytes_per_pair": round((after - before) / max(1, c["total"])),
        "redis_keys": dict(keys.most_common(8)),
        "redis_bytes_per_pair_by_kind": {
            k: round(v / max(1, c["total"])) for k, v in sizes.most_common(8)
        },
        "worker_peak_pss_mb": max(round(w.pss_peak_kb / 1024) for w in procs),
    }


def spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling one worker (all its threads) until SIGINT, in its raw format."""
    out.parent.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [exe, "record", "-r", "200", "-f", "raw", "-o", str(out), "--pid", str(pid),
         "--nonblocking", *(["--gil"] if os.environ.get("BENCH_PYSPY_GIL") else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def summarize(raw: Path, top: int = 25) -> list[tuple[str, float]]:
    """Where the samples were, by the innermost frame of warming's or a library's code."""
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        total += int(n)
        # Idle threads wait in a lock or a socket read: count them apart.
        leaf = frames[-1]
        name = leaf.split(" (")[0]
        where = leaf.split(" (")[-1].split(":")[0].split("site-packages/")[-1]
        own[f"{name} ({where})"] += int(n)
    return [(k, round(100 * v / max(1, total), 1)) for k, v in own.most_common(top)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--urls", type=int, default=400)
    ap.add_argument("--keep", type=Path, default=None, help="keep configs and logs in DIR")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--cap", type=float, default=120.0)
    ap.add_argument("--throttle", type=int, default=150)
    ap.add_argument("--only", choices=["uncapped", "capped"], default=None)
    ap.add_argument("--workers", type=int, action="append", default=None)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--reference", type=Path, default=REFERENCE, help="reference_warmer.py")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy each worker into DIR")
    args = ap.parse_args()
    out: dict[str, Any] = {"machine": machine(), "urls": args.urls, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as d:
        tmp = args.keep or Path(d)
        tmp.mkdir(parents=True, exist_ok=True)
        if args.only in (None, "uncapped"):
            log("reference warmer")
            ref = run_reference(args, tmp)
            out["reference"] = ref
            log(f"reference: {ref}")
            for n in args.workers or [1, 2]:
                log(f"warming uncapped, {n} worker(s)")
                run = run_warming(args, tmp, f"u{n}", n, "100000/s", None)
                run["vs_reference"] = round(run["verified_pairs_per_s"] / ref["pairs_per_s"], 2)
                out["runs"].append(run)
                log(json.dumps(run))
        if args.only in (None, "capped"):
            n = max(args.workers or [2])
            log(f"warming capped at {args.cap:g}/s, PoPs refusing above {args.throttle}/s")
            run = run_warming(args, tmp, f"c{n}", n, f"{args.cap:g}/s", args.throttle)
            run["x_requests_over_cap"] = round(run["elapsed_s"] / (run["requests"] / args.cap), 2)
            run["x_pairs_over_cap"] = round(run["elapsed_s"] / (run["pairs"] / args.cap), 2)
            run["min_rate_share_of_cap"] = (
                round(run["min_rate_after_1s"] / args.cap, 2) if run["min_rate_after_1s"] else None
            )
            out["runs"].append(run)
            log(json.dumps(run))
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
