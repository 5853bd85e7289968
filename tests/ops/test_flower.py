"""Flower tells the truth: a batch with a failed pair is a FAILURE naming it, in real Flower."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.ops.prom import free_port
from tests.support import ROOT, SITE, Worker, env_for, run_cli, write_config
from warming.sandbox import World, start_world

pytestmark = pytest.mark.integration

AUTH = ("ops", "flower-password-0123456789")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with start_world(n_edges=2, prefer_varnish=False) as w:
        w.origin.fail("/broken", 500)
        yield w


def _tasks(base: str) -> dict[str, Any]:
    r = requests.get(
        f"{base}/api/tasks", params={"taskname": "warming.batch_result"}, auth=AUTH, timeout=5
    )
    r.raise_for_status()
    return dict(r.json())


def test_flower_shows_the_failed_pair_and_takes_its_auth_from_the_environment(
    world: World, redis_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "warming.toml", redis_url, world.pops(), fetch={"max_attempts": 1}
    )
    port = free_port()
    # As compose and systemd run it: the credentials in FLOWER_BASIC_AUTH, not in argv.
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "warming", "flower", "--address=127.0.0.1",
         f"--port={port}"],
        env=env_for(config, FLOWER_BASIC_AUTH=":".join(AUTH)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    worker = Worker(config, tmp_path / "worker.log", concurrency=4)
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                requests.get(f"{base}/healthcheck", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        time.sleep(1)  # Flower's event receiver connects after its web server starts
        cmdline = Path(f"/proc/{flower.pid}/cmdline").read_bytes().decode()
        assert AUTH[1] not in cmdline  # `ps` shows no password
        assert requests.get(f"{base}/api/tasks", timeout=5).status_code == 401

        bad = json.loads(
            run_cli(config, "warm", "/broken", "/ok", "--no-purge", "--wait", "--json").stdout
        )
        good = json.loads(run_cli(config, "warm", "/fine", "--no-purge", "--wait", "--json").stdout)
        seen: dict[str, Any] = {}
        while time.monotonic() < end + 30 and len(seen) < 2:
            seen = {
                t["args"]: t
                for t in _tasks(base).values()
                if t.get("state") in ("SUCCESS", "FAILURE")
            }
            time.sleep(0.5)
    finally:
        worker.stop()
        flower.terminate()
        flower.wait(20)
    failed = seen[repr((bad["batch_id"],))]
    assert failed["state"] == "FAILURE"
    assert f"{SITE}/broken at edge1: PoP answered 500" in failed["exception"]
    assert "2 of 4 pairs not a HIT" in failed["exception"]
    ok = seen[repr((good["batch_id"],))]
    assert ok["state"] == "SUCCESS" and "2 of 2 pairs a fresh HIT" in ok["result"]
    assert "Traceback" not in worker.log()  # an expected outcome, logged in one line
