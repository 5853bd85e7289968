"""The shim's /metrics under `warming serve --workers 2`: every process answers the sum."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.ops.prom import free_port, prometheus, scrape
from tests.shim.test_app import SECRET, signed
from tests.shim.test_serving import Served
from tests.support import write_config

pytestmark = pytest.mark.integration

TOKEN = "metrics-token-0123456789"


@pytest.fixture(scope="module")
def shim(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`warming serve --workers 2` with a metrics token: its base URL."""
    tmp = tmp_path_factory.mktemp("shim")
    config = write_config(
        tmp / "warming.toml",
        redis_url,
        [{"name": "fra", "url": "http://127.0.0.1:9"}],
        webhook={"secrets": [SECRET]},
        metrics={"token": TOKEN},
    )
    served = Served(config, workers=2, port=free_port())
    try:
        served.wait_ready()  # both processes listening, or one would take every connection
        yield f"http://127.0.0.1:{served.port}"
    finally:
        served.stop()


def test_every_shim_process_answers_the_sum_of_all(shim: str) -> None:
    n = 12
    for i in range(n):
        body, headers = signed({"paths": [f"/m{i}"]})
        # A new connection each: SO_REUSEPORT spreads them over both processes.
        with requests.Session() as s:
            assert s.post(f"{shim}/webhooks/generic", data=body, headers=headers).status_code == 202
    body, headers = signed({"paths": ["/x"]}, secret="whsec_" + "A" * 44)
    assert requests.post(f"{shim}/webhooks/generic", data=body, headers=headers).status_code == 401
    auth = {"authorization": f"Bearer {TOKEN}"}
    seen = set()
    for _ in range(8):  # each scrape on a new connection, answered by either process
        got = scrape(f"{shim}/metrics", auth)
        seen.add(got[("warming_webhooks_total", (("adapter", "generic"), ("status", "202")))])
        assert got[("warming_webhooks_total", (("adapter", "generic"), ("status", "401")))] == 1
        assert got[("warming_batches", (("state", "queued"),))] == n  # nobody warms them
        assert got[("warming_queue_depth", (("queue", "warming.purge"),))] == n
    assert seen == {n}


def test_the_shims_metrics_want_the_token(shim: str) -> None:
    assert requests.get(f"{shim}/metrics", timeout=5).status_code == 401
    bad = {"authorization": "Bearer nope"}
    assert requests.get(f"{shim}/metrics", headers=bad, timeout=5).status_code == 401


def test_a_real_prometheus_scrapes_the_shim_with_its_token(shim: str, tmp_path: Path) -> None:
    body, headers = signed({"paths": ["/p"]})
    assert requests.post(f"{shim}/webhooks/generic", data=body, headers=headers).status_code == 202
    auth = {"authorization": f"Bearer {TOKEN}"}
    accepted = scrape(f"{shim}/metrics", auth)[
        ("warming_webhooks_total", (("adapter", "generic"), ("status", "202")))
    ]
    with prometheus(tmp_path, {"shim": shim.split("/")[2]}, token=TOKEN) as prom:
        hooks = prom.wait_for('warming_webhooks_total{status="202"}')
        up = prom.query('up{job="shim"}')
    assert hooks and float(hooks[0]["value"][1]) == accepted >= 1
    assert float(up[0]["value"][1]) == 1
