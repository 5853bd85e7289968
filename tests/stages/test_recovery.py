"""Crash recovery: a worker SIGKILLed while it launches a slice, Redis restarted mid-batch."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support import (
    SITE,
    Worker,
    final_with_fresh_worker,
    need,
    probe,
    run_cli,
    varnish_world,
    wait_final,
    warmed,
)
from tests.support import write_config as _write_config
from warming import defaults
from warming.sandbox import World

pytestmark = pytest.mark.integration

# Put on a worker's PYTHONPATH, this SIGKILLs the worker right before it publishes its
# (AFTER + 1)th prefetch message: a worker dying in the middle of publishing a chord.
KILL_HOOK = '''"""tests/stages/test_recovery.py: SIGKILL this process in the middle of a chord."""
import os
import signal

from kombu import messaging

_publish = messaging.Producer.publish
_sent = [0]


def publish(self, body, *args, **kwargs):
    if str(kwargs.get("routing_key", "")).startswith("warming.prefetch"):
        if _sent[0] == AFTER:
            os.kill(os.getpid(), signal.SIGKILL)
        _sent[0] += 1
    return _publish(self, body, *args, **kwargs)


messaging.Producer.publish = publish
'''


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2, latency_s=0.05) as w:
        yield w


def write_config(path: Path, broker_url: str, world: World, **sections: Any) -> Path:
    sections.setdefault("limits", {"prefetch": "200/s", "purge": "500/s"})
    return _write_config(path, broker_url, world.pops(), **sections)


def start_batch(config: Path, paths: list[str]) -> str:
    res = run_cli(config, "warm", *paths, "--json")
    assert res.returncode == 0, res.stderr
    return str(json.loads(res.stdout)["batch_id"])


def accounted_for(rep: dict[str, Any], total: int) -> None:
    """Every pair has its row in the report, and a reason where it is not a hit."""
    assert rep["state"] == "done", (rep["state"], rep["counts"])
    assert rep["counts"]["total"] == total and len(rep["results"]) == total
    c = rep["counts"]
    assert c["hit"] + c.get("miss", 0) + c.get("failed", 0) == total, c
    assert all(r["error"] for r in rep["results"] if r["outcome"] != "hit")


@pytest.mark.timeout(300)
def test_a_worker_sigkilled_while_it_publishes_a_slice_is_recovered_in_about_90_s(
    tmp_path: Path, redis_url: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The purge task launches both slices itself (a window of 2); its worker dies after
    slice 0's four chunks and one of slice 1's are out. The purge comes back after the
    visibility timeout and must launch slice 1, not find the phase started and return."""
    redis.Redis.from_url(redis_url).flushdb()
    config = write_config(
        tmp_path / "warming.toml", redis_url, world, batch={"slice_size": 20, "chunk_size": 5}
    )
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK.replace("AFTER", "5"))
    monkeypatch.setenv("PYTHONPATH", str(hook))
    dying = Worker(config, tmp_path / "w1.log", queues="warming.purge")
    monkeypatch.delenv("PYTHONPATH")
    paths = [f"/launch/{i}" for i in range(20)]
    batch_id = start_batch(config, paths)
    assert dying.proc.wait(60) == -signal.SIGKILL
    dying.stop()  # only closes its pipe
    killed_at = time.monotonic()
    r = redis.Redis.from_url(redis_url)
    assert r.llen("warming.prefetch") == 5, "the kill must land in the middle of slice 1"
    rep, recovered_s = final_with_fresh_worker(
        config, tmp_path / "w2.log", batch_id, 220, killed_at
    )
    accounted_for(rep, 40)
    assert rep["counts"]["hit"] == 40, rep["counts"]
    # Visibility timeout 60 s + restore sweep <= 5 s + the slice; a stall re-drive is 90 s more.
    assert recovered_s < defaults.VISIBILITY_TIMEOUT_S + 30, recovered_s
    assert "again" not in (tmp_path / "w2.log").read_text(), "the watchdog had to re-drive it"
    # The redelivered purge must not purge what slice 0 had already warmed and verified.
    for pop in world.pops():
        for path in paths:
            assert probe(pop["url"], SITE + path).headers["X-Cache"] == "HIT", (pop, path)
    print(f"recovered {recovered_s:.1f} s after the SIGKILL")


