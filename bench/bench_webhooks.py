"""Webhook shim under load, and webhook-to-verified-HIT latency, on this machine.

    python bench/bench_webhooks.py [--duration 15] [--connections 4,8,16] [--runs 60]

Everything is real and on 127.0.0.1: Redis (database 8, flushed), an origin with
20 ms latency and 3 Varnish PoPs (`start_world`), `warming serve --workers 2` (the
shim as deployed: one process per core) and one `celery -A warming worker` process.

1. Throughput: wrk (another process) posts webhooks that are all new and validly
   signed: unique webhook-id, timestamp taken right before the run, distinct paths
   (or one path, the "same URL burst" case). They are generated just before each
   run into a data file that a wrk Lua script reads; each wrk thread takes every
   T-th request and never repeats one. The Lua `response()` hook counts 202s and
   anything else, and the number of new batches in `warming:recent` is checked
   against the 202s. Cases: with the worker running (it purges and warms what
   arrives, as in production) and with the worker stopped (the shim alone), each
   as fast as wrk can (closed loop); and a paced case, 32 connections each waiting
   a random 0-2x the mean gap between requests, offering about --paced per second.
2. Latency: for each run a fresh path is cached at the 3 PoPs (old content), the
   origin content is bumped, one signed webhook is posted, and `GET /batches/{id}`
   is polled every 10 ms until the batch is final; counts.hit must be 3 and every
   PoP must then serve the new version as a HIT. Runs first, on a quiet system.
3. Breakdown: Shim.handle() in one process, sequential and without HTTP, each stage
   timed (wall and CPU).

Every throughput row also says where the machine's CPU went during the run (shim,
worker, Redis, wrk, other tenants of a shared machine) and the shim's CPU time per
request, which is what bounds the shim: one process cannot use more than one core.
Defaults take about 4 minutes. Results and their reading: bench/RESULTS_WEBHOOKS.md.

Options:
  --workers N            `warming serve --workers N` (default 2: one per core here);
  --pythonpath DIR       put DIR first on the shim's PYTHONPATH (e.g. other versions
                         of uvicorn's optional uvloop/httptools);
  --origin-nodelay       the sandbox origin (in this process) sets TCP_NODELAY;
  --paced RPS            part 1 also offers a fixed RPS (wrk's delay() per
                         connection) and reports latency at that load, not only
                         at saturation.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/8"
SECRET = "whsec_" + base64.b64encode(b"bench-webhooks-secret-0123456789").decode()
SITE = "http://www.example.com"  # tests.support.SITE
WRK = shutil.which("wrk") or "/usr/bin/wrk"
# Requests generated per second of a wrk run: far above what one shim process can
# take, so that no wrk thread ever runs out (it would say so: "exhausted").
GEN_RPS_CAP = 5000
LIMITS = {"prefetch": "200/s", "purge": "200/s"}
FINAL = ("done", "failed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(config: Path, pythonpath: str | None = None) -> dict[str, str]:
    from tests.support import env_for

    env = env_for(config)
    paths = [p for p in (pythonpath, str(ROOT), env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class Shim:
    """`warming serve` (or the uvicorn --workers variant) as a subprocess."""

    def __init__(
        self,
        config: Path,
        log: Path,
        workers: int = 1,
        pythonpath: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        host_port = ["--host", "127.0.0.1", "--port", str(self.port)]
        cmd = [sys.executable, "-m", "warming", "serve", *host_port, "--workers", str(workers)]
        self.cmd = cmd
        self.pythonpath = pythonpath
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            env={**_env(config, pythonpath), **(extra_env or {})},
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        import requests

        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shim exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                if requests.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("shim not ready in 30 s")

    def server_info(self) -> str:
        """Which event loop and HTTP parser uvicorn picked in the shim's environment."""
        code = (
            "import importlib.util as u;"
            "print('uvloop' if u.find_spec('uvloop') else 'asyncio',"
            "'httptools' if u.find_spec('httptools') else 'h11')"
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = _env(Path("/nonexistent"), self.pythonpath)["PYTHONPATH"]
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        loop, http = out.stdout.split()
        return f"loop={loop} http={http}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._out.close()


def start_worker(config: Path, log: Path) -> Any:
    from tests.support import Worker

    if log.exists():
        log.unlink()
    return Worker(config, log, concurrency=8)


def reset_redis(r: Any, everything: bool = False) -> int:
    """Delete the bench's keys; keep kombu's queue bindings unless `everything`.

    A publisher declares its queues (the `_kombu.binding.*` sets) once per process;
    deleting them under a running shim would make kombu drop its messages.
    """
    if everything:
        n = int(r.dbsize())
        r.flushdb()
        return n
    n = 0
    batch: list[bytes] = []
    for key in r.scan_iter(count=5000):
        if key.startswith(b"_kombu.binding."):
            continue
        batch.append(key)
        if len(batch) >= 5000:
            n += int(r.unlink(*batch))
            batch.clear()
    if batch:
        n += int(r.unlink(*batch))
    return n


# -- CPU accounting ---------------------------------------------------------------
# This machine may be shared: every run also says how much CPU went where, so that
# a slow figure can be told apart from a busy neighbour.

TICK = os.sysconf("SC_CLK_TCK")


def _procs() -> dict[int, tuple[str, int, int, int]]:
    """pid -> (comm, ppid, pgrp, utime + stime ticks) for every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        f = raw[raw.rindex(")") + 2 :].split()
        out[int(d.name)] = (comm, int(f[1]), int(f[2]), int(f[11]) + int(f[12]))
    return out


def _machine_ticks() -> tuple[int, int, int]:
    """(busy, total, steal) ticks of all CPUs since boot."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    total = sum(f[:8])
    return total - idle, total, f[7]


class CpuMeter:
    """CPU used during an interval by the shim, the worker, Redis, wrk and everyone else."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups  # name -> process group id (each started with a new session)
        self.t0 = time.monotonic()
        self.p0 = _procs()
        self.m0 = _machine_ticks()

    def stop(self) -> dict[str, float]:
        """Percent of one core per category, over the interval (like `top`)."""
        p1, m1 = _procs(), _machine_ticks()
        secs = time.monotonic() - self.t0
        me = os.getpid()
        by_pgrp = {v: k for k, v in self.groups.items()}
        parents = {pid: v[1] for pid, v in p1.items()}

        def mine(pid: int) -> bool:
            for _ in range(64):
                if pid == me:
                    return True
                pid = parents.get(pid, 0)
                if pid <= 1:
                    return False
            return False

        names = [*self.groups, "redis", "bench other", "others"]
        use: dict[str, float] = dict.fromkeys(names, 0)
        for pid, (comm, _ppid, pgrp, ticks) in p1.items():
            d = ticks - (self.p0[pid][3] if pid in self.p0 else 0)
            if d <= 0:
                continue
            if pgrp in by_pgrp:
                use[by_pgrp[pgrp]] += d
            elif comm.startswith("redis-server"):
                use["redis"] += d
            elif mine(pid):
                use["bench other"] += d
            else:
                use["others"] += d
        out = {k: 100 * v / TICK / secs for k, v in use.items()}
        busy, total, steal = (a - b for a, b in zip(m1, self.m0, strict=True))
        ncpu = os.cpu_count() or 1
        out["machine busy"] = 100 * ncpu * busy / max(total, 1)
        out["steal"] = 100 * ncpu * steal / max(total, 1)
        out["seconds"] = secs
        return out


# -- 1. throughput -------------------------------------------------------------

LUA = r"""
local datafile = "@DATAFILE@"
local expect = @EXPECT@
local pace_ms = @DELAY@
local threads = {}

if pace_ms > 0 then
  -- A random wait (mean pace_ms): a fixed one keeps the connections in lockstep, and
  -- they arrive as bursts of c requests followed by silence.
  function delay() return math.random(0, 2 * pace_ms) end
end

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[1])
  reqs, n, ok, other, exhausted = {}, 0, 0, 0, 0
  codes = ""
  seen = {}
  if datafile == "" then
    get = wrk.format("GET", "/healthz")
    return
  end
  local i = 0
  for line in io.lines(datafile) do
    if i % nthreads == tid then
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/webhooks/generic", {
        ["webhook-id"] = id,
        ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig,
        ["Content-Type"] = "application/json",
      }, body)
    end
    i = i + 1
  end
