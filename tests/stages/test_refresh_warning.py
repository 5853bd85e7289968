"""A schedule warned when its objects stop being servable before its next run (issue 13, 2).

A real worker, real Varnish PoPs, an origin sending one page with max-age 60 and no
stale-while-revalidate, one with max-age 60 + stale-while-revalidate 7200, and one with
the default hour: a schedule every 50 minutes must name only the first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import SITE, Worker, varnish_world, wait_final, write_config
from warming.runtime import use
from warming.sandbox import World
from warming.settings import load_settings
from warming.stages import schedule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2) as w:
        w.origin.set_cache_control("/short", "public, max-age=60")
        w.origin.set_cache_control("/swr", "public, max-age=60, stale-while-revalidate=7200")
        yield w


def _config(tmp_path: Path, redis_url: str, world: World, name: str, every: str) -> Path:
    config = write_config(tmp_path / "warming.toml", redis_url, world.pops())
    config.write_text(
        config.read_text()
        + f'\n[[schedules]]\nname = "{name}"\nevery = "{every}"\n'
        + 'urls = ["/short", "/swr", "/long"]\npriority = "high"\n'
    )
    return config


def _run(config: Path, name: str) -> str:
    os.environ["WARMING_CONFIG"] = str(config)
    try:
        rt = use(load_settings())
    finally:
        del os.environ["WARMING_CONFIG"]
    return schedule.run(rt, name)


def test_a_schedule_longer_than_max_age_plus_swr_is_warned_naming_the_urls(
    tmp_path: Path, redis_url: str, world: World
) -> None:
    config = _config(tmp_path, redis_url, world, "every50m", "50m")
    worker = Worker(config, tmp_path / "w.log")
    try:
        batch_id = _run(config, "every50m")
        report, _ = wait_final(config, batch_id, 60)
    finally:
        worker.stop()
    assert report["state"] == "done" and report["counts"]["hit"] == 6, report["counts"]
    (warning,) = report["warnings"]
    assert warning["kind"] == "refresh" and warning["count"] == 1
    assert warning["urls"] == [SITE + "/short"]
    assert warning["refresh_s"] == 3000 and warning["shortest_window_s"] == 60
    assert "need max-age + stale-while-revalidate >= 3,000 s" in warning["message"]
    # The worker's log says it too, once, naming the URL.
    lines = [ln for ln in worker.log().splitlines() if "stop being servable" in ln]
    assert len(lines) == 1 and SITE + "/short" in lines[0], lines


def test_a_schedule_within_every_window_is_not_warned(
    tmp_path: Path, redis_url: str, world: World
) -> None:
    config = _config(tmp_path, redis_url, world, "every30s", "30s")
    worker = Worker(config, tmp_path / "w.log")
    try:
        batch_id = _run(config, "every30s")
        report, _ = wait_final(config, batch_id, 60)
    finally:
        worker.stop()
    assert report["state"] == "done" and report["counts"]["hit"] == 6, report["counts"]
    assert "warnings" not in report
