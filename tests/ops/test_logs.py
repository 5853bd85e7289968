"""The operator's log lines: a real worker's batch and failed-pair lines, the shim's per request."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.shim.test_app import SECRET, settings_for, signed
from tests.support import SITE, Worker, run_cli, write_config
from warming.ops import logs
from warming.opssettings import LogSettings
from warming.runtime import Runtime
from warming.sandbox import World, start_world
from warming.shim.app import create_app


def test_json_lines_carry_the_facts_as_keys() -> None:
    rec = logging.LogRecord("warming.pairs", logging.WARNING, __file__, 1, "pair %s", ("x",), None)
    rec.__dict__.update(batch_id="b1", url="http://www.example.com/a", pop="fra", secret="no")
    out = json.loads(logs.JsonFormatter().format(rec))
    assert out["message"] == "pair x"
    assert (out["batch_id"], out["url"], out["pop"]) == ("b1", "http://www.example.com/a", "fra")
    assert "secret" not in out  # only the known facts are written


def test_configure_json_sets_every_root_handler() -> None:
    root = logging.Logger("test-root")
    handler = logging.StreamHandler()
    root.addHandler(handler)
    logs.configure(LogSettings(format="json", level="INFO"), root)
    assert isinstance(handler.formatter, logs.JsonFormatter)
    assert logging.getLogger("warming").level == logging.INFO


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with start_world(n_edges=2, prefer_varnish=False) as w:
        w.origin.fail("/broken", 500)
        yield w


@pytest.mark.integration
def test_worker_logs_a_line_per_batch_and_per_failed_pair_as_json(
    world: World, redis_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "warming.toml",
        redis_url,
        world.pops(),
        log={"format": "json"},
        fetch={"max_attempts": 1},
    )
    worker = Worker(config, tmp_path / "worker.log", concurrency=4)
    try:
        res = run_cli(config, "warm", "/ok", "/broken", "--no-purge", "--wait", "--json")
        report = json.loads(res.stdout)
    finally:
        worker.stop()
    bid = report["batch_id"]
    lines = [json.loads(x) for x in worker.log().splitlines() if x.startswith("{")]
    ended = [x for x in lines if x["logger"] == "warming.batches" and x.get("batch_id") == bid]
    assert len(ended) == 1, worker.log()[-3000:]
    assert ended[0]["counts"]["failed"] == 2 and ended[0]["counts"]["hit"] == 2
    assert ended[0]["trigger"] == "cli" and ended[0]["duration_s"] > 0
    assert ended[0]["level"] == "WARNING"  # a batch with failed pairs is not routine
    failed = [x for x in lines if x["logger"] == "warming.pairs" and x.get("batch_id") == bid]
    assert sorted(x["pop"] for x in failed) == ["edge1", "edge2"]
    for x in failed:
        assert x["url"] == f"{SITE}/broken" and x["outcome"] == "failed"
        assert "500" in x["reason"] and x["reason"] in x["message"]


@pytest.mark.integration
def test_shim_logs_each_request_without_secrets(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rt = Runtime(settings_for(redis_url, [{"name": "fra", "url": "http://127.0.0.1:9"}]))
    body, headers = signed({"paths": ["/a"]})
    with caplog.at_level(logging.INFO, "warming.shim.requests"), TestClient(create_app(rt)) as c:
        ok = c.post("/webhooks/generic?x=1", content=body, headers=headers)
        bad = c.post("/webhooks/generic", content=body, headers={**headers, "webhook-id": "m2"})
        c.get("/healthz")  # a probe: DEBUG only
    assert ok.status_code == 202 and bad.status_code == 401
    recs = [r for r in caplog.records if r.name == "warming.shim.requests"]
    assert [(r.status, r.path) for r in recs] == [  # type: ignore[attr-defined]
        (202, "/webhooks/generic"),
        (401, "/webhooks/generic"),
    ]
    first = recs[0].__dict__
    assert first["adapter"] == "generic" and first["batch_id"] == ok.json()["batch_id"]
    assert first["method"] == "POST" and 0 < first["latency_ms"] < 5000
    text = "\n".join(logs.JsonFormatter().format(r) for r in recs)
    assert ok.json()["batch_id"] in text
    for secret in (SECRET, SECRET.removeprefix("whsec_"), headers["webhook-signature"]):
        assert secret not in text
