"""The report page: rendering rules, then a real batch's page in a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.support import ROOT, SITE, Worker, need, run_cli, write_config
from warming.batch.publish import WarmRequest, publish
from warming.ops import page
from warming.runtime import Runtime, use
from warming.sandbox import World, start_world
from warming.settings import load_settings
from warming.shim.app import create_app

# WARMING_SCREENSHOT=docs refreshes the README's screenshot; otherwise it goes to tmp_path.
DOCS_SCREENSHOT = ROOT / "docs" / "report-page.png"
TOKEN = "page-token-0123456789"


def _report(state: str, results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "batch_id": "b1",
        "state": state,
        "trigger": {"source": "cli"},
        "counts": {"total": len(results), "hit": 0, "miss": 0, "failed": 0, "dropped": 0},
        "results": results,
        "dropped": [],
        "pops": ["fra", "ams"],
        "purge": True,
        **extra,
    }


def _pair(url: str, pop: str, outcome: str, error: str | None = None) -> dict[str, Any]:
    return {"url": url, "pop": pop, "variant": "default", "outcome": outcome, "error": error}


def test_everything_from_the_report_is_escaped() -> None:
    evil = 'http://www.example.com/"><script>alert(1)</script>'
    html = page.render(
        _report(
            "done",
            [_pair(evil, "fra", "miss", "<img src=x onerror=alert(2)>")],
            dropped=[{"url": evil, "reason": "<b>denied</b>"}],
        )
    )
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>denied" not in html
    assert "&lt;script&gt;alert(1)" in html and "&lt;img src=x" in html


def test_only_a_running_batch_reloads_itself() -> None:
    assert 'http-equiv="refresh"' in page.render(_report("warming", []))
    for state in ("done", "failed"):
        assert 'http-equiv="refresh"' not in page.render(_report(state, []))


def test_rows_with_a_non_hit_come_first_and_a_big_matrix_is_cut() -> None:
    results = [_pair(f"{SITE}/{i}", "fra", "hit") for i in range(5)]
    results.append(_pair(f"{SITE}/bad", "fra", "failed", "refused"))
    html = page.render(_report("done", results), max_rows=3)
    rows = html.split("<tbody>")[1].split("</tbody>")[0]
    assert rows.index(f"{SITE}/bad") < rows.index(f"{SITE}/0")
    assert f"{SITE}/2<" not in rows  # cut after 3 rows
    assert "and 3 more URLs" in html
    # A PoP without a verdict yet is a pending cell, not a missing one.
    assert 'data-pop="ams">PENDING' in rows


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    need(
        bool(browser and driver),
        "Chromium missing (apt-get install chromium chromium-driver)",
    )
    assert browser and driver
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary, driver_path = _chromium()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        need(False, "selenium is not installed (pip install -e '.[test]')")

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
    ):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield drv
    finally:
        drv.quit()


class Shim:
    """The shim's app under uvicorn in a thread, on a free port."""

    def __init__(self, rt: Runtime) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            create_app(rt), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        end = time.monotonic() + 10
        while not self.server.started and time.monotonic() < end:
            time.sleep(0.05)
        assert self.server.started

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with start_world(n_edges=2, prefer_varnish=False) as w:
        w.origin.fail("/broken", 500)
        yield w