end

function request()
  n = n + 1
  if get then return get end
  if n > #reqs then
    exhausted = exhausted + 1
    return wrk.format("GET", "/healthz")
  end
  return reqs[n]
end

function response(status, headers, body)
  if status == expect then
    ok = ok + 1
  else
    other = other + 1
    seen[status] = (seen[status] or 0) + 1
    local parts = {}
    for k, v in pairs(seen) do parts[#parts + 1] = k .. ":" .. v end
    codes = table.concat(parts, ",")
  end
end

function done(summary, latency, requests)
  local tok, tother, texh, sent = 0, 0, 0, 0
  local codes_all = {}
  for _, t in ipairs(threads) do
    tok = tok + t:get("ok")
    tother = tother + t:get("other")
    texh = texh + t:get("exhausted")
    sent = sent + t:get("n")
    local c = t:get("codes")
    if c ~= "" then codes_all[#codes_all + 1] = c end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\"requests\":%d,\"duration_us\":%d,\"ok\":%d,\"other\":%d,"
    .. "\"exhausted\":%d,\"sent\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,"
    .. "\"max_us\":%d,\"mean_us\":%.1f,\"connect\":%d,\"read\":%d,\"write\":%d,"
    .. "\"timeout\":%d,\"codes\":\"%s\"}\n",
    summary.requests, summary.duration, tok, tother, texh, sent,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.timeout,
    table.concat(codes_all, ";")))
