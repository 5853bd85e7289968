"""Does the cluster-wide prefetch limit hold as real Celery workers scale out?

python bench/bench_cluster.py            # the full bench (about 3.5 minutes on 2 cores)
python bench/bench_cluster.py --quick    # a smoke run (about 1 minute)

Stands up a local world (an origin with `--latency-ms`, a shield Varnish and three
edge Varnish PoPs answering 429 above `--throttle` GETs/s each), then for 1, 2 and 4
worker processes (`celery -A warming worker -P threads -c 16`) publishes one batch of
`--urls` URLs x 4 PoPs through the real CLI (`warming warm --file ... --no-purge
--json`), waits for it in Redis, and measures at the PoPs what warming sent there.
It repeats the 2-worker case with `-P prefork -c 4`, and finally publishes a
100,000-pair batch and times it until the prefetch messages publishing queues are in
Redis (and measures memory), without running it. bench/README.md has the details.

How requests are seen: one `varnishncsa` per PoP, on that varnishd's `-n` directory,
logs every client request with a microsecond timestamp, status, method, path and
X-Forwarded-For. Requests a Varnish makes to the shield to fill an edge carry two
addresses in X-Forwarded-For; they are CDN-internal, not warming's, so they are
counted separately. The log is cross-checked against each varnishd's
MAIN.client_req counter. This reads `VarnishEdge.workdir` and relies on the sandbox
naming the `-n` directory `<workdir>/varnishd` (not a public contract of the sandbox).

Each run warms URLs no earlier run touched (`/bench/r<run>/p<i>`) with `--no-purge`:
every cache starts cold for them without a purge, so the runs measure warming and
verification only (purges are PURGE requests under their own `limits.purge`).
`--purge` publishes with a purge instead.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from warming import keys as K
from warming.batch.plan import Plan
from warming.batch.store import FINAL, BatchStore
from warming.broker import tasknames as T
from warming.sandbox import World, start_world
from warming.settings import Rate

ROOT = Path(__file__).resolve().parents[1]
SITE = "http://www.example.com"
N_EDGES = 3
# Per worker process for the scale-out runs: enough threads that the limiter, not the
# pool, sets the pace (a request to a warm Varnish takes ~2 ms, a miss ~25 ms).
THREADS = 16
NCSA_FORMAT = r"%{usec}t\t%s\t%m\t%U\t%{X-Forwarded-For}i"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKER_READY_TIMEOUT_S = 60.0
# Targets from the issue.
MAX_WINDOW_OVER = 0.10
MIN_RATE_SHARE = 0.90
PUBLISH_TARGET_S = 30.0
RSS_TARGET_MB = 500.0
# A run during which processes outside the bench used more than this share of the
# machine's CPU is flagged: its rates and times are pessimistic.
CONTENDED_SHARE = 0.10


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- processes ------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (a prefork parent's, after fork) split evenly."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (its own threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> dict[str, int]:
    """Jiffies of the whole machine: busy (ours and everyone's), steal, total."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return {"busy": user + nice + system + irq + softirq, "steal": steal, "total": sum(v)}


def env_for(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMING_")}
    env.update(WARMING_CONFIG=str(config), PYTHONUNBUFFERED="1")
    return env


class WorkerProc:
    """One `celery -A warming worker` process (tree, for prefork) in its own session."""

    def __init__(
        self,
        config: Path,
        logdir: Path,
        name: str,
        pool: str,
        concurrency: int,
        queues: str | None = None,
    ) -> None:
        self.name = name
        self.logfile = logdir / f"{name}.log"
        cmd = [
            sys.executable, "-m", "celery", "-A", "warming", "worker",
            "-P", pool, "-c", str(concurrency), "-l", "INFO",
            "--without-gossip", "--without-mingle",
            "-n", f"{name}@%h", "--logfile", str(self.logfile),
        ]  # fmt: skip
        if queues:
            cmd += ["-Q", queues]
        self.proc = subprocess.Popen(
            cmd,
            env=env_for(config),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(logdir / f"{name}.stderr", "wb"),  # noqa: SIM115 (closed with the child)
            start_new_session=True,
        )
        self.hwm_kb: dict[int, int] = {}
        self.pss_peak_kb = 0

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.proc.returncode}")
            if self.logfile.exists() and " ready." in self.logfile.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not ready in time; see {self.logfile}")

    def sample(self) -> None:
        """Remember VmHWM of every process of the tree, and the tree's largest PSS total."""
        pids = descendants(self.proc.pid)
        for pid in pids:
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), status_kb(pid, "VmHWM"))
        self.pss_peak_kb = max(self.pss_peak_kb, sum(pss_kb(pid) for pid in pids))

    def cpu(self) -> float:
        return sum(cpu_s(p) for p in descendants(self.proc.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_workers(
    config: Path, logdir: Path, tag: str, n: int, pool: str, conc: int, queues: str | None = None
) -> list[WorkerProc]:
    workers = [
        WorkerProc(config, logdir, f"bench-{tag}-w{i}", pool, conc, queues) for i in range(n)
    ]
    try:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        for w in workers:
            w.wait_ready(deadline)
    except BaseException:
        for w in workers:
            w.stop()
        raise
    return workers


# -- the PoPs' logs -------------------------------------------------------------------


@dataclass
class Hit:
    t: float  # seconds since the epoch, from varnishd's own clock (µs)
    pop: str
    status: int
    method: str
    path: str
    fill: bool  # a Varnish filling an edge from the shield, not a warming request


class PopLog:
    """`varnishncsa` on one PoP for the duration of a run, cross-checked with varnishstat."""

    def __init__(self, name: str, ndir: Path, outdir: Path, tag: str) -> None:
        self.name = name
        self.ndir = ndir
        self.out = outdir / f"ncsa-{tag}-{name}.log"
        self.client_req_before = self.client_req()
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(
                ["varnishncsa", "-n", str(ndir), "-F", NCSA_FORMAT],
                stdout=f,
                stderr=subprocess.PIPE,
            )

    def client_req(self) -> int:
        done = subprocess.run(
            ["varnishstat", "-n", str(self.ndir), "-1", "-f", "MAIN.client_req"],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(done.stdout.split()[1])

    def stop(self) -> tuple[list[Hit], int, str]:
        """The requests logged, MAIN.client_req's increase, and varnishncsa's complaints."""
        delta = self.client_req() - self.client_req_before
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        hits = []
        for line in self.out.read_text(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) != 5:
                continue
            usec, status, method, path, xff = parts
            hits.append(Hit(int(usec) / 1e6, self.name, int(status), method, path, "," in xff))
        return hits, delta, err.decode(errors="replace").strip()


def start_pop_logs(world: World, outdir: Path, tag: str) -> list[PopLog]:
    pops = [e for e in (world.shield, *world.edges) if e is not None]
    # Private-ish: the sandbox names varnishd's -n directory <workdir>/varnishd.
    logs = [PopLog(e.name, Path(e.workdir) / "varnishd", outdir, tag) for e in pops]  # type: ignore[attr-defined]
    time.sleep(1.0)  # varnishncsa starts at the log's tail: let it attach first
    return logs


def max_in_window(times: list[float], window_s: float = 1.0) -> tuple[int, float]:
    """Most events in any half-open window [t, t + window_s), and where it starts."""
    times = sorted(times)
    best, at, lo = 0, 0.0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        if hi - lo + 1 > best:
            best, at = hi - lo + 1, times[lo]
    return best, at


# -- config, publish ----------------------------------------------------------------


def toml_value(v: Any) -> str:
    return json.dumps(v)  # JSON strings, numbers, booleans and arrays are valid TOML


def write_config(
    path: Path, broker: str, pops: list[dict[str, str]], limits: dict[str, str]
) -> Path:
    lines = [f"broker_url = {toml_value(broker)}", "[site]", f"base_url = {toml_value(SITE)}"]
    lines += ["[limits]"] + [f"{k} = {toml_value(v)}" for k, v in limits.items()]
    for p in pops:
        lines += ["[[pops]]"] + [f"{k} = {toml_value(v)}" for k, v in p.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Cli:
    """A finished `python -m warming ...`: its output, wall time and peak RSS (wait4)."""

    rc: int
    stdout: str
    stderr: str
    wall_s: float
    maxrss_kb: int
    cpu_s: float = 0.0


def run_cli(config: Path, *args: str, timeout: float = 300.0) -> Cli:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "warming", *args],
            env=env_for(config),
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Cli(
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            wall,
            usage.ru_maxrss,
            usage.ru_utime + usage.ru_stime,
        )


def write_urls(path: Path, prefix: str, n: int) -> Path:
    path.write_text("".join(f"{SITE}{prefix}p{i}\n" for i in range(n)))
    return path


def publish(config: Path, urls_file: Path, purge: bool) -> tuple[str, Cli]:
    args = ["warm", "--file", str(urls_file), "--json"] + ([] if purge else ["--no-purge"])
    cli = run_cli(config, *args)
    if cli.rc != 0:
        raise RuntimeError(f"warming warm failed ({cli.rc}): {cli.stderr[-2000:]}")
    return json.loads(cli.stdout.strip().splitlines()[-1])["batch_id"], cli


def parse_iso(s: str | None) -> float | None:
    return datetime.fromisoformat(s).timestamp() if s else None


# -- one scale-out run ----------------------------------------------------------------


@dataclass
class Scenario:
    label: str
    workers: int
    pool: str
    concurrency: int


@dataclass
class RunResult:
    scenario: Scenario
    pairs: int
    limit: float
    m: dict[str, Any] = field(default_factory=dict)


def run_scenario(
    args: argparse.Namespace,
    r: redis.Redis,
    world: World,
    config: Path,
    tmp: Path,
    sc: Scenario,
    run_idx: int,
) -> RunResult:
    limit = Rate.parse(args.rate).per_second
    prefix = f"/bench/r{run_idx}/"
    n_pops = 1 + N_EDGES
    res = RunResult(sc, args.urls * n_pops, limit)
    r.flushdb()  # no limiter, adaptive factor or batch state from an earlier run
    tag = f"r{run_idx}"
    log(f"run {run_idx}: {sc.label}: starting {sc.workers} x -P {sc.pool} -c {sc.concurrency}")
    workers = start_workers(config, tmp, tag, sc.workers, sc.pool, sc.concurrency)
    pop_logs: list[PopLog] = []
    try:
        urls_file = write_urls(tmp / f"urls-{tag}.txt", prefix, args.urls)
        pop_logs = start_pop_logs(world, tmp, tag)
        origin_before = world.origin.requests()
        cpu0 = cpu_snapshot(r, world, workers, pop_logs)
        t_spawn = time.time()
        batch_id, cli = publish(config, urls_file, args.purge)
        log(f"run {run_idx}: batch {batch_id} published in {cli.wall_s:.2f} s")
        store = BatchStore(r, 3600)
        ideal = res.pairs * 2 / limit
        deadline = time.monotonic() + 4 * ideal + 120
        last_note = time.monotonic()
        state = store.state(batch_id)
        while state not in FINAL and time.monotonic() < deadline:
            time.sleep(0.2)
            for w in workers:
                w.sample()
            state = store.state(batch_id)
            if time.monotonic() - last_note > 5:
                prog = store.progress(batch_id)
                log(
                    f"run {run_idx}: {state}: warmed {prog['warmed']}/{res.pairs}"
                    f" verified {prog['verified']}/{res.pairs}"
                )
                last_note = time.monotonic()
        t_seen_done = time.time()
        cpu1 = cpu_snapshot(r, world, workers, pop_logs)
        for w in workers:
            w.sample()
        time.sleep(1.0)  # let varnishncsa write its last lines
        hits: list[Hit] = []
        log_check = []
        for pl in pop_logs:
            h, delta, err = pl.stop()
            hits += h
            log_check.append((pl.name, len(h), delta, err))
        pop_logs = []
        report_cli = run_cli(config, "report", batch_id, "--json")
        report = json.loads(report_cli.stdout) if report_cli.stdout.strip() else {}
    finally:
        for pl in pop_logs:
            pl.stop()
        for w in workers:
            w.stop()

    ours = [h for h in hits if h.path.startswith(prefix)]
    direct = sorted((h for h in ours if not h.fill and h.method == "GET"), key=lambda h: h.t)
    fills = [h for h in ours if h.fill and h.method == "GET"]
    times = [h.t for h in direct]
    m = res.m
    m["batch_id"] = batch_id
    m["state"] = report.get("state", state)
    m["counts"] = report.get("counts", {})
    m["report_rc"] = report_cli.rc
    m["note"] = report.get("note")
    m["gets"] = len(direct)
    m["gets_per_pair"] = len(direct) / res.pairs
    m["fills"] = len(fills)
    m["purges"] = sum(1 for h in ours if h.method == "PURGE")
    m["n429"] = sum(1 for h in direct if h.status == 429)
    m["other_non200"] = sum(1 for h in direct if h.status not in (200, 429))
    if len(times) >= 2:
        busy = times[-1] - times[0]
        m["busy_s"] = busy
        m["rate"] = (len(times) - 1) / busy if busy > 0 else float("nan")
        m["max_window"], at = max_in_window(times)
        m["max_window_at_s"] = at - times[0]
        per_pop = {}
        for pop in sorted({h.pop for h in direct}):
            per_pop[pop] = max_in_window([h.t for h in direct if h.pop == pop])[0]
        m["max_window_per_pop"] = per_pop
        gaps = [b - a for a, b in itertools.pairwise(times)]
        m["longest_gap_s"] = max(gaps)
        # The shield phase ends with its last request; the edge phase starts after.
        shield_last = max((h.t for h in direct if h.pop == "shield"), default=times[0])
        edge_first = min((h.t for h in direct if h.pop != "shield"), default=times[-1])
        m["phase_gap_s"] = max(0.0, edge_first - shield_last)
        m["first_get_after_publish_s"] = times[0] - t_spawn
    started = parse_iso(report.get("started_at"))
    finished = parse_iso(report.get("finished_at"))
    m["verified_s"] = finished - started if started and finished else None
    m["wall_from_cli_s"] = t_seen_done - t_spawn
    m["ideal_s"] = res.pairs * 2 / limit
    m["publish_cli_s"] = cli.wall_s
    origin_counts = world.origin.counts
    per_url = [origin_counts.get(f"{prefix}p{i}", 0) for i in range(args.urls)]
    m["origin_per_url"] = sum(per_url) / args.urls
    m["origin_max_per_url"] = max(per_url)
    m["origin_total_delta"] = world.origin.requests() - origin_before
    m["rss_mb"] = {
        w.name: {str(pid): kb / 1024 for pid, kb in sorted(w.hwm_kb.items())} for w in workers
    }
    m["rss_tree_mb"] = [sum(w.hwm_kb.values()) / 1024 for w in workers]
    m["pss_tree_mb"] = [w.pss_peak_kb / 1024 for w in workers]
    m["rss_max_proc_mb"] = max(max(w.hwm_kb.values(), default=0) for w in workers) / 1024
    m["cpu"] = cpu_delta(cpu0, cpu1, cli.cpu_s)
    m["log_check"] = log_check
    # varnishd merges its worker threads' counters into MAIN.* lazily, so the counter can
    # trail the log by a request or two; the log itself is checked against 2 GETs per pair.
    m["log_ok"] = all(abs(n - d) <= max(2, n // 1000) and not e for _, n, d, e in log_check)
    log(
        f"run {run_idx}: done: {m['gets']} GETs, {m.get('rate', 0):.1f}/s,"
        f" max 1 s window {m.get('max_window')}, 429s {m['n429']},"
        f" verified in {m['verified_s'] or float('nan'):.1f} s (ideal {m['ideal_s']:.0f} s)"
    )
    return res


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def cpu_snapshot(
    r: redis.Redis, world: World, workers: list[WorkerProc], pop_logs: list[PopLog]
) -> dict[str, Any]:
    """CPU seconds so far of every component on the machine, and the machine's jiffies."""
    varnish = [e for e in (world.shield, *world.edges) if e is not None]
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "workers": [w.cpu() for w in workers],
        "redis": redis_cpu(r),
        # VarnishEdge.pids: the manager; its cache process is a child.
        "varnishd": sum(cpu_s(p) for e in varnish for p in descendants(e.pids[0])),  # type: ignore[attr-defined]
        "varnishncsa": sum(cpu_s(pl.proc.pid) for pl in pop_logs),
        # This process: the origin's threads, polling Redis, reading /proc.
        "bench+origin": me.ru_utime + me.ru_stime,
        "machine": machine_cpu(),
    }


def cpu_delta(a: dict[str, Any], b: dict[str, Any], cli_s: float) -> dict[str, Any]:
    ma, mb = a["machine"], b["machine"]
    total = max(1, mb["total"] - ma["total"])
    out = {
        "workers": [y - x for x, y in zip(a["workers"], b["workers"], strict=True)],
        **{k: b[k] - a[k] for k in ("redis", "varnishd", "varnishncsa", "bench+origin")},
        "warming CLI": cli_s,
        "machine_busy": (mb["busy"] - ma["busy"]) / total,
        "machine_steal": (mb["steal"] - ma["steal"]) / total,
        "machine_core_s": (mb["busy"] - ma["busy"]) / CLK_TCK,
    }
    ours = sum(out["workers"]) + sum(
        out[k] for k in ("redis", "varnishd", "varnishncsa", "bench+origin", "warming CLI")
    )
    # Anything else on the machine (another engineer's job, the kernel's own threads).
    out["others"] = max(0.0, out["machine_core_s"] - ours)
    out["others_share"] = out["others"] / (total / CLK_TCK)
    return out


# -- the 100k publish ---------------------------------------------------------------


# Prefetch messages go to their batch's priority queue (high, normal or bulk).
PREFETCH_QUEUES = tuple(T.PREFETCH_QUEUES.values())


def published_by_publish(r: redis.Redis, batch_id: str) -> tuple[int, int]:
    """(prefetch messages publishing the batch queues, slices they make up)."""
    plan = Plan.from_json(r.hget(K.BATCH.format(id=batch_id), "plan"))
    n = plan.n_slices(0)
    window = min(n, getattr(plan, "slices_in_flight", None) or n)
    return sum(len(plan.slice(0, s)) for s in range(window)), window


def queued(r: redis.Redis) -> int:
    with r.pipeline(transaction=False) as p:
        for q in PREFETCH_QUEUES:
            p.llen(q)
        return sum(int(n) for n in p.execute())


def run_publish(
    args: argparse.Namespace, r: redis.Redis, world: World, tmp: Path
) -> dict[str, Any]:
    """Time `warming warm` of a big batch until the prefetch messages it publishes are queued.

    Older versions of the package published every pair at once; with a window of
    `batch.slices_in_flight` slices, publishing queues that window and each verified slice
    launches the next. What counts is read from the batch's stored plan either way.
    """
    n_pops = 1 + N_EDGES
    pairs = args.publish_urls * n_pops
    # Every PoP on one tier, so all `pairs` prefetch messages are published at once (with a
    # shield tier only its quarter would be, the rest after the shield phase verified).
    pops = [{**p, "tier": "edge"} for p in world.pops()]
    config = write_config(
        tmp / "publish.toml", args.redis, pops, {"prefetch": args.rate, "purge": "500/s"}
    )
    r.flushdb()
    log(f"publish: {pairs:,} pairs; one worker consuming warming.purge and warming.control only")
    workers = start_workers(
        config, tmp, "pub", 1, "threads", args.publish_threads, queues=f"{T.Q_PURGE},{T.Q_CONTROL}"
    )
    w = workers[0]
    urls_file = write_urls(tmp / "urls-publish.txt", "/bench/publish/", args.publish_urls)
    worker_cpu0, redis_cpu0 = w.cpu(), redis_cpu(r)
    machine0, me0 = machine_cpu(), resource.getrusage(resource.RUSAGE_SELF)
    samples: list[tuple[float, int]] = []
    out: dict[str, Any] = {"pairs": pairs, "urls": args.publish_urls}
    try:
        holder: dict[str, Any] = {}

        def _publish() -> None:
            try:
                holder["result"] = publish(config, urls_file, purge=False)
            except Exception as e:  # reported below
                holder["error"] = e

        t0 = time.monotonic()
        thread = threading.Thread(target=_publish, daemon=True)
        thread.start()
        deadline = t0 + args.publish_timeout
        full_at = expected = None
        while time.monotonic() < deadline:
            n = queued(r)
            samples.append((time.monotonic() - t0, n))
            w.sample()
            if expected is None and "result" in holder:
                expected, window = published_by_publish(r, holder["result"][0])
                out["expected"], out["window_slices"] = expected, window
            if expected is not None and n >= expected:
                full_at = time.monotonic() - t0
                break
            if "error" in holder:
                break
            time.sleep(0.02)
        thread.join(timeout=60)
        w.sample()
        if "error" in holder:
            raise holder["error"]
        batch_id, cli = holder["result"]
        out["batch_id"] = batch_id
        out["cli_s"] = cli.wall_s
        out["publisher_rss_mb"] = cli.maxrss_kb / 1024
        out["all_queued_s"] = full_at
        out["queued_at_end"] = samples[-1][1] if samples else 0
        out["first_queued_s"] = next((t for t, n in samples if n > 0), None)
        out["worker_rss_mb"] = max(w.hwm_kb.values(), default=0) / 1024
        out["worker_cpu_s"] = w.cpu() - worker_cpu0
        out["redis_cpu_s"] = redis_cpu(r) - redis_cpu0
        out["publisher_cpu_s"] = cli.cpu_s
        machine1, me1 = machine_cpu(), resource.getrusage(resource.RUSAGE_SELF)
        bench_s = me1.ru_utime + me1.ru_stime - me0.ru_utime - me0.ru_stime
        core_s = (machine1["busy"] - machine0["busy"]) / CLK_TCK
        ours = out["worker_cpu_s"] + out["redis_cpu_s"] + cli.cpu_s + bench_s
        out["others_cpu_s"] = max(0.0, core_s - ours)
        capacity = (machine1["total"] - machine0["total"]) / CLK_TCK
        out["others_share"] = out["others_cpu_s"] / max(1e-9, capacity)
        first = out["first_queued_s"]
        if full_at and expected:
            out["msgs_per_s"] = expected / max(1e-9, full_at - (first or 0))
        elif samples:
            out["msgs_per_s"] = samples[-1][1] / samples[-1][0]
        # The queue itself (exact: every element sampled); Redis is shared, so its
        # used_memory would include whatever else is stored there.
        queue_bytes = sum(r.memory_usage(q, samples=0) or 0 for q in PREFETCH_QUEUES)
        out["queue_mb"] = queue_bytes / 2**20
        out["bytes_per_message"] = queue_bytes / max(1, out["queued_at_end"])
    finally:
        for wk in workers:
            wk.stop()
        r.flushdb()  # don't run the batch: drop its messages and state
    log(
        f"publish: CLI {out.get('cli_s', 0):.2f} s, {out.get('expected') or 0:,} of {pairs:,}"
        f" pairs' messages queued after {fmt(out.get('all_queued_s'), '.2f')} s"
    )
    return out


# -- output ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    mem_kb = status_line("/proc/meminfo", "MemTotal")
    try:
        varnish = subprocess.run(
            ["varnishd", "-V"], capture_output=True, text=True, check=False
        ).stderr.splitlines()[0]
    except (OSError, IndexError):
        try:
            varnish = subprocess.run(
                ["/usr/sbin/varnishd", "-V"], capture_output=True, text=True, check=False
            ).stderr.splitlines()[0]
        except (OSError, IndexError):
            varnish = "?"
    import celery

    return {
        "nproc": str(os.cpu_count()),
        "ram": f"{mem_kb / 2**20:.1f} GiB",
        "cpu": cpu,
        "python": platform.python_version(),
        "celery": celery.__version__,
        "varnish": varnish,
        "kernel": platform.release(),
    }


def source_fingerprint() -> str:
    """sha256 of the package's source, to tell which state of it a result belongs to."""
    h = hashlib.sha256()
    for f in sorted((ROOT / "warming").rglob("*")):
        if f.suffix in (".py", ".vcl") and f.is_file():
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def celery_settings(config: Path) -> str:
    """The Celery settings this bench depends on, as the workers will load them."""
    code = (
        "from warming.broker.app import app; c = app.conf; print(' '.join(f'{k}={c[k]}' for k in"
        " ('task_send_sent_event', 'worker_send_task_events', 'worker_prefetch_multiplier',"
        " 'task_acks_late', 'task_annotations')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env_for(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or f"? ({done.stderr.strip()[-200:]})"


def status_line(path: str, key: str) -> int:
    for ln in Path(path).read_text().splitlines():
        if ln.startswith(key + ":"):
            return int(ln.split()[1])
    return 0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def fmt(v: Any, spec: str = ".1f") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def print_tables(
    runs: list[RunResult], pool_runs: list[RunResult], pub: dict[str, Any] | None, limit: float
) -> list[tuple[str, bool]]:
    checks: list[tuple[str, bool]] = []
    print()
    print(f"### Scale-out: limits.prefetch = {limit:g}/s for the whole cluster")
    print()
    head = (
        "| workers | pool | GETs | req/s (% of limit) | max in any 1 s (vs limit) "
        "| max 1 s: shield / busiest edge | 429s | all verified in (ideal) | origin req/URL "
        "| peak RSS per worker | all HIT |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for res in runs + pool_runs:
        m, sc = res.m, res.scenario
        over = (m.get("max_window", 0) - limit) / limit
        c = m.get("counts", {})
        all_hit = c.get("hit") == c.get("total") == res.pairs and m.get("state") == "done"
        per_pop = m.get("max_window_per_pop", {})
        edge_max = max((v for k, v in per_pop.items() if k != "shield"), default=0)
        print(
            f"| {sc.workers} | {sc.pool} -c {sc.concurrency} | {m['gets']}"
            f" | {fmt(m.get('rate'))} ({100 * m.get('rate', 0) / limit:.0f}%)"
            f" | {m.get('max_window')} ({over:+.1%})"
            f" | {per_pop.get('shield', 0)} / {edge_max}"
            f" | {m['n429']}"
            f" | {fmt(m['verified_s'])} s ({m['ideal_s']:.0f} s,"
            f" x{(m['verified_s'] or 0) / m['ideal_s']:.2f})"
            f" | {m['origin_per_url']:.2f}"
            f" | {' / '.join(f'{x:.0f}' for x in m['rss_tree_mb'])} MB"
            f" | {'yes' if all_hit else 'NO: ' + json.dumps(c)} |"
        )
    print()
    print("Where the time went (CPU seconds during the run, all processes on the machine):")
    print()
    head2 = (
        "| workers | pool | busy period | first GET after `warm` started | shield->edge gap "
        "| GETs/pair | edge fills | workers | Redis | 4 varnishd | 4 varnishncsa "
        "| bench+origin | `warming warm` | other processes | machine busy (steal) "
        "| PoP log = varnishstat |"
    )
    print(head2)
    print("|" + "---|" * (head2.count("|") - 1))
    for res in runs + pool_runs:
        m, sc = res.m, res.scenario
        cpu = m["cpu"]
        print(
            f"| {sc.workers} | {sc.pool} -c {sc.concurrency} | {fmt(m.get('busy_s'))} s"
            f" | {fmt(m.get('first_get_after_publish_s'), '.2f')} s"
            f" | {fmt(m.get('phase_gap_s'), '.2f')} s"
            f" | {m['gets_per_pair']:.3f} | {m['fills']}"
            f" | {' + '.join(f'{x:.1f}' for x in cpu['workers'])}"
            f" | {cpu['redis']:.1f} | {cpu['varnishd']:.1f} | {cpu['varnishncsa']:.1f}"
            f" | {cpu['bench+origin']:.1f} | {cpu['warming CLI']:.1f} | {cpu['others']:.1f}"
            f" | {100 * cpu['machine_busy']:.0f}% ({100 * cpu['machine_steal']:.0f}%)"
            f" | {'yes' if m['log_ok'] else m['log_check']} |"
        )
    for res in runs + pool_runs:
        share = res.m["cpu"]["others_share"]
        if share > CONTENDED_SHARE:
            print(
                f"\nNote: other processes used {share:.0%} of the machine's CPU during the"
                f" {res.scenario.workers} x {res.scenario.pool} run: its figures are pessimistic."
            )
    for res in runs + pool_runs:
        m, sc = res.m, res.scenario
        if sc.workers < 2:
            continue
        name = f"{sc.workers} x {sc.pool} -c {sc.concurrency}"
        over = (m.get("max_window", 0) - limit) / limit
        checks.append(
            (f"{name}: no 1 s window > limit +10% (max {over:+.1%})", over <= MAX_WINDOW_OVER)
        )
        checks.append((f"{name}: zero 429s ({m['n429']})", m["n429"] == 0))
        share = m.get("rate", 0) / limit
        checks.append((f"{name}: mean rate >= 90% of limit ({share:.0%})", share >= MIN_RATE_SHARE))
    if pool_runs:
        print()
        print("### Pool: 2 worker processes")
        print()
        print(
            "| pool | req/s (% of limit) | verified in | peak RSS per worker (VmHWM, sum of tree)"
            " | peak PSS per worker (tree) | processes per worker | largest process"
            " | worker CPU s |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for res in [x for x in runs if x.scenario.workers == 2] + pool_runs:
            m, sc = res.m, res.scenario
            procs = max(len(v) for v in m["rss_mb"].values())
            print(
                f"| {sc.pool} -c {sc.concurrency} | {fmt(m.get('rate'))}"
                f" ({100 * m.get('rate', 0) / limit:.0f}%) | {fmt(m['verified_s'])} s"
                f" | {' / '.join(f'{x:.0f}' for x in m['rss_tree_mb'])} MB"
                f" | {' / '.join(f'{x:.0f}' for x in m['pss_tree_mb'])} MB | {procs}"
                f" | {m['rss_max_proc_mb']:.0f} MB"
                f" | {' + '.join(f'{x:.1f}' for x in m['cpu']['workers'])} |"
            )
    if pub:
        print()
        print(f"### Publishing a {pub['pairs']:,}-pair batch ({pub['urls']:,} URLs x 4 PoPs)")
        print()
        print(
            "| `warming warm` returned | first prefetch queued"
            " | its prefetch messages all queued (how many: slices) | messages/s"
            " | publisher peak RSS | worker peak RSS"
            " | CPU s: publisher / worker / Redis / other processes | `warming.prefetch` in Redis |"
        )
        print("|---|---|---|---|---|---|---|---|")
        print(
            f"| {pub['cli_s']:.2f} s | {fmt(pub['first_queued_s'], '.2f')} s"
            f" | {fmt(pub['all_queued_s'], '.2f')} s ({pub.get('expected') or 0:,}:"
            f" {pub.get('window_slices')} slices; {pub['queued_at_end']:,} seen)"
            f" | {pub.get('msgs_per_s', 0):.0f}"
            f" | {pub['publisher_rss_mb']:.0f} MB | {pub['worker_rss_mb']:.0f} MB"
            f" | {pub['publisher_cpu_s']:.1f} / {pub['worker_cpu_s']:.1f}"
            f" / {pub['redis_cpu_s']:.1f} / {pub['others_cpu_s']:.1f}"
            f" | {pub['queue_mb']:.0f} MB ({pub['bytes_per_message']:.0f} B/message) |"
        )
        if pub["others_share"] > CONTENDED_SHARE:
            print(
                f"\nNote: other processes used {pub['others_share']:.0%} of the machine's CPU"
                " while publishing: the time is pessimistic."
            )
        if pub.get("expected") and pub["expected"] < pub["pairs"]:
            print(
                f"\nPublishing queues the first {pub['window_slices']} slices"
                f" ({pub['expected']:,} of {pub['pairs']:,} pairs); each verified slice launches"
                " the next, so the rest never sit in the broker at once."
            )
        t = pub["all_queued_s"]
        checks.append(
            (
                f"publish {pub['pairs']:,} pairs <= 30 s ({fmt(t, '.1f')} s until its"
                f" {pub.get('expected') or 0:,} prefetch messages were queued)"
                + ("" if pub["pairs"] == 100_000 else "; the target is for 100,000 pairs"),
                t is not None and t <= PUBLISH_TARGET_S,
            )
        )
        top = max(pub["publisher_rss_mb"], pub["worker_rss_mb"])
        checks.append(
            (f"publish: every process < 500 MB (largest {top:.0f} MB)", top < RSS_TARGET_MB)
        )
    print()
    print("### Targets")
    print()
    for what, ok in checks:
        print(f"- {verdict(ok)}: {what}")
    return checks


# -- main -----------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2,4", help="worker process counts, comma-separated")
    p.add_argument("--urls", type=int, default=600, help="URLs per run (x 4 PoPs = pairs)")
    p.add_argument("--rate", default="120/s", help="limits.prefetch")
    p.add_argument("--throttle", type=int, default=150, help="each edge answers 429 above this")
    p.add_argument("--latency-ms", type=float, default=20.0, help="origin latency")
    p.add_argument("--threads", type=int, default=THREADS, help="-c for -P threads workers")
    p.add_argument("--prefork", type=int, default=4, help="-c for the prefork comparison (0: skip)")
    p.add_argument(
        "--publish-urls", type=int, default=25_000, help="URLs in the big publish (0: skip)"
    )
    p.add_argument("--publish-timeout", type=float, default=300.0)
    p.add_argument(
        "--publish-threads", type=int, default=THREADS, help="-c of the publishing worker"
    )
    p.add_argument("--purge", action="store_true", help="publish with a purge (default --no-purge)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    p.add_argument("--json", type=Path, help="also write every measurement here")
    p.add_argument(
        "--quick", action="store_true", help="150 URLs, 1 and 2 workers, 10k-pair publish"
    )
    args = p.parse_args()
    if args.quick:
        args.urls, args.workers, args.publish_urls = 150, "1,2", 2_500
    limit = Rate.parse(args.rate).per_second

    r = redis.Redis.from_url(args.redis)
    r.ping()
    r.flushdb()
    info = machine()
    info["redis"] = r.info("server")["redis_version"]
    info["warming source sha256"] = source_fingerprint()
    info["load average at start"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print("## Machine")
    print()
    for k, v in info.items():
        print(f"- {k}: {v}")
    print(f"- command: {' '.join(['python', *sys.argv])}")
    print(
        f"- world: origin latency {args.latency_ms:g} ms, shield + {N_EDGES} edge Varnish PoPs,"
        f" edges answer 429 above {args.throttle} GET/s each; limits.prefetch {args.rate};"
        f" {args.urls} URLs x 4 PoPs = {args.urls * 4:,} pairs per run;"
        f" {'purge' if args.purge else '--no-purge (fresh URLs per run)'}"
    )
    sys.stdout.flush()

    runs: list[RunResult] = []
    pool_runs: list[RunResult] = []
    pub = None
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as td:
        tmp = Path(td)
        world = start_world(
            n_edges=N_EDGES, shield=True, throttle_rps=args.throttle,
            latency_s=args.latency_ms / 1000,
        )  # fmt: skip
        try:
            if world.kind != "varnish":
                print("bench_cluster needs varnishd (and varnishncsa) installed", file=sys.stderr)
                return 2
            config = write_config(
                tmp / "warming.toml",
                args.redis,
                world.pops(),
                {"prefetch": args.rate, "purge": "500/s"},
            )
            info["celery settings"] = celery_settings(config)
            print(f"- celery settings: {info['celery settings']}")
            sys.stdout.flush()
            run_idx = 0
            for n in [int(x) for x in args.workers.split(",") if x]:
                run_idx += 1
                sc = Scenario(f"{n} workers", n, "threads", args.threads)
                runs.append(run_scenario(args, r, world, config, tmp, sc, run_idx))
            if args.prefork:
                run_idx += 1
                sc = Scenario("2 workers, prefork", 2, "prefork", args.prefork)
                pool_runs.append(run_scenario(args, r, world, config, tmp, sc, run_idx))
            if args.publish_urls:
                pub = run_publish(args, r, world, tmp)
        finally:
            world.stop()
            r.flushdb()
    checks = print_tables(runs, pool_runs, pub, limit)
    print()
    print(f"bench took {time.monotonic() - t_start:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "runs": [
                        {"scenario": vars(x.scenario), "pairs": x.pairs, **x.m}
                        for x in runs + pool_runs
                    ],
                    "publish": pub,
                    "checks": checks,
                },
                indent=1,
                default=str,
            )
        )
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