@pytest.fixture(scope="module")
def config(world: World, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("page") / "warming.toml"
    return write_config(path, redis_url, world.pops(), fetch={"max_attempts": 1})


@pytest.fixture(scope="module")
def finished(config: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real batch, warmed by a real worker: hits, a failed URL at both edges, drops."""
    worker = Worker(config, tmp_path_factory.mktemp("w") / "worker.log", concurrency=4)
    try:
        urls = ["/", "/blog/a", "/broken", "http://evil.example.net/x", "/preview/draft"]
        res = run_cli(config, "warm", *urls, "--no-purge", "--wait", "--json")
        report: dict[str, Any] = json.loads(res.stdout)
    finally:
        worker.stop()
    assert report["state"] == "done" and report["counts"]["failed"] == 2, report
    return report


@pytest.fixture()
def runtime(config: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("WARMING_CONFIG", str(config))
    return use(load_settings())


@pytest.mark.integration
def test_the_page_in_chromium_shows_the_matrix_reasons_and_drops(
    browser: Any, finished: dict[str, Any], runtime: Runtime, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    shim = Shim(runtime)
    try:
        browser.get(shim.url(f"/batches/{finished['batch_id']}"))
        assert browser.find_element(By.ID, "state").text == "done"
        assert browser.find_element(By.CSS_SELECTOR, "#count-failed b").text == "2"
        assert browser.find_element(By.CSS_SELECTOR, "#count-hit b").text == "4"
        assert browser.find_element(By.CSS_SELECTOR, "#count-dropped b").text == "2"
        cell = browser.find_element(
            By.CSS_SELECTOR, f'td[data-url="{SITE}/broken"][data-pop="edge1"]'
        )
        assert "failed" in cell.get_attribute("class").split()
        assert cell.value_of_css_property("background-color") == "rgba(207, 34, 46, 1)"
        reason = cell.find_element(By.CLASS_NAME, "reason")
        assert not reason.is_displayed()  # one click away, not in the way
        cell.find_element(By.TAG_NAME, "summary").click()
        assert reason.is_displayed() and "500" in reason.text
        hit = browser.find_element(
            By.CSS_SELECTOR, f'td[data-url="{SITE}/blog/a"][data-pop="edge2"]'
        )
        assert hit.text == "HIT" and "hit" in hit.get_attribute("class").split()
        # The failed URL's row comes first: the eye lands on what needs it.
        first_row = browser.find_element(By.CSS_SELECTOR, "#matrix tbody tr td.url")
        assert first_row.text == f"{SITE}/broken"
        dropped = browser.find_element(By.ID, "dropped").text
        assert "http://evil.example.net/x" in dropped and "/preview/draft" in dropped
        assert browser.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]') == []
        assert "state-partial" in browser.find_element(By.ID, "state").get_attribute("class")
        shot = (
            DOCS_SCREENSHOT
            if os.environ.get("WARMING_SCREENSHOT") == "docs"
            else tmp_path / "p.png"
        )
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    finally:
        shim.stop()


@pytest.mark.integration
def test_a_running_batch_page_refreshes_until_it_ends(browser: Any, runtime: Runtime) -> None:
    from selenium.webdriver.common.by import By

    plan = publish(runtime, WarmRequest(paths=["/live"], purge=False))  # no worker: it waits
    shim = Shim(runtime)
    try:
        browser.get(shim.url(f"/batches/{plan.batch_id}"))
        assert browser.find_element(By.ID, "state").text == "queued"
        runtime.store.finish(plan.batch_id, "done", note="ended by the test")
        end = time.monotonic() + 15
        while time.monotonic() < end:
            try:
                if browser.find_element(By.ID, "state").text == "done":
                    break
            except Exception:  # the page is reloading
                pass
            time.sleep(0.2)
        assert browser.find_element(By.ID, "state").text == "done"
        assert "ended by the test" in browser.find_element(By.ID, "note").text
    finally:
        shim.stop()


@pytest.mark.integration
def test_with_a_token_the_browser_needs_it(
    browser: Any, finished: dict[str, Any], config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.setenv("WARMING_CONFIG", str(config))
    monkeypatch.setenv("WARMING_REPORT__TOKEN", TOKEN)
    shim = Shim(use(load_settings()))
    url = shim.url(f"/batches/{finished['batch_id']}")
    try:
        browser.get(url)
        assert "bearer token is required" in browser.find_element(By.TAG_NAME, "body").text
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {TOKEN}"}}
        )
        browser.get(url)
        assert browser.find_element(By.ID, "state").text == "done"
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        shim.stop()
