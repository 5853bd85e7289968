"""Two real worker processes together hold the cluster-wide limit, measured at the PoPs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import Worker, run_cli, write_config

pytestmark = pytest.mark.integration

LIMIT = 40  # requests/s for the whole cluster
BODY = b"<h1>cached</h1>"


class RecordingPoP:
    """An edge that always serves a cache HIT and records when each GET arrived."""

    def __init__(self) -> None:
        self.times: list[float] = []
        lock = threading.Lock()
        times = self.times

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with lock:
                    times.append(time.monotonic())
                self.send_response(200)
                for k, v in (
                    ("X-Cache", "HIT"),
                    ("Age", "5"),
                    ("ETag", '"v1"'),
                    ("Content-Length", str(len(BODY))),
                ):
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(BODY)

            def do_PURGE(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pops() -> Iterator[list[RecordingPoP]]:
    ps = [RecordingPoP(), RecordingPoP()]
    yield ps
    for p in ps:
        p.close()


def test_two_workers_together_hold_the_limit(
    tmp_path: Path, redis_url: str, pops: list[RecordingPoP]
) -> None:
    config = write_config(
        tmp_path / "warming.toml",
        redis_url,
        [{"name": f"edge{i}", "url": p.url} for i, p in enumerate(pops)],
        limits={"prefetch": f"{LIMIT}/s", "purge": "500/s", "adaptive": False},
        cdn={"provider": "none"},
    )
    workers = [Worker(config, tmp_path / f"w{i}.log", concurrency=8) for i in range(2)]
    try:
        # 400 URLs x 2 PoPs: 800 GETs, ~20 s. These PoPs answer a fresh HIT at once, and
        # a warm answer that is a fresh HIT is its own proof: no verification request.
        paths = tmp_path / "urls.txt"
        paths.write_text("\n".join(f"/limit/{i}" for i in range(400)))
        res = run_cli(config, "warm", "--file", str(paths), "--wait", "--json", timeout=120)
    finally:
        for w in workers:
            w.stop()
    report = json.loads(res.stdout)
    assert res.returncode == 0, report["counts"]
    times = sorted(t for p in pops for t in p.times)
    assert len(times) == 800
    # Both processes took part: each logged prefetches of its own.
    for w in workers:
        assert "warming.prefetch" in w.log() and "succeeded" in w.log()
    # Never more than the limit (+10%) in any one-second window, seen at the PoPs.
    worst = max(sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times))
    assert worst <= LIMIT * 1.1 + 1, worst
    busy = times[-1] - times[0]
    rate = (len(times) - 1) / busy
    assert rate >= 0.85 * LIMIT, f"{rate:.1f}/s over {busy:.1f} s"
    print(f"two workers: {rate:.1f} req/s at the PoPs (limit {LIMIT}), worst 1-s window {worst}")
