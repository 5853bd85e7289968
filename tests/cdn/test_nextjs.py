"""Next.js on-demand revalidation: the route's contract, then a whole batch end to end.

The end-to-end test is the pattern this project started from: the CMS publishes, the
app's Data Cache still holds the old render, Varnish PoPs in front hold it too. A batch
through `cdn.providers = ["nextjs", "varnish"]` revalidates the app first, then purges
the PoPs, then warms; every PoP must then serve the new version as a HIT.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cdn.conftest import purge_batch, runtime
from tests.cdn.nextapp import ROUTE, NextApp
from tests.support import SITE, Worker, need, probe, warm_json, write_config
from warming.sandbox import varnish_available
from warming.sandbox.varnish import VarnishEdge
from warming.stages.outcome import Done, Failed

pytestmark = pytest.mark.integration

SECRET = "rv-secret-5f1b9c"


@pytest.fixture
def app() -> Iterator[NextApp]:
    a = NextApp(SECRET)
    yield a
    a.stop()


def _cdn(app: NextApp, **extra: object) -> dict[str, object]:
    return {
        "provider": "nextjs",
        "revalidate_url": app.url + ROUTE,
        "revalidate_secret": SECRET,
        **extra,
    }


@pytest.mark.timeout(60)
def test_paths_and_tags_in_one_post_with_the_secret_in_a_header(
    redis_url: str, app: NextApp
) -> None:
    got = purge_batch(runtime(redis_url, _cdn(app)), ["/a", "/a?utm_x=1", "/b?page=2"], ["blog"])
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert app.refused == []
    assert [body for _, body in app.revalidations] == [{"tags": ["blog"], "paths": ["/a", "/b"]}]


@pytest.mark.timeout(60)
def test_the_secret_in_the_query_and_150_items_in_two_posts(redis_url: str) -> None:
    app = NextApp(SECRET, secret_in="query", name="secret")
    try:
        cdn = _cdn(app, revalidate_secret_in="query")
        got = purge_batch(runtime(redis_url, cdn), [f"/p{i}" for i in range(150)])
    finally:
        app.stop()
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert [len(b["paths"]) for _, b in app.revalidations] == [100, 50]


@pytest.mark.timeout(60)
def test_a_wrong_secret_fails_the_batch_and_no_secret_is_shown(
    redis_url: str, app: NextApp
) -> None:
    got = purge_batch(runtime(redis_url, {**_cdn(app), "revalidate_secret": "guess-123"}), ["/a"])
    assert isinstance(got.outcome, Failed)
    assert "nextjs answered 401" in got.batch["error"]
    assert "guess-123" not in json.dumps(got.batch) and SECRET not in json.dumps(got.batch)


@pytest.mark.timeout(60)
def test_a_tag_over_256_characters_is_refused_before_any_call(redis_url: str, app: NextApp) -> None:
    got = purge_batch(runtime(redis_url, _cdn(app)), ["/a"], ["t" * 257])
    assert isinstance(got.outcome, Failed) and "longer than 256" in got.batch["error"]
    assert app.revalidations == [] and app.refused == []


def test_the_route_refuses_what_a_next_route_refuses(app: NextApp) -> None:
    import requests

    url = app.url + ROUTE
    ok = {"x-revalidate-secret": SECRET}
    assert requests.post(url, json={"paths": ["/a"]}).status_code == 401
    assert (
        requests.post(
            url, json={"paths": ["/a"]}, headers={"x-revalidate-secret": "no"}
        ).status_code
        == 401
    )
    assert requests.post(url, json={"path": "/a"}, headers=ok).status_code == 400
    assert requests.post(url, json={"tags": ["x" * 257]}, headers=ok).status_code == 400
    assert requests.post(url, json={"paths": ["/a"]}, headers=ok).json()["revalidated"] is True


@pytest.fixture
def edges(app: NextApp) -> Iterator[list[VarnishEdge]]:
    need(varnish_available(), "varnishd is not installed (apt-get install varnish varnish-modules)")
    started: list[VarnishEdge] = []
    try:
        for name in ("edge1", "edge2"):
            started.append(VarnishEdge(name, ("127.0.0.1", app.port)).start())
        yield started
    finally:
        for e in started:
            e.stop()


@pytest.mark.timeout(150)
def test_a_batch_revalidates_nextjs_then_purges_and_warms_every_varnish_pop(
    tmp_path: Path, redis_url: str, app: NextApp, edges: list[VarnishEdge]
) -> None:
    path = f"/blog/hello-{uuid.uuid4().hex[:8]}"
    for e in edges:  # every PoP and the app's Data Cache hold version 1
        probe(e.url, SITE + path)
        assert "version 1" in probe(e.url, SITE + path).text
    fresh = app.publish(path, tags=["blog"])
    assert "version 1" in probe(edges[0].url, SITE + path).text, "the PoPs serve the old page"
    pops = [{"name": e.name, "url": e.url} for e in edges]
    cdn = {
        "providers": ["nextjs", "varnish"],
        "revalidate_url": app.url + ROUTE,
        "revalidate_secret": SECRET,
    }
    config = write_config(
        tmp_path / "warming.toml",
        redis_url,
        pops,
        cdn=cdn,
        verify={"origin_url": app.url},
        batch={"deadline_s": 60},
    )
    worker = Worker(config, tmp_path / "worker.log")
    try:
        rc, report = warm_json(config, path, "--tag", "blog", timeout=120)
    finally:
        worker.stop()

    assert rc == 0, (report["state"], report.get("error"), report["results"])
    assert {(r["pop"], r["outcome"]) for r in report["results"]} == {
        ("edge1", "hit"),
        ("edge2", "hit"),
    }
    for e in edges:  # each PoP asked directly, as a visitor would
        got = probe(e.url, SITE + path)
        assert got.headers["X-Cache"].split(",")[-1].strip() == "HIT", (e.name, got.headers)
        assert f"version {fresh}" in got.text, (e.name, got.text)
    ((when, body),) = app.revalidations
    assert body == {"tags": ["blog"], "paths": [path]}
    refills = [(t, v) for t, p, v in app.renders if p == path and t > when]
    assert refills and all(v == fresh for _, v in refills), "the PoPs refilled after the app"
    assert SECRET not in worker.log() and SECRET not in json.dumps(report)
