"""Notifications: the rules, the messages, and a real worker telling a real receiving server."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.shim.test_app import SECRET
from tests.support import SITE, Worker, run_cli, write_config
from warming.cms.standard import sign, verify_headers
from warming.errors import WebhookError
from warming.ops import notify
from warming.sandbox import World, start_world


def _report(state: str = "done", **counts: int) -> dict[str, Any]:
    c = {"total": 4, "hit": 4, "miss": 0, "failed": 0, "dropped": 0, **counts}
    results = [
        {"url": f"{SITE}/x<y>", "pop": "fra", "outcome": "failed", "error": "refused & <gone>"}
    ] * c["failed"]
    return {"batch_id": "b1", "state": state, "counts": c, "trigger": {"source": "cli"},
            "results": results, "finished_at": "2026-12-02T00:00:00+00:00"}  # fmt: skip


def test_notify_on_decides_which_batches_are_told() -> None:
    assert not notify.wanted(["failed", "miss"], _report())
    assert notify.wanted(["done"], _report())
    assert notify.wanted(["failed"], _report(hit=3, failed=1))
    assert notify.wanted(["failed"], _report("failed", hit=0))  # its purge failed
    assert not notify.wanted(["failed"], _report(hit=3, miss=1))
    assert notify.wanted(["miss"], _report(hit=3, miss=1))


def test_the_slack_summary_reads_well_and_escapes() -> None:
    msg = notify.slack_message(_report(hit=3, failed=1), "https://warming.example/batches/b1")
    assert msg["text"] == "batch b1 done: 3 hit, 0 miss, 1 failed of 4, 0 dropped (trigger cli)"
    blocks = json.dumps(msg["blocks"])
    assert "x&lt;y&gt;" in blocks and "refused &amp; &lt;gone&gt;" in blocks
    assert "<https://warming.example/batches/b1|report>" in blocks


def test_the_callback_verifies_as_our_shim_verifies_webhooks() -> None:
    body = notify.encode(notify.callback_event(_report(hit=3, failed=1)))
    headers = notify.signed_headers(SECRET, "msg_b1", body, now=1_800_000_000)
    assert headers["webhook-signature"] == sign(SECRET, "msg_b1", 1_800_000_000, body)
    verify_headers(headers, body, [SECRET], 300, 1_800_000_000)  # the shim's own check
    with pytest.raises(WebhookError):
        verify_headers(headers, body + b" ", [SECRET], 300, 1_800_000_000)
    event = json.loads(body)
    assert event["type"] == "batch.finished"
    assert event["data"]["not_hit"][0]["error"] == "refused & <gone>"


class Receiver:
    """A real HTTP server that records each POST; the callback fails `fail` times first."""

    def __init__(self, fail: int = 0) -> None:
        self.got: list[tuple[float, str, dict[str, str], bytes]] = []
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.got.append((time.monotonic(), self.path, headers, body))
                failing = self.path == "/callback" and outer.fail > 0
                if failing:
                    outer.fail -= 1
                self.send_response(503 if failing else 200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self, path: str) -> list[tuple[float, str, dict[str, str], bytes]]:
        return [g for g in self.got if g[1] == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with start_world(n_edges=2, prefer_varnish=False) as w:
        w.origin.fail("/broken", 500)
        yield w


@pytest.mark.integration
def test_a_worker_tells_slack_and_a_signed_callback_retried_off_the_pipeline(
    world: World, redis_url: str, tmp_path: Path
) -> None:
    rx = Receiver(fail=2)  # the callback answers 503 twice: the third attempt gets through
    config = write_config(
        tmp_path / "warming.toml",
        redis_url,
        world.pops(),
        fetch={"max_attempts": 1},
        notify={
            "slack_url": f"{rx.url}/slack",
            "callback_url": f"{rx.url}/callback",
            "callback_secret": SECRET,
            "report_url": "https://warming.example",
        },
    )
    worker = Worker(config, tmp_path / "worker.log", concurrency=4)
    try:
        t0 = time.monotonic()
        res = run_cli(config, "warm", "/ok", "/broken", "--no-purge", "--wait", "--json")
        ended = time.monotonic()
        report = json.loads(res.stdout)
        bid = report["batch_id"]
        # The batch ended without waiting for the callback's retries (2 s, then 4 s).
        assert len(rx.posts("/callback")) <= 1
        deadline = time.monotonic() + 30
        while len(rx.posts("/callback")) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        # A batch where every pair is a HIT is not told (notify.on defaults to failed, miss).
        res2 = run_cli(config, "warm", "/fine", "--no-purge", "--wait", "--json")
        assert json.loads(res2.stdout)["counts"]["hit"] == 2
        time.sleep(2)
    finally:
        worker.stop()
        rx.stop()
    slack = rx.posts("/slack")
    assert len(slack) == 1, worker.log()[-3000:]
    msg = json.loads(slack[0][3])
    assert msg["text"].startswith(f"batch {bid} done: 2 hit, 0 miss, 2 failed of 4")
    assert f"{SITE}/broken" in json.dumps(msg["blocks"])
    assert f"https://warming.example/batches/{bid}" in json.dumps(msg["blocks"])
    calls = rx.posts("/callback")
    assert len(calls) == 3
    assert {c[2]["webhook-id"] for c in calls} == {f"msg_{bid}"}  # one notice, retried
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(calls)]
    assert 1.5 < gaps[0] < gaps[1]  # backoff: about 2 s, then 4 s
    for _, _, headers, body in calls:
        verify_headers(headers, body, [SECRET], 300, time.time())
        event = json.loads(body)
        assert event["data"]["batch_id"] == bid and event["data"]["counts"]["failed"] == 2
    assert calls[0][0] > t0 and ended - t0 < 30
    assert f"notify callback of batch {bid}: delivered" in worker.log()
