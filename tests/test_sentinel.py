"""Redis Sentinel: real redis-sentinel (one master, one replica, three sentinels on loopback)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from tests.shim.test_app import settings_for, signed
from tests.support import Worker, run_cli, varnish_world, wait_final, warmed, write_config
from warming import keys as K
from warming import rediskit
from warming.broker import config as celery_config
from warming.runtime import use
from warming.sandbox import World
from warming.shim.app import create_app

pytestmark = pytest.mark.integration

MASTER = "mymaster"


def _free_port(start: int) -> int:
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port from {start}")


@dataclass
class Cluster:
    """One master, one replica, three sentinels (quorum 2), each a real process."""

    root: Path
    data_ports: list[int] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{p}" for p in self.sentinel_ports) + "/0"

    def start_data(self, port: int, replica_of: int | None = None) -> None:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.root)]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        _wait_ping(port)

    def start_sentinel(self, port: int, master_port: int) -> None:
        conf = self.root / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        self.procs[port] = subprocess.Popen(
            ["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL
        )
        _wait_ping(port)

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(10)

    def master_port(self) -> int:
        s = redis.Redis(port=self.sentinel_ports[0], decode_responses=True)
        _host, port = s.sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def stop(self) -> None:
        for port in list(self.procs):
            self.kill(port)


def _wait_ping(port: int, timeout_s: float = 10) -> None:
    end = time.monotonic() + timeout_s
    while True:
        try:
            if redis.Redis(port=port, socket_connect_timeout=0.5).ping():
                return
        except redis.RedisError:
            if time.monotonic() > end:
                raise
        time.sleep(0.05)


def _wait(what: str, ok, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout_s
    while not ok():
        if time.monotonic() > end:
            raise AssertionError(f"not {what} in {timeout_s} s")
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if not (shutil.which("redis-sentinel") and shutil.which("redis-server")):
        from tests.support import need

        need(False, "redis-sentinel is not installed (apt-get install redis-sentinel)")
    c = Cluster(tmp_path)
    master, replica = _free_port(6399), 0
    c.start_data(master)
    replica = _free_port(master + 1)
    c.start_data(replica, replica_of=master)
    c.data_ports = [master, replica]
    port = 26400
    for _ in range(3):
        port = _free_port(port)
        c.start_sentinel(port, master)
        c.sentinel_ports.append(port)
        port += 1
    try:

        def settled() -> bool:
            link = redis.Redis(port=replica).info("replication").get("master_link_status")
            for p in c.sentinel_ports:
                m = redis.Redis(port=p, decode_responses=True).sentinel_master(MASTER)
                if m["num-other-sentinels"] < 2 or m["num-slaves"] < 1:
                    return False
            return link == "up"

        _wait("a settled sentinel cluster", settled)
        yield c
    finally:
        c.stop()


def test_celery_settings_name_the_master_for_broker_result_backend_and_beat() -> None:
    url = "sentinel://127.0.0.1:26400;sentinel://127.0.0.1:26401/3"
    s = settings_for(url, [{"name": "a", "url": "http://127.0.0.1:9"}], master_name=MASTER)
    out = celery_config.from_settings(s)
    assert out["broker_url"] == url
    assert out["result_backend"].endswith(":QuietSentinelBackend+" + url)
    for key in ("broker_transport_options", "result_backend_transport_options"):
        assert out[key]["master_name"] == MASTER
        assert out[key]["visibility_timeout"] == celery_config._transport["visibility_timeout"]
    assert out["broker_transport_options"]["queue_order_strategy"] == "priority"
    assert out["redbeat_redis_options"]["sentinels"] == [("127.0.0.1", 26400), ("127.0.0.1", 26401)]
    assert out["redbeat_redis_options"]["service_name"] == MASTER
    assert out["redbeat_redis_options"]["db"] == 3


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2, latency_s=0.05) as w:
        yield w


@pytest.mark.timeout(240)
def test_a_failover_mid_batch_leaves_every_pair_accounted_for(
    tmp_path: Path, cluster: Cluster, world: World
) -> None:
    config = write_config(
        tmp_path / "warming.toml",
        cluster.url,
        world.pops(),
        limits={"prefetch": "25/s", "purge": "500/s"},
        batch={"slice_size": 50},
    )
    config.write_text(f'master_name = "{MASTER}"\n' + config.read_text())
    r = rediskit.client(cluster.url, MASTER)
    worker = Worker(config, tmp_path / "worker.log")
    try:
        res = run_cli(config, "warm", *[f"/ha/{i}" for i in range(100)], "--json")
        assert res.returncode == 0, res.stderr
        batch_id = json.loads(res.stdout)["batch_id"]
        _wait("40 pairs warmed", lambda: warmed(r, batch_id) >= 40)
        old = cluster.master_port()
        redis.Redis(port=cluster.sentinel_ports[0]).execute_command("SENTINEL", "FAILOVER", MASTER)
        _wait("a new master", lambda: cluster.master_port() != old)
        failed_over_at = warmed(r, batch_id)
        rep, waited = wait_final(config, batch_id, 200)
    finally:
        worker.stop()
    assert failed_over_at < 200, "the failover must land mid-batch"
    assert rep["state"] in ("done", "failed"), (rep["state"], rep["counts"])
    counts = rep["counts"]
    assert counts["total"] == 200
    assert len(rep["results"]) == 200  # every pair accounted for
    assert counts["hit"] + counts["miss"] + counts["failed"] == 200, counts
    print(
        f"failover after {failed_over_at} pairs warmed; ended {rep['state']} {counts} "
        f"{waited:.1f} s later"
    )


@pytest.mark.timeout(120)
def test_the_shim_answers_503_while_no_master_is_known_and_202_after(cluster: Cluster) -> None:
    pops = [{"name": "a", "url": "http://127.0.0.1:9"}]
    rt = use(settings_for(cluster.url, pops, master_name=MASTER))
    with TestClient(create_app(rt)) as c:

        def post() -> int:
            body, headers = signed({"paths": ["/ha"]})
            return c.post("/webhooks/generic", content=body, headers=headers).status_code

        assert post() == 202
        master, replica = cluster.data_ports
        cluster.kill(replica)
        cluster.kill(master)
        statuses = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4:  # past down-after-milliseconds: no master known
            statuses.append(post())
            time.sleep(0.2)
        assert set(statuses) == {503}, statuses
        with pytest.raises(redis.sentinel.MasterNotFoundError):
            rediskit.client(cluster.url, MASTER).ping()
        cluster.start_data(master)
        end = time.monotonic() + 30
        while (status := post()) != 202:
            assert status == 503, status
            assert time.monotonic() < end, "no 202 after the master came back"
            time.sleep(0.2)
        assert rt.redis.zcard(K.RECENT) == 1  # the master came back empty: this one landed
