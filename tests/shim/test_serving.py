"""`warming serve --workers N` as deployed: real processes, real sockets, real signals."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import ROOT, env_for, need, write_config
from warming import keys as K
from warming.cms.standard import sign

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECRET = "whsec_" + base64.b64encode(b"serve-test-secret-0123456789abcd").decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Served:
    def __init__(self, config: Path, workers: int, port: int | None = None) -> None:
        self.workers = workers
        self.port = port or _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warming", "serve", "--port", str(self.port),
             "--workers", str(workers)],
            env=env_for(config),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip

    def wait_ready(self, timeout_s: float = 30) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.proc.communicate()[0]
            try:
                # Every process listening: until then the first one gets every connection.
                if self.get("/readyz")[0] == 200 and len(self.listeners()) == self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("shim not ready")

    def get(self, path: str) -> tuple[int, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def children(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        return [int(x) for x in out.stdout.split()]  # with multiprocessing's resource tracker

    def connection_owners(self) -> Counter[int]:
        """Established server-side connections on our port, by owning process."""
        return self._sockets("established")

    def listeners(self) -> Counter[int]:
        return self._sockets("listening")

    def _sockets(self, state: str) -> Counter[int]:
        out = subprocess.run(
            ["ss", "-tnpH", "state", state, f"( sport = :{self.port} )"],
            capture_output=True,
            text=True,
            check=True,
        )
        return Counter(int(p) for p in re.findall(r"pid=(\d+)", out.stdout))

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Path:
    d = tmp_path_factory.mktemp("serve")
    return write_config(
        d / "warming.toml",
        redis_url,
        [{"name": "edge", "url": "http://127.0.0.1:9"}],
        webhook={"secrets": [SECRET], "max_body_bytes": 4 * 1024 * 1024},
    )


@pytest.fixture
def served(config: Path) -> Iterator[Served]:
    need(shutil.which("ss") is not None, "ss (iproute2) is not installed")
    s = Served(config, workers=2)
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def test_keepalive_connections_spread_over_both_processes(served: Served) -> None:
    conns = [http.client.HTTPConnection("127.0.0.1", served.port, timeout=5) for _ in range(32)]
    try:
        for c in conns:
            c.request("GET", "/healthz")
            assert c.getresponse().read() == b'{"status":"ok"}'
        owners = served.connection_owners()
    finally:
        for c in conns:
            c.close()
    assert sum(owners.values()) == 32, owners
    assert len(owners) == 2, f"one process holds every connection: {owners}"
    # SO_REUSEPORT hashes connections over the two sockets: fewer than 6 of 32 on one
    # side has a probability of about 1e-4.
    assert min(owners.values()) >= 6, owners


def test_every_process_accepts_webhooks(served: Served, redis_url: str) -> None:
    pids: set[int] = set()
    for i in range(40):
        body = json.dumps({"paths": [f"/served/{i}"]}).encode()
        msg_id, ts = f"msg_serve_{time.time_ns()}", int(time.time())
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(SECRET, msg_id, ts, body),
            "content-type": "application/json",
        }
        c = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
        c.request("POST", "/webhooks/generic", body, headers)
        r = c.getresponse()
        assert r.status == 202, r.read()
        pids |= set(served.connection_owners())
        c.close()
    assert len(pids) == 2, pids


def test_a_killed_process_is_replaced_and_sigterm_stops_everything(served: Served) -> None:
    conns = [http.client.HTTPConnection("127.0.0.1", served.port, timeout=5) for _ in range(16)]
    for c in conns:
        c.request("GET", "/healthz")
        c.getresponse().read()
    victim = served.connection_owners().most_common(1)[0][0]
    for c in conns:
        c.close()
    os.kill(victim, signal.SIGKILL)
    owners: set[int] = set()
    end = time.monotonic() + 20
    while time.monotonic() < end and not (len(owners) == 2 and victim not in owners):
        time.sleep(0.2)
        conns = [http.client.HTTPConnection("127.0.0.1", served.port, timeout=5) for _ in range(16)]
        try:
            for c in conns:
                c.request("GET", "/healthz")
                assert c.getresponse().status == 200
            owners = set(served.connection_owners())
        except OSError:  # a connection the dead process had queued is reset
            owners = set()
        finally:
            for c in conns:
                c.close()
    assert len(owners) == 2 and victim not in owners, f"not replaced: {owners}"
    assert served.proc.poll() is None, "the supervisor itself must survive"
    kids = served.children()
    out = served.stop()
    assert served.proc.returncode == 0, out
    assert "restarting" in out, out
    end = time.monotonic() + 10
    while [p for p in kids if _alive(p)] and time.monotonic() < end:
        time.sleep(0.1)
    assert not [p for p in kids if _alive(p)], "a shim process outlived `warming serve`"


def test_no_shim_process_outlives_a_killed_supervisor(served: Served) -> None:
    """An orphan would keep serving old code beside the next `warming serve`."""
    shims = list(served.listeners())
    assert len(shims) == 2
    served.proc.kill()
    served.proc.wait(10)
    end = time.monotonic() + 15
    while [p for p in shims if _alive(p)] and time.monotonic() < end:
        time.sleep(0.1)
    assert not [p for p in shims if _alive(p)], "orphaned shim processes"
    assert not served.listeners(), "something still listens on the port"


def test_a_process_that_cannot_start_again_stops_the_supervisor(
    tmp_path: Path, redis_url: str
) -> None:
    """Someone broke the config file, then a process died: exit 1, no restart loop."""
    config = write_config(tmp_path / "warming.toml", redis_url, [{"name": "e", "url": "http://e"}])
    s = Served(config, workers=2)
    try:
        s.wait_ready()
        config.write_text("[site\nnot toml")
        os.kill(next(iter(s.listeners())), signal.SIGKILL)
        out, _ = s.proc.communicate(timeout=60)
    finally:
        s.stop()
    assert s.proc.returncode == 1, out
    assert "keeps failing at start; stopping" in out, out
    assert not s.listeners(), "a process still listens after the supervisor stopped"


def _signed_request(paths: list[str]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"paths": paths}).encode()
    msg_id, ts = f"msg_serve_{time.time_ns()}", int(time.time())
    return body, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, msg_id, ts, body),
        "content-type": "application/json",
    }


def test_a_big_webhook_does_not_stall_the_other_requests(config: Path, redis_url: str) -> None:
    """20,000 paths take the shim about a second of CPU: not on its event loop."""
    s = Served(config, workers=1)
    try:
        s.wait_ready()
        body, headers = _signed_request([f"/big/{i}" for i in range(20_000)])
        done: dict[str, object] = {}

        def post() -> None:
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
            t = time.monotonic()
            try:
                c.request("POST", "/webhooks/generic", body, headers)
                r = c.getresponse()
                done.update(status=r.status, answer=json.loads(r.read()), s=time.monotonic() - t)
            finally:
                c.close()

        t = threading.Thread(target=post)
        t.start()
        time.sleep(0.2)
        probes = []
        while t.is_alive():
            t0 = time.monotonic()
            assert s.get("/healthz")[0] == 200
            probes.append(time.monotonic() - t0)
            time.sleep(0.02)
        t.join()
    finally:
        s.stop()
    assert done["status"] == 202, done
    took = float(done["s"])  # type: ignore[arg-type]
    assert probes, "the webhook was answered before any probe"
    assert max(probes) < took / 3, (max(probes), took)
    answer = done["answer"]
    assert isinstance(answer, dict)
    key = K.BATCH.format(id=answer["batch_id"])
    plan = json.loads(redis.Redis.from_url(redis_url).hget(key, "plan"))
    assert len(plan["urls"]) == 20_000


def test_a_taken_port_is_a_clear_error(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        s = Served(config, workers=2, port=port)
        out, _ = s.proc.communicate(timeout=30)
    assert s.proc.returncode == 1, out
    assert f"cannot listen on 127.0.0.1:{port}" in out and "Traceback" not in out, out
