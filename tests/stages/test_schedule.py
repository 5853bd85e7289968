"""`[[schedules]]`: RedBeat beats, a worker, real Varnish; one batch per run, however many beats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.support import (
    ROOT,
    SITE,
    SitemapOrigin,
    Worker,
    env_for,
    need,
    run_cli,
    write_config,
)
from warming import keys as K
from warming.runtime import use
from warming.sandbox import VarnishEdge, varnish_available
from warming.settings import load_settings
from warming.stages import schedule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
SCHEDULES = """
[[schedules]]
name = "often"
every = "10s"
sitemap = "/sched.xml"
changed_only = false

[[schedules]]
name = "changes"
cron = "0 3 * * *"
sitemap = "/changes.xml"

[[schedules]]
name = "home"
every = "1h"
urls = ["/", "/about"]
priority = "high"
purge = true
"""


def urlset(pages: dict[str, str | None]) -> bytes:
    entries = "".join(
        f"<url><loc>{SITE}{p}</loc>" + (f"<lastmod>{m}</lastmod>" if m else "") + "</url>"
        for p, m in pages.items()
    )
    return f'<urlset xmlns="{NS}">{entries}</urlset>'.encode()


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[SitemapOrigin, list[dict[str, str]]]]:
    need(varnish_available(), "varnishd is not installed")
    origin = SitemapOrigin().start()
    edge = VarnishEdge("edge1", ("127.0.0.1", origin.port))
    try:
        edge.start()
        origin.documents = {"/sched.xml": urlset({"/s/1": None, "/s/2": None})}
        yield origin, [{"name": edge.name, "url": edge.url}]
    finally:
        edge.stop()
        origin.stop()


@pytest.fixture
def config(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> Iterator[Path]:
    redis.Redis.from_url(redis_url).flushdb()
    path = write_config(tmp_path / "warming.toml", redis_url, world[1])
    path.write_text(path.read_text() + SCHEDULES)
    yield path
    redis.Redis.from_url(redis_url).flushdb()


def _batches(redis_url: str) -> dict[str, dict[str, object]]:
    """Every batch in Redis: id -> trigger."""
    r = redis.Redis.from_url(redis_url)
    out = {}
    for key in r.scan_iter("warming:batch:*"):
        name = key.decode()
        if name.count(":") == 2:
            out[name.rsplit(":", 1)[1]] = json.loads(r.hget(name, "trigger") or b"{}")
    return out


class Beat:
    """A real `celery -A warming beat` process (RedBeat, from warming's Celery config)."""

    def __init__(self, config: Path, logfile: Path) -> None:
        self.logfile = logfile
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "warming", "beat", "-l", "INFO",
             "--logfile", str(logfile), "--pidfile="],
            env=env_for(config), cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def test_two_beats_run_each_schedule_once_per_interval(
    config: Path, redis_url: str, tmp_path: Path
) -> None:
    worker = Worker(config, tmp_path / "worker.log")
    beats = [Beat(config, tmp_path / f"beat{i}.log") for i in (1, 2)]
    try:
        time.sleep(24)  # "often" is due at about 0, 10 and 20 s
        logs = [b.log() for b in beats]
        alive = [b.proc.poll() is None for b in beats]
    finally:
        for b in beats:
            b.stop()
        worker.stop()
    assert alive == [True, True], logs
    # One beat holds RedBeat's lock and sends; the other waits for it and sends nothing.
    sent = [log.count("Sending due task often") for log in logs]
    assert sorted(sent)[0] == 0 and sorted(sent)[1] in (2, 3), sent
    assert sum("beat: Acquired lock" in log for log in logs) == 1, logs
    often = [t for t in _batches(redis_url).values() if t.get("schedule") == "often"]
    assert len(often) == max(sent), often
    assert all(t == {"source": "schedule", "schedule": "often"} for t in often)
    # An interval's first run is one interval after beat first stored it: "home" is hourly.
    assert not [t for t in _batches(redis_url).values() if t.get("schedule") == "home"]

    res = run_cli(config, "schedules", "--json")
    assert res.returncode == 0, res.stderr
    rows = {row["name"]: row for row in json.loads(res.stdout)}
    assert set(rows) == {"often", "changes", "home"}
    assert rows["often"]["last_batch_id"] in _batches(redis_url)
    assert rows["often"]["when"] == "every 10s" and rows["often"]["priority"] == "bulk"
    nxt = datetime.fromisoformat(rows["often"]["next_run_at"])
    last = datetime.fromisoformat(rows["often"]["last_run_at"])
    assert timedelta(seconds=5) < nxt - last < timedelta(seconds=15), (last, nxt)
    changes_next = datetime.fromisoformat(rows["changes"]["next_run_at"])
    assert (changes_next.hour, changes_next.minute) == (3, 0), str(rows["changes"])
    text = run_cli(config, "schedules").stdout
    assert "often: every 10s, sitemap /sched.xml, priority bulk" in text
    assert "home: every 1h, 2 URLs, priority high\n  last run: never\n" in text
    home_next = datetime.fromisoformat(rows["home"]["next_run_at"])
    assert timedelta(minutes=59) < home_next - datetime.now(UTC) <= timedelta(hours=1)


