"""kombu's `global_keyprefix`: the shim's own publish lands where the workers look.

kombu's Redis transport (kombu/transport/redis.py, GlobalKeyPrefixMixin) prefixes
every key it touches: the queue lists (LPUSH, BRPOP, LLEN), `unacked`,
`unacked_index`, `unacked_mutex`, the `_kombu.binding.*` sets and fanout channels.
The shim and `warming warm` push task messages themselves (warming.broker.messages),
so they must use the same names. Real worker and shim processes with a
CELERY_CONFIG_MODULE that sets the prefix, real Varnish PoPs, real Redis.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.support import ROOT, SITE, Worker, env_for, probe, run_cli, varnish_world, write_config
from warming.cms.standard import sign
from warming.sandbox import World

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PREFIX = "tenant7:"
SECRET = "whsec_" + base64.b64encode(b"key-prefix-test-secret-0123456!").decode()


def _config_module(d: Path, name: str, options: str) -> None:
    (d / f"{name}.py").write_text(
        "from warming.broker.config import *  # noqa: F403\n"
        f"broker_transport_options = {{**broker_transport_options, {options}}}  # noqa: F405\n"
    )


@pytest.fixture
def celery_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every process started from here loads `prefixconfig` (as `celeryconfig.py` is loaded)."""
    _config_module(tmp_path, "prefixconfig", f'"global_keyprefix": "{PREFIX}"')
    monkeypatch.setenv("CELERY_CONFIG_MODULE", "prefixconfig")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2) as w:
        yield w


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signed(body: dict[str, list[str]]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    msg_id, ts = f"msg_{time.monotonic_ns()}", int(time.time())
    return raw, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, msg_id, ts, raw),
        "content-type": "application/json",
    }


def _final(base: str, batch_id: str, timeout_s: float = 60) -> dict[str, object]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        rep = requests.get(f"{base}/batches/{batch_id}", timeout=5).json()
        if rep.get("state") in ("done", "failed"):
            return rep
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} never finished: {rep}")


def test_with_a_global_keyprefix_the_shims_and_the_clis_batches_end_done(
    tmp_path: Path, redis_url: str, world: World, celery_config: Path
) -> None:
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    config = write_config(
        tmp_path / "warming.toml", redis_url, world.pops(), webhook={"secrets": [SECRET]}
    )
    worker = Worker(config, tmp_path / "worker.log")
    port = _free_port()
    shim = subprocess.Popen(
        [sys.executable, "-m", "warming", "serve", "--port", str(port)],
        env=env_for(config),
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        world.origin.bump("/prefixed/hook")
        body, headers = _signed({"paths": ["/prefixed/hook"]})
        resp = requests.post(f"{base}/webhooks/generic", data=body, headers=headers, timeout=10)
        assert resp.status_code == 202, resp.text
        hooked = _final(base, resp.json()["batch_id"])

        cli = run_cli(config, "warm", "/prefixed/cli", "--wait", "--json", timeout=90)
        assert cli.returncode == 0, cli.stderr
        warmed = json.loads(cli.stdout)
    finally:
        shim.terminate()
        shim.wait(20)
        if shim.stderr:
            shim.stderr.close()
        worker.stop()
    for rep in (hooked, warmed):
        assert rep["state"] == "done" and rep["counts"]["hit"] == 2, rep  # type: ignore[index]
    for pop in world.pops():
        got = probe(pop["url"], SITE + "/prefixed/hook")
        assert got.headers["X-Cache"] == "HIT"
        assert f"version {world.origin.version('/prefixed/hook')}" in got.text
    # In Redis: kombu's keys all carry the prefix; none was written without it.
    # (Celery's result keys are the result backend's, which has its own transport options.)
    keys = {k.decode() for k in r.scan_iter(count=1000)}
    kombu = {k for k in keys if not k.startswith(("warming:", "celery-task"))}
    assert any(k.startswith(f"{PREFIX}_kombu.binding") for k in kombu), sorted(kombu)
    assert all(k.startswith(PREFIX) for k in kombu), sorted(kombu)


@pytest.mark.parametrize(
    ("option", "key"),
    [
        ('"unacked_key": "held"', "broker_transport_options.unacked_key"),
        ('"priority_steps": [3, 6, 9]', "broker_transport_options.priority_steps"),
    ],
)
def test_transport_options_the_direct_publish_cannot_follow_stop_every_process(
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    key: str,
) -> None:
    _config_module(tmp_path, "otherconfig", option)
    monkeypatch.setenv("CELERY_CONFIG_MODULE", "otherconfig")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    config = write_config(
        tmp_path / "warming.toml", redis_url, [{"name": "e", "url": "http://127.0.0.1:9"}]
    )
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "warming", "worker", "-P", "threads"],
        env=env_for(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    runs = {
        "worker": worker,
        "warm": run_cli(config, "warm", "/x", timeout=60),
        "serve": run_cli(config, "serve", "--port", str(_free_port()), timeout=60),
    }
    for name, res in runs.items():
        assert res.returncode == 2, (name, res.returncode, res.stderr[-2000:])
        assert f"warming: invalid configuration: {key}: " in res.stderr, (name, res.stderr)
        assert "Traceback" not in res.stderr, (name, res.stderr[-2000:])
    assert r.dbsize() == 0, "nothing was published"