end
"""

# What a case sends: new signed webhooks for distinct paths or for one path, webhooks
# with a wrong signature (401: the HTTP stack and HMAC, no Redis), or GET /healthz.
KINDS = {
    "distinct": ("POST /webhooks/generic, distinct URLs", 202),
    "same": ("POST /webhooks/generic, one URL (burst)", 202),
    "badsig": ("POST /webhooks/generic, wrong signature", 401),
    "healthz": ("GET /healthz", 200),
}


@dataclass
class Case:
    label: str
    kind: str
    worker: bool
    connections: int
    duration: int
    # Each connection waits 0 to 2x this long (at random) after an answer before its
    # next request (wrk's delay()): a paced load below saturation, not as fast as possible.
    delay_ms: int = 0


@dataclass
class WrkResult:
    case: Case
    threads: int
    generated: int = 0
    res: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    new_batches: int = 0
    cmd: str = ""

    @property
    def seconds(self) -> float:
        return float(self.res["duration_us"]) / 1e6

    @property
    def rps_ok(self) -> float:
        return float(self.res["ok"]) / self.seconds

    @property
    def non_ok(self) -> int:
        r = self.res
        return int(r["other"] + r["connect"] + r["read"] + r["write"] + r["timeout"])

    @property
    def shim_ms_per_req(self) -> float:
        n = self.res["requests"]
        return 10 * self.cpu["shim"] * self.cpu["seconds"] / n if n else float("nan")

    def row(self) -> list[str]:
        r, c, cpu = self.res, self.case, self.cpu
        expect = KINDS[c.kind][1]
        return [
            c.label,
            "running" if c.worker else "stopped",
            f"-t{self.threads} -c{c.connections}",
            f"{self.seconds:.0f}",
            f"{r['ok']} ({expect})",
            f"{self.rps_ok:,.0f}",
            f"{r['p50_us'] / 1000:.1f}",
            f"{r['p99_us'] / 1000:.1f}",
            f"{r['max_us'] / 1000:.0f}",
            f"{self.non_ok}" + (f" ({r['codes']})" if r["codes"] else ""),
            f"{self.new_batches}" if expect == 202 else "-",
            f"{cpu['shim']:.0f}",
            f"{self.shim_ms_per_req:.2f}",
            f"{cpu.get('worker', 0):.0f}",
            f"{cpu['redis']:.0f}",
            f"{cpu['wrk']:.0f}",
            f"{cpu['others']:.0f}",
            f"{cpu['machine busy']:.0f}",
        ]


HEADER = [
    "case", "worker", "wrk", "s", "ok (status)", "ok/s", "p50 ms", "p99 ms", "max ms",
    "non-ok", "new batches", "shim CPU %", "shim CPU ms/req", "worker CPU %",
    "redis CPU %", "wrk CPU %", "other tenants CPU %", "machine busy %",
]  # fmt: skip


def generate(path: Path, n: int, kind: str, run_tag: str) -> None:
    """`n` new webhooks, signed now: id, timestamp, signature, body, tab-separated."""
    from warming.cms.standard import sign

    secret = SECRET if kind != "badsig" else "whsec_" + base64.b64encode(b"x" * 32).decode()
    ts = int(time.time())
    with path.open("w") as f:
        for i in range(n):
            msg_id = f"msg_{run_tag}_{i}_{uuid.uuid4().hex[:8]}"
            page = "/burst/one-page" if kind == "same" else f"/wh/{run_tag}/{i}"
            body = json.dumps({"paths": [page]}, separators=(",", ":"))
            f.write(f"{msg_id}\t{ts}\t{sign(secret, msg_id, ts, body)}\t{body}\n")


def run_wrk(
    shim: Shim, r: Any, work: Path, case: Case, threads: int, groups: dict[str, int]
) -> WrkResult:
    from warming import keys as K

    tag = uuid.uuid4().hex[:8]
    data = work / f"wrk-{tag}.tsv"
    script = work / f"wrk-{tag}.lua"
    out = WrkResult(case, threads)
    if case.kind != "healthz":
        out.generated = GEN_RPS_CAP * (case.duration + 2)
        generate(data, out.generated, case.kind, tag)
    lua = LUA.replace("@DATAFILE@", str(data) if out.generated else "")
    lua = lua.replace("@DELAY@", str(case.delay_ms))
    script.write_text(lua.replace("@EXPECT@", str(KINDS[case.kind][1])))
    before = int(r.zcard(K.RECENT))
    cmd = [
        WRK, f"-t{threads}", f"-c{case.connections}", f"-d{case.duration}s", "--latency",
        "--timeout", "5s", "-s", str(script), shim.base, "--", str(threads),
    ]  # fmt: skip
    out.cmd = " ".join([*cmd[:-3], "http://127.0.0.1:PORT", "--", str(threads)])
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    meter = CpuMeter(groups)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        stdout, stderr = proc.communicate(timeout=case.duration + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    out.cpu = meter.stop()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, reaped by communicate()
    wrk_s = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    out.cpu["wrk"] = 100 * wrk_s / out.cpu["seconds"]
    m = re.search(r"^BENCHJSON (.*)$", stdout, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stdout}\n{stderr}")
    out.res = json.loads(m.group(1))
    time.sleep(0.5)  # requests answered after wrk's clock stopped still make batches
    out.new_batches = int(r.zcard(K.RECENT)) - before
    data.unlink(missing_ok=True)
    return out


# -- 2. webhook to verified HIT --------------------------------------------------


@dataclass
class Run:
    path: str
    total_s: float
    post_ms: float
    hits: int
    fresh: bool
    server_s: float
    states: dict[str, float]  # first time (s after the POST) each state was seen


def _signed(path: str) -> tuple[bytes, dict[str, str]]:
    from warming.cms.standard import sign

    body = json.dumps({"paths": [path]}).encode()
    msg_id = f"msg_lat_{uuid.uuid4().hex}"
    ts = int(time.time())
    return body, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, msg_id, ts, body),
        "content-type": "application/json",
    }


def _iso(s: str) -> float:
    return datetime.fromisoformat(s).timestamp()


def latency_runs(shim: Shim, world: Any, runs: int, poll_s: float) -> list[Run]:
    import requests

    from tests.support import probe

    sess = requests.Session()
    out: list[Run] = []
    tag = uuid.uuid4().hex[:6]
    for i in range(runs):
        path = f"/lat/{tag}/{i}"
        url = SITE + path
        for pop in world.pops():  # the PoPs hold the old version
            probe(pop["url"], url)
        world.origin.bump(path)
        version = world.origin.version(path)
        body, headers = _signed(path)
        t0 = time.perf_counter()
        resp = sess.post(shim.base + "/webhooks/generic", data=body, headers=headers, timeout=10)
        post_ms = (time.perf_counter() - t0) * 1000
        if resp.status_code != 202:
            raise RuntimeError(f"webhook answered {resp.status_code}: {resp.text}")
        bid = resp.json()["batch_id"]
        states: dict[str, float] = {}
        deadline = t0 + 30
        while True:
            rep = sess.get(f"{shim.base}/batches/{bid}", timeout=10).json()
            now = time.perf_counter()
            states.setdefault(rep["state"], now - t0)
            if rep["state"] in FINAL or now > deadline:
                break
            time.sleep(poll_s)
        total = now - t0
        fresh = True
        for pop in world.pops():
            got = probe(pop["url"], url)
            fresh &= got.headers.get("X-Cache") == "HIT" and f"version {version}" in got.text
        server = (
            _iso(rep["finished_at"]) - _iso(rep["started_at"]) if rep.get("finished_at") else -1
        )
        out.append(Run(path, total, post_ms, rep["counts"]["hit"], fresh, server, states))
    return out


TASK_RE = re.compile(r"Task (warming\.\w+)\[[^\]]+\] succeeded in ([0-9.e-]+)s")


def task_times(worker_log: str) -> dict[str, list[float]]:
    """Run time of every succeeded task in a worker log, by task name (seconds)."""
    out: dict[str, list[float]] = {}
    for m in TASK_RE.finditer(worker_log):
        out.setdefault(m.group(1), []).append(float(m.group(2)))
    return out


# -- 3. where one webhook's CPU goes ------------------------------------------------


def breakdown_child(config: str, n: int) -> dict[str, list[float]]:
    """In this process: Shim.handle() n times, each stage timed (wall and thread CPU, µs).

    Sequential and without HTTP, so the figures are the handler's own costs; the
    stages are timed by wrapping the functions handle() calls, not by copying it.
    """
    os.environ["WARMING_CONFIG"] = config
    import asyncio
    from collections import defaultdict

    import redis

    import warming.shim.app as shim_mod
    from warming.cms import ADAPTERS
    from warming.runtime import use
    from warming.settings import load_settings

    rt = use(load_settings())
    shim = shim_mod.Shim(rt)
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                acc[name][0] += time.perf_counter() - t
                acc[name][1] += time.thread_time() - c

        return wrapper

    def timed_async(name: str, fn: Any) -> Any:
        async def wrapper(*a: Any, **k: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return await fn(*a, **k)
            finally:
                acc[name][0] += time.perf_counter() - t
                acc[name][1] += time.thread_time() - c

        return wrapper

    generic = ADAPTERS["generic"]
    stages = [
        ("verify signature (HMAC)", generic, "verify"),
        ("parse body", generic, "parse"),
        ("select (filter URLs)", shim_mod, "select"),
        ("purge message (Celery as_task_v2 + kombu envelope)", shim_mod, "purge_message"),
        ("record args (plan, JSON, script ARGV)", rt.store, "create_args"),
    ]
    for name, obj, attr in stages:
        setattr(obj, attr, timed(name, getattr(obj, attr)))
    handle = timed_async("whole Shim.handle()", shim.handle)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        client, script = shim._redis()
        shim._client = (loop, client, timed_async("accept script (one EVALSHA)", script))

        async def one(i: int) -> None:
            body, headers = _signed(f"/breakdown/{uuid.uuid4().hex}/{i}")
            status, _ = await handle("generic", "/webhooks/generic", headers, body)
            assert status == 202, status

        for i in range(100):  # warm-up: connections, script load
            await one(i)
        acc.clear()
        for i in range(n):
            await one(i)
        await shim.close()

    asyncio.run(main())
    out = {k: [1e6 * v[0] / n, 1e6 * v[1] / n] for k, v in acc.items()}
    inner = [v for k, v in out.items() if not k.startswith("whole")]
    whole = out["whole Shim.handle()"]
    out["rest of handle()"] = [
        whole[0] - sum(v[0] for v in inner),
        whole[1] - sum(v[1] for v in inner),
    ]
    client = redis.Redis.from_url(rt.broker_url)
    t, c = time.perf_counter(), time.thread_time()
    for _ in range(n):
        client.ping()
    out["(one PING round trip, sync client)"] = [
        1e6 * (time.perf_counter() - t) / n,
        1e6 * (time.thread_time() - c) / n,
    ]
    return out


def part3(config: Path, r: Any, n: int) -> dict[str, Any]:
    print(
        f"\n== 3. where one webhook's time goes: Shim.handle() x {n} in one process, "
        "sequential, no HTTP (µs per webhook) ==",
        flush=True,
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--breakdown-child", str(config), str(n)],
        env=_env(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    m = re.search(r"^BREAKDOWN (.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"breakdown failed: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    got = json.loads(m.group(1))
    reset_redis(r)
    rows = [[k, f"{v[0]:.0f}", f"{v[1]:.0f}"] for k, v in got.items()]
    print(table(["stage", "wall µs", "CPU µs"], rows))
    return got


# -- report ------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> dict[str, str]:
    import redis

    def sh(*cmd: str) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            return (out.stdout + out.stderr).strip()
        except OSError:
            return "?"

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    from warming.sandbox.varnish import _find

    varnishd = _find("varnishd") or "varnishd"
    import celery
    import fastapi
    import uvicorn

    return {
        "load average at start": Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__(),
        "nproc": sh("nproc"),
        "RAM": mem,
        "CPU": cpu,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "Redis": str(redis.Redis.from_url(REDIS_URL).info("server")["redis_version"]),
        "Varnish": (sh(varnishd, "-V").splitlines() or ["?"])[0],
        "wrk": (sh(WRK, "-v").split(" Copyright")[0] or "?"),
        "uvicorn / fastapi / celery": f"{uvicorn.__version__} / {fastapi.__version__} / "
        f"{celery.__version__}",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    p.add_argument("--connections", default="4,8,16", help="wrk -c values (distinct URLs)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t")
    p.add_argument("--runs", type=int, default=60, help="latency runs (part 2)")
    p.add_argument("--poll-ms", type=float, default=10.0)
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument(
        "--cases",
        default="reference,alone,worker,burst",
        help="part 1 cases: reference (GET /healthz, bad signature), alone (worker stopped),\n"
        "worker (worker running), burst (one URL, worker running)",
    )
    p.add_argument("--workers", type=int, default=2, help="warming serve --workers N")
    p.add_argument(
        "--paced", type=int, default=1200, help="also a paced case at about this rate/s (0: off)"
    )
    p.add_argument("--pythonpath", default=None, help="variant: see the docstring")
    p.add_argument(
        "--origin-nodelay",
        action="store_true",
        help="variant: TCP_NODELAY on the sandbox origin's sockets (see RESULTS_WEBHOOKS.md)",
    )
    p.add_argument("--breakdown", type=int, default=600, help="part 3: webhooks (0: skip)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--breakdown-child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.breakdown_child:
        config, n = args.breakdown_child
        got = breakdown_child(config, int(n))
        print("BREAKDOWN " + json.dumps(got))
        return 0

    sys.path.insert(0, str(ROOT))  # tests.support: write_config, Worker, probe
    import redis

    from tests.support import write_config
    from warming.sandbox import start_world, varnish_available

    t_start = time.monotonic()
    if args.origin_nodelay:
        # Measurement aid, not a fix: the sandbox origin writes headers and body in two
        # sends with Nagle on, so a keep-alive fetch can wait ~40 ms for a delayed ACK.
        from warming.sandbox import origin

        origin._Handler.disable_nagle_algorithm = True
    if not varnish_available():
        print("varnishd is not installed: the PoPs would be Python proxies", file=sys.stderr)
    if not args.skip_throughput and not Path(WRK).exists():
        print("wrk is not installed (apt-get install wrk): it generates the load", file=sys.stderr)
        return 2
    r = redis.Redis.from_url(REDIS_URL)
    reset_redis(r, everything=True)
    info = machine()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    summary: dict[str, Any] = {"machine": info}
    with start_world(n_edges=3, latency_s=0.02) as world:
        config = write_config(
            work / "warming.toml",
            REDIS_URL,
            world.pops(),
            limits=LIMITS,
            webhook={"secrets": [SECRET]},
        )
        print(f"world: {world.kind} PoPs {[x['name'] for x in world.pops()]}, origin +20 ms")
        extra_env, pythonpath = {}, args.pythonpath
        shim = Shim(config, work / "shim.log", args.workers, pythonpath, extra_env)
        server = shim.server_info()
        if extra_env:
            server += " " + " ".join(f"{k}={v}" for k, v in extra_env.items())
        print(f"shim: {' '.join(shim.cmd[2:])} (pid {shim.proc.pid}, {server})", flush=True)
        summary["shim"] = {"cmd": shim.cmd[2:], "server": server}
        worker = start_worker(config, work / "worker.log")
        try:
            if not args.skip_latency:
                summary["latency"] = part2(shim, world, worker, args)
            if not args.skip_throughput:
                worker = part1(shim, r, work, worker, config, args, summary)
            if args.breakdown:
                if worker is not None:
                    worker.stop()
                    worker = None
                reset_redis(r)
                summary["breakdown"] = part3(config, r, args.breakdown)
        finally:
            if worker is not None:
                worker.stop()
            shim.stop()
            problems = [
                line
                for line in shim.log.read_text(errors="replace").splitlines()
                if "ERROR" in line or "Traceback" in line or "WARNING" in line
            ]
            summary["shim_log_problems"] = len(problems)
            print(f"\nshim log: {len(problems)} warning/error lines", *problems[:5], sep="\n  ")
    reset_redis(r, everything=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nwhole bench: {time.monotonic() - t_start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 0


def part1(
    shim: Shim, r: Any, work: Path, worker: Any, config: Path, args: argparse.Namespace,
    summary: dict[str, Any],
) -> Any:  # fmt: skip
    conns = [int(c) for c in args.connections.split(",") if c]
    d, ref = args.duration, max(5, args.duration // 2)
    want = set(args.cases.split(","))
    cases: list[Case] = []
    if "reference" in want:
        for k in ("healthz", "badsig"):
            cases.append(Case(f"reference: {KINDS[k][0]}", k, False, conns[0], ref))
    if "alone" in want:
        cases += [Case(f"shim alone, distinct URLs, c{c}", "distinct", False, c, d) for c in conns]
    if "worker" in want:
        cases += [Case(f"with worker, distinct URLs, c{c}", "distinct", True, c, d) for c in conns]
    if "burst" in want:
        cases.append(Case(f"with worker, same URL burst, c{conns[0]}", "same", True, conns[0], d))
    if args.paced:
        # c connections each waiting a mean of (c/rate - 5 ms) between an answer and the
        # next request offer about `rate` per second while answers take about 5 ms.
        c = 32
        pace = Case(f"shim alone, paced ~{args.paced}/s, c{c}", "distinct", False, c, d)
        pace.delay_ms = max(1, int(c * 1000 / args.paced) - 5)
        cases.append(pace)
    results: list[WrkResult] = []
    print(
        f"\n== 1. signed webhooks/s: wrk -t{args.threads}, every POST a new signed webhook ==",
        flush=True,
    )
    print(table(HEADER, []), flush=True)
    for case in cases:
        # Each case starts from an empty Redis (a previous case's backlog of purges
        # would keep the worker busy) and with the worker running or stopped.
        if worker is not None:
            worker.stop()
            worker = None
        reset_redis(r)
        if case.worker:
            worker = start_worker(config, work / "worker.log")
        groups = {"shim": shim.proc.pid}
        if worker is not None:
            groups["worker"] = worker.proc.pid
        res = run_wrk(shim, r, work, case, args.threads, groups)
        results.append(res)
        if res.res["exhausted"]:
            print(f"WARNING: wrk ran out of pre-generated requests ({res.res['exhausted']})")
        print(table(HEADER, [res.row()]).splitlines()[-1], flush=True)
    print(f"wrk command: {results[-1].cmd}")
    summary["throughput"] = [
        {
            "case": x.case.label,
            "kind": x.case.kind,
            "worker": x.case.worker,
            "connections": x.case.connections,
            "ok_per_s": x.rps_ok,
            "new_batches": x.new_batches,
            "shim_cpu_ms_per_req": x.shim_ms_per_req,
            "cpu": x.cpu,
            "cmd": x.cmd,
            **x.res,
        }
        for x in results
    ]
    hooks = [x for x in results if KINDS[x.case.kind][1] == 202]
    if not hooks:
        return worker
    ok = [x for x in hooks if x.rps_ok >= 1000 and x.res["p99_us"] <= 25_000]
    verdict = "PASS" if ok else "FAIL"
    shown = ok or [max(hooks, key=lambda x: x.rps_ok)]
    print(f"target >= 1,000 webhooks/s with p99 <= 25 ms: {verdict}")
    for x in shown:
        print(f"  {x.rps_ok:,.0f}/s, p99 {x.res['p99_us'] / 1000:.1f} ms: {x.case.label}")
    summary["throughput_verdict"] = verdict
    if worker is not None:
        worker.stop()
    reset_redis(r)
    return None


def part2(shim: Shim, world: Any, worker: Any, args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"\n== 2. webhook -> every PoP verified HIT: 1 URL x {len(world.pops())} PoPs, "
        f"{args.runs} runs, poll every {args.poll_ms:g} ms ==",
        flush=True,
    )
    latency_runs(shim, world, 3, args.poll_ms / 1000)  # warm-up: connections, imports
    log_mark = len(worker.log())
    meter = CpuMeter({"shim": shim.proc.pid, "worker": worker.proc.pid})
    runs = latency_runs(shim, world, args.runs, args.poll_ms / 1000)
    cpu = meter.stop()
    totals = [x.total_s * 1000 for x in runs]
    bad = [x for x in runs if x.hits != len(world.pops()) or not x.fresh]
    rows = [
        ["webhook -> done seen (client)", *_stats(totals)],
        ["POST /webhooks answer", *_stats([x.post_ms for x in runs])],
        ["started_at -> finished_at (report)", *_stats([x.server_s * 1000 for x in runs])],
    ]
    order = ["queued", "purging", "warming", "verifying", "done"]
    for s in order[1:]:
        xs = [x.states[s] * 1000 for x in runs if s in x.states]
        if xs:
            rows.append([f"first seen '{s}' (n={len(xs)})", *_stats(xs)])
    wlog = worker.log()[log_mark:]
    errors = [x for x in wlog.splitlines() if "ERROR" in x or "WARNING" in x]
    print(f"worker log during these runs: {len(errors)} warning/error lines", *errors[:3])
    times = task_times(wlog)
    for name in ("warming.purge", "warming.prefetch", "warming.verify"):
        xs = [t * 1000 for t in times.get(name, [])]
        if xs:
            rows.append([f"{name} task run time (n={len(xs)})", *_stats(xs)])
    print(table(["measure (ms)", "p50", "p95", "max", "mean"], rows))
    p95 = pct(totals, 0.95)
    print(
        f"counts.hit == 3 and new version served as HIT at every PoP: "
        f"{len(runs) - len(bad)}/{len(runs)}"
    )
    print(
        "CPU during these runs (% of one core): "
        + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items() if k != "seconds")
    )
    verdict = "PASS" if p95 <= 1000 and not bad else "FAIL"
    print(f"target p95 <= 1 s: {verdict} (p50 {pct(totals, 0.5):.0f} ms, p95 {p95:.0f} ms)")
    return {
        "runs": len(runs),
        "ok": len(runs) - len(bad),
        "rows": rows,
        "p50_ms": pct(totals, 0.5),
        "p95_ms": p95,
        "verdict": verdict,
        "cpu": cpu,
    }


def _stats(xs: list[float]) -> list[str]:
    return [
        f"{pct(xs, 0.5):.0f}",
        f"{pct(xs, 0.95):.0f}",
        f"{max(xs):.0f}",
        f"{statistics.fmean(xs):.0f}",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