def test_a_second_message_for_one_run_makes_no_second_batch(config: Path, redis_url: str) -> None:
    os.environ["WARMING_CONFIG"] = str(config)
    try:
        rt = use(load_settings())
    finally:
        del os.environ["WARMING_CONFIG"]
    first = schedule.run(rt, "home")
    assert first in _batches(redis_url)
    assert schedule.run(rt, "home") == "duplicate"
    assert list(_batches(redis_url)) == [first]
    assert _batches(redis_url)[first] == {"source": "schedule", "schedule": "home"}
    assert schedule.run(rt, "nope") == "unknown"


def test_changed_only_warms_what_changed_since_the_last_run(
    world: tuple[SitemapOrigin, list[dict[str, str]]], config: Path, redis_url: str
) -> None:
    origin, _ = world
    os.environ["WARMING_CONFIG"] = str(config)
    try:
        rt = use(load_settings())
    finally:
        del os.environ["WARMING_CONFIG"]
    r = redis.Redis.from_url(redis_url)
    claim = K.SCHEDULE_CLAIM.format(name="changes")
    old = "2025-01-01T00:00:00Z"
    origin.documents["/changes.xml"] = urlset({"/c/1": old, "/c/2": old})

    first = schedule.run(rt, "changes")  # the first run: everything
    report = json.loads(run_cli(config, "report", first, "--json").stdout)
    assert report["counts"]["total"] == 2 and report["trigger"]["schedule"] == "changes"

    r.delete(claim)  # as if the next day
    assert schedule.run(rt, "changes") == "no batch"
    note = r.hget(K.SCHEDULE.format(name="changes"), "note") or b""
    assert b"none of its 2 URLs changed since" in note

    r.delete(claim)
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    # A new document path: the edge still caches the previous /changes.xml.
    origin.documents["/changes2.xml"] = urlset({"/c/1": old, "/c/2": soon, "/c/3": None})
    rt.settings.schedules[1].sitemap = "/changes2.xml"
    third = schedule.run(rt, "changes")
    plan = json.loads(r.hget(K.BATCH.format(id=third), "plan") or b"{}")
    # /c/2's lastmod is after the previous run; /c/3 has none, so it may have changed.
    assert set(plan["urls"]) == {SITE + "/c/2", SITE + "/c/3"}


def test_an_analytics_schedule_warms_its_top_urls_most_visited_first(
    config: Path, redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    log.write_text(
        "".join(
            f'198.51.100.7 - - [01/Dec/2026:10:00:00 +0000] "GET {p} HTTP/1.1" 200 9 "-" "UA"\n'
            for p, n in {"/t/low": 1, "/t/top": 4, "/t/mid": 2}.items()
            for _ in range(n)
        )
    )
    extra = f'\n[[schedules]]\nname = "top"\nevery = "1d"\nanalytics = "{log}"\ntop = 2\n'
    config.write_text(config.read_text() + extra)
    os.environ["WARMING_CONFIG"] = str(config)
    try:
        rt = use(load_settings())
    finally:
        del os.environ["WARMING_CONFIG"]
    batch_id = schedule.run(rt, "top")
    r = redis.Redis.from_url(redis_url)
    plan = json.loads(r.hget(K.BATCH.format(id=batch_id), "plan") or b"{}")
    assert plan["urls"] == [SITE + "/t/top", SITE + "/t/mid"]
    assert plan["priority"] == "bulk"
    assert _batches(redis_url)[batch_id] == {"source": "schedule", "schedule": "top"}
    rows = {row["name"]: row for row in schedule.status(rt)}
    assert rows["top"]["what"] == f"top 2 of {log}" and rows["top"]["last_batch_id"] == batch_id


def test_the_waiting_beat_takes_over_when_the_one_sending_dies(
    config: Path, redis_url: str, tmp_path: Path
) -> None:
    first = Beat(config, tmp_path / "first.log")
    end = time.monotonic() + 20
    while "Sending due task often" not in first.log() and time.monotonic() < end:
        time.sleep(0.2)
    assert "Sending due task often" in first.log(), first.log()
    second = Beat(config, tmp_path / "second.log")
    try:
        time.sleep(3)
        os.killpg(first.proc.pid, signal.SIGKILL)  # no chance to release the lock
        first.proc.wait(5)
        killed = time.monotonic()
        while "Sending due task often" not in second.log() and time.monotonic() - killed < 60:
            time.sleep(0.2)
        took = time.monotonic() - killed
    finally:
        second.stop()
    assert "beat: Acquired lock" in second.log(), second.log()
    # The dead beat's lock lapses after BEAT_LOCK_TIMEOUT_S (30 s); then one interval at most.
    assert "Sending due task often" in second.log() and took < 30 + 5 + 10, took
    print(f"the second beat sent {took:.1f} s after the first was killed")
