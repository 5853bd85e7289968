"""A prefork worker's /metrics: what its children counted, served by its main process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.prom import free_port, prometheus, scrape
from tests.support import ROOT, Worker, need, run_cli, write_config
from warming.ops import metrics
from warming.sandbox import World, start_world

pytestmark = pytest.mark.integration

DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with start_world(n_edges=2, prefer_varnish=False) as w:
        w.origin.fail("/broken", 500)
        yield w


@pytest.fixture(scope="module")
def worker_metrics(
    world: World, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A prefork worker (2 children) with metrics.port, after one batch: (its URL, report)."""
    tmp = tmp_path_factory.mktemp("metrics")
    port = free_port()
    config = write_config(
        tmp / "warming.toml",
        redis_url,
        world.pops(),
        fetch={"max_attempts": 1},
        metrics={"port": port, "host": "127.0.0.1"},
    )
    worker = Worker(config, tmp / "worker.log", concurrency=2, pool="prefork")
    try:
        res = run_cli(config, "warm", "/", "/a", "/broken", "--no-purge", "--wait", "--json")
        yield f"http://127.0.0.1:{port}/metrics", json.loads(res.stdout)
    finally:
        worker.stop()


def test_a_prefork_worker_serves_what_its_children_counted(
    worker_metrics: tuple[str, dict[str, Any]],
) -> None:
    url, report = worker_metrics
    assert report["counts"]["failed"] == 2 and report["counts"]["hit"] == 4
    got = scrape(url)
    for pop in ("edge1", "edge2"):
        assert got[("warming_pairs_total", (("outcome", "hit"), ("pop", pop)))] == 2
        assert got[("warming_pairs_total", (("outcome", "failed"), ("pop", pop)))] == 1
        assert got[("warming_pop_requests_total", (("pop", pop), ("status_class", "5xx")))] >= 1
        assert got[("warming_pop_requests_total", (("pop", pop), ("status_class", "2xx")))] >= 2
        assert got[("warming_fetch_ttfb_seconds_count", (("pop", pop),))] >= 3
        assert got[("warming_adaptive_factor", (("pop", pop),))] <= 1.0
    done = ("warming_batches_finished_total", (("ended_by", "pipeline"), ("state", "done")))
    assert got[done] == 1
    assert got[("warming_batches_overdue", ())] == 0
    assert got[("warming_batch_duration_seconds_count", ())] == 1
    assert got[("warming_limiter_wait_seconds_count", (("limit", "prefetch"),))] >= 1
    assert got[("warming_queue_depth", (("queue", "warming.prefetch"),))] == 0
    assert ("warming_batches", (("state", "queued"),)) not in got  # nothing unfinished


def _deploy_expressions() -> list[str]:
    """Every PromQL expression of the Grafana dashboard and of the alert rules."""
    dash = json.loads((DEPLOY / "grafana" / "warming-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    return exprs + [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_a_real_prometheus_scrapes_the_worker_and_runs_the_deploy_queries(
    worker_metrics: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url = worker_metrics[0]
    with prometheus(tmp_path, {"workers": url.split("/")[2]}) as prom:
        failed = prom.wait_for('sum(warming_pairs_total{outcome="failed"})')
        up = prom.query('up{job="workers"}')
        ttfb = prom.query("sum(warming_fetch_ttfb_seconds_count)")
        answers = {e: prom.answer(e) for e in _deploy_expressions()}
    assert failed and float(failed[0]["value"][1]) == 2
    assert float(up[0]["value"][1]) == 1
    assert float(ttfb[0]["value"][1]) >= 6
    bad = {e: a for e, a in answers.items() if a.get("status") != "success"}
    assert not bad  # every dashboard and alert expression parses and runs
    # Declared in warming.ops.metrics (a labelled metric no process touched has no sample).
    declared = set(re.findall(r'"(warming_[a-z0-9_]+)"', Path(metrics.__file__).read_text()))
    exported = declared | {n + s for n in declared for s in ("_bucket", "_count", "_sum")}
    assert {n for n, _ in scrape(url)} <= exported
    for expr in answers:
        for name in re.findall(r"\bwarming_[a-z0-9_]+", expr):
            assert name in exported, (name, expr)


def test_the_alert_rules_pass_promtool() -> None:
    tool = shutil.which("promtool")
    need(tool is not None, "promtool is not installed (apt-get install prometheus)")
    assert tool
    res = subprocess.run(
        [tool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yaml")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_multiprocess_directory_goes_with_its_owner_not_a_child() -> None:
    code = (
        "import os, sys\n"
        "from warming.ops import metrics\n"
        "path = metrics.fresh_dir()\n"
        "print(path, flush=True)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    sys.exit(0)  # a prefork child exiting runs atexit too\n"
        "os.waitpid(pid, 0)\n"
        "print(os.path.isdir(path), flush=True)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    path, alive_after_child = res.stdout.split()
    assert alive_after_child == "True", res.stderr
    assert not Path(path).exists()  # the owner exited: removed