class AofRedis:
    """A redis-server of the test's own, AOF on: SIGKILLed and restarted on its port and dir."""

    def __init__(self, workdir: Path) -> None:
        need(shutil.which("redis-server") is not None, "redis-server is not installed")
        workdir.mkdir()
        self.dir = workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with (self.dir / "redis.log").open("ab") as log:
            proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec",
                 "--save", ""],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        r = redis.Redis.from_url(self.url)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                r.ping()
                return proc
            except redis.RedisError:  # not listening yet, or loading the AOF
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def restart(self, down_s: float) -> None:
        """SIGKILL it (no shutdown, no final fsync), wait `down_s`, start it on its data."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        time.sleep(down_s)
        self.proc = self._start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def aof(tmp_path: Path) -> Iterator[AofRedis]:
    server = AofRedis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.mark.timeout(400)
def test_redis_restarted_mid_batch_the_batch_ends_within_150_s(
    tmp_path: Path, aof: AofRedis, world: World
) -> None:
    """150 URLs x 2 PoPs at 20/s (~15 s); Redis SIGKILLed and back 2 s later, mid-batch.

    Two things used to go wrong: kombu crashed both workers as they reconnected (the
    batch then ended only at its deadline), and a callback that hit the restart and
    raised was lost, so the batch waited 90 s after its last record (150-185 s)."""
    config = write_config(
        tmp_path / "warming.toml",
        aof.url,
        world,
        limits={"prefetch": "20/s", "purge": "500/s"},
        batch={"slice_size": 50},
    )
    workers = [Worker(config, tmp_path / f"w{i}.log") for i in (1, 2)]
    try:
        batch_id = start_batch(config, [f"/restart/{i}" for i in range(150)])
        r = redis.Redis.from_url(aof.url)
        end = time.monotonic() + 60
        while warmed(r, batch_id) < 200 and time.monotonic() < end:
            time.sleep(0.05)
        assert r.hget(f"warming:batch:{batch_id}", "state") != b"done", "restart mid-batch"
        aof.restart(down_s=2.0)
        restarted_at = time.monotonic()
        rep, _ = wait_final(config, batch_id, 220)
        took = time.monotonic() - restarted_at
        alive = [w.proc.poll() is None for w in workers]
        logs = [w.log() for w in workers]
    finally:
        for w in workers:
            w.stop()
    assert alive == [True, True], [log[-3000:] for log in logs if "Unrecoverable" in log]
    accounted_for(rep, 300)
    assert took < 150, (took, rep["counts"])
    redriven = any("after a Redis restart" in log for log in logs)
    print(f"batch done {took:.1f} s after the restart, {rep['counts']}, re-driven: {redriven}")


@pytest.mark.timeout(300)
def test_a_callback_lost_in_a_redis_restart_is_published_again_within_seconds(
    tmp_path: Path, aof: AofRedis, world: World
) -> None:
    """The loss made on purpose: the slice's callback is dropped while Redis restarts, as
    a verify task that hit the restart, raised and was acknowledged failed."""
    config = write_config(tmp_path / "warming.toml", aof.url, world)
    r = redis.Redis.from_url(aof.url)
    # No verify queue: the slice's callback waits there once the chunks are done.
    w1 = Worker(config, tmp_path / "w1.log", queues="warming.purge,warming.prefetch")
    try:
        batch_id = start_batch(config, [f"/callback/{i}" for i in range(5)])
        end = time.monotonic() + 30
        while not r.llen("warming.verify") and time.monotonic() < end:
            time.sleep(0.1)
        assert r.llen("warming.verify") == 1
    finally:
        w1.stop()
    aof.restart(down_s=1.0)
    assert r.rpop("warming.verify"), "the callback survived the restart (AOF): drop it"
    restarted_at = time.monotonic()
    rep, took = final_with_fresh_worker(config, tmp_path / "w2.log", batch_id, 150, restarted_at)
    accounted_for(rep, 10)
    assert rep["counts"]["hit"] == 10, rep["counts"]
    # RESTART_STALL_S after the last record, then the next watchdog pass, then the slice;
    # without the restart rule it is STALL_S (90 s) after the last record.
    limit = defaults.RESTART_STALL_S + defaults.WATCHDOG_INTERVAL_S + 15
    assert took < limit < defaults.STALL_S, took
    assert (
        "after a Redis restart): publishing phase 0 slices [0] again"
        in (tmp_path / "w2.log").read_text()
    )
    print(f"lost callback re-driven: batch done {took:.1f} s after the restart")


def test_after_a_restart_a_batch_with_a_callback_queued_is_not_called_stalled(
    tmp_path: Path, aof: AofRedis, world: World
) -> None:
    """The short window only counts a message lost when none of the batch's is queued
    (verify and control queues included) or held; and it applies only to a batch that
    lived through the restart."""
    from warming.batch.publish import WarmRequest, publish
    from warming.broker.messages import messages
    from warming.runtime import use
    from warming.settings import Settings
    from warming.stages.watchdog import redrive_stalled

    settings = {"broker_url": aof.url, "site": {"base_url": SITE}, "pops": world.pops()}
    rt = use(Settings.model_validate(settings))
    plan = publish(rt, WarmRequest(paths=["/quiet/1"], purge=False))
    r = redis.Redis.from_url(aof.url)
    r.delete("warming.purge")  # no worker here: the batch is driven by hand
    r.hset(f"warming:batch:{plan.batch_id}", "state", "warming")
    # Nothing recorded since it started, longer ago than the short window, not the long one.
    later = defaults.RESTART_STALL_S + 5
    assert later < defaults.STALL_S
    assert redrive_stalled(rt, time.time() + later) == {}, "no restart: the 90 s window"
    aof.restart(down_s=2.0)  # more than the 1 s the uptime's resolution takes off
    callback = messages().build("warming.verify", (plan.batch_id, 0, 0))
    r.lpush(callback.queue, callback.payload)
    assert redrive_stalled(rt, time.time() + later) == {}, "its callback is queued: not lost"
    r.delete(callback.queue)
    # In a child process: its Celery app publishes to this Redis whatever other test
    # modules connected the pytest process's app to (as in tests/broker/test_messages.py).
    child = f"""
import json, time
from warming.runtime import use
from warming.settings import Settings
from warming.stages.watchdog import redrive_stalled
rt = use(Settings.model_validate({json.dumps(settings)}))
print(json.dumps(redrive_stalled(rt, time.time() + {later})))
"""
    out = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {plan.batch_id: [0]}
    assert r.llen("warming.prefetch") == 1  # the slice's one chunk, published again
