"""`warming warm --after-deploy`: warm only once the origin serves the new build."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from tests.support import ROOT, SitemapOrigin, Worker, env_for, need, run_cli, write_config
from warming.sandbox import VarnishEdge, varnish_available

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[SitemapOrigin, list[dict[str, str]]]]:
    need(varnish_available(), "varnishd is not installed")
    origin = SitemapOrigin().start()
    edge = VarnishEdge("edge1", ("127.0.0.1", origin.port))
    try:
        edge.start()
        yield origin, [{"name": edge.name, "url": edge.url}]
    finally:
        edge.stop()
        origin.stop()


def _config(
    tmp_path: Path, redis_url: str, origin: SitemapOrigin, pops: list[dict[str, str]]
) -> Path:
    deploy = {
        "version_url": "/version.txt",
        "origin_url": origin.url,
        "poll_s": 0.2,
        "timeout_s": 3,
    }
    return write_config(tmp_path / "warming.toml", redis_url, pops, deploy=deploy)


def test_warming_starts_only_when_the_new_build_is_served(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> None:
    origin, pops = world
    origin.documents["/version.txt"] = b"v1\n"
    config = _config(tmp_path, redis_url, origin, pops)
    worker = Worker(config, tmp_path / "worker.log")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "warming", "warm", "/page", "--after-deploy", "--wait",
             "--json"],
            env=env_for(config), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        time.sleep(1.5)
        assert origin.requests("/page") == 0  # still waiting: nothing purged or warmed
        deployed = datetime.now(UTC)
        origin.documents["/version.txt"] = b"v2\n"
        out, err = proc.communicate(timeout=60)
    finally:
        worker.stop()
    assert proc.returncode == 0, err
    assert "waiting for a build other than v1" in err and "build v2 is served: warming" in err
    report = json.loads(out)
    assert datetime.fromisoformat(report["started_at"]) >= deployed.replace(microsecond=0)
    assert report["counts"]["hit"] == report["counts"]["total"] == 1


def test_a_named_build_is_waited_for_and_a_timeout_warms_nothing(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> None:
    origin, pops = world
    origin.documents["/version.txt"] = b"abc123\n"
    config = _config(tmp_path, redis_url, origin, pops)
    now = run_cli(config, "warm", "/now", "--after-deploy", "abc123", "--dry-run")
    assert now.returncode == 0 and "dry run" in now.stdout  # a dry run does not wait
    before = set(redis.Redis.from_url(redis_url).scan_iter("warming:batch:*"))
    t0 = time.monotonic()
    late = run_cli(config, "warm", "/late", "--after-deploy", "def456")
    assert late.returncode == 1
    assert "still names build 'abc123', not 'def456' (deploy.timeout_s = 3)" in late.stderr
    assert 2.5 < time.monotonic() - t0 < 15
    assert set(redis.Redis.from_url(redis_url).scan_iter("warming:batch:*")) == before
    ok = run_cli(config, "warm", "/ok", "--after-deploy", "abc123")
    assert ok.returncode == 0 and "build abc123 is served: warming" in ok.stderr
    missing = write_config(tmp_path / "bare.toml", redis_url, pops)
    res = run_cli(missing, "warm", "/x", "--after-deploy")
    assert res.returncode == 1 and "needs deploy.version_url" in res.stderr
