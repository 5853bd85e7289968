"""README "CDN providers": each `[cdn]` example, as written, purges through its double.

Only the addresses change (`api_url`, `revalidate_url`: the doubles run on loopback),
and the doubles are told the example's account ids and secrets.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.cdn import test_akamai, test_cloudflare, test_fastly, test_vercel
from tests.cdn.conftest import Pushed, purge_batch, push_batch, runtime
from tests.cdn.doubles import Bucket, Double
from tests.cdn.nextapp import ROUTE, NextApp
from tests.cdn.pushapis import GcorePrefetch, PreloadApi
from tests.cdn.test_cloudfront import AwsRules, aws  # noqa: F401 (the fixture)
from tests.cdn.test_nginx import CachePurge
from tests.support import ROOT, SITE
from warming.stages.outcome import Done

pytestmark = pytest.mark.integration


def _blocks() -> list[dict[str, Any]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## CDN providers", 1)[1].split("\n## ", 1)[0]
    return [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", section, re.S)]


def examples() -> dict[str, dict[str, Any]]:
    found = {}
    for cfg in _blocks():
        if "warm" in cfg:  # push mode's: push_examples()
            continue
        cdn = cfg["cdn"]
        found["+".join(cdn.get("providers") or [cdn["provider"]])] = cfg
    return found


def push_examples() -> dict[str, dict[str, Any]]:
    """README "Push mode": each `[warm]` example by its provider."""
    return {cfg["warm"]["provider"]: cfg for cfg in _blocks() if "warm" in cfg}


def test_the_readme_has_an_example_for_every_api_provider() -> None:
    assert set(examples()) >= {
        "fastly",
        "cloudflare",
        "cloudfront",
        "akamai",
        "vercel",
        "nextjs+cloudflare",
        "nginx",
    }


def _run(redis_url: str, cfg: dict[str, Any], **cdn: Any) -> None:
    got = purge_batch(runtime(redis_url, {**cfg["cdn"], **cdn}), ["/readme"], ["readme"])
    assert isinstance(got.outcome, Done), got.batch.get("error")


@pytest.mark.timeout(60)
def test_fastly_example(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = examples()["fastly"]
    monkeypatch.setattr(test_fastly, "TOKEN", cfg["cdn"]["api_token"])
    monkeypatch.setattr(test_fastly, "SERVICE", cfg["cdn"]["service_id"])
    api = test_fastly.FastlyApi()
    with Double(api) as d:
        _run(redis_url, cfg, api_url=d.url)
    assert api.purged_keys == ["readme"] and d.violations == []


@pytest.mark.timeout(60)
def test_cloudflare_example(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = examples()["cloudflare"]
    monkeypatch.setattr(test_cloudflare, "TOKEN", cfg["cdn"]["api_token"])
    monkeypatch.setattr(test_cloudflare, "ZONE", cfg["cdn"]["zone_id"])
    api = test_cloudflare.CloudflareApi(Bucket(50, 10))
    with Double(api) as d:
        _run(redis_url, cfg, api_url=d.url)
    assert api.purged["prefixes"] == cfg["cdn"]["prefixes"] and d.violations == []


@pytest.mark.timeout(60)
def test_akamai_example(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = examples()["akamai"]
    for name in ("client_token", "client_secret", "access_token"):
        monkeypatch.setattr(test_akamai, name.upper(), cfg["cdn"][name])
    api = test_akamai.FastPurge(estimated_s=1)
    with Double(api) as d:
        _run(redis_url, cfg, api_url=d.url)
    assert {a for a, *_ in api.purged} == {"invalidate"} and d.violations == []


@pytest.mark.timeout(60)
def test_vercel_example(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = examples()["vercel"]
    for const, key in (("TOKEN", "api_token"), ("PROJECT", "project"), ("TEAM", "team_id")):
        monkeypatch.setattr(test_vercel, const, cfg["cdn"][key])
    api = test_vercel.VercelApi()
    with Double(api) as d:
        _run(redis_url, cfg, api_url=d.url)
    assert api.purged == [("dangerously-delete-by-tags", "readme")]


@pytest.mark.timeout(60)
def test_nextjs_then_cloudflare_example(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = examples()["nextjs+cloudflare"]
    monkeypatch.setattr(test_cloudflare, "TOKEN", cfg["cdn"]["api_token"])
    monkeypatch.setattr(test_cloudflare, "ZONE", cfg["cdn"]["zone_id"])
    app = NextApp(cfg["cdn"]["revalidate_secret"])
    api = test_cloudflare.CloudflareApi(Bucket(50, 10))
    try:
        with Double(api) as d:
            _run(redis_url, cfg, api_url=d.url, revalidate_url=app.url + ROUTE)
            first_cf = d.seen[0]
    finally:
        app.stop()
    ((_, body),) = app.revalidations
    assert body == {"tags": ["readme"], "paths": ["/readme"]} and api.purged["files"]
    assert first_cf is not None


@pytest.mark.timeout(60)
def test_cloudfront_example(redis_url: str, aws: tuple[AwsRules, str]) -> None:  # noqa: F811
    rules, dist = aws
    cfg = examples()["cloudfront"]
    _run(redis_url, cfg, distribution_id=dist, poll_interval_s=0.5)  # moto's distribution
    assert [i.paths for i in rules.created] == [["/readme"]]


@pytest.mark.timeout(60)
def test_nginx_example(redis_url: str) -> None:
    log: list[tuple[str, str]] = []
    cfg = examples()["nginx"]
    with Double(CachePurge("fra", log, cfg["cdn"]["purge_path"])) as e:
        got = purge_batch(
            runtime(redis_url, cfg["cdn"], pops=[{"name": "fra", "url": e.url}]), ["/a"]
        )
    assert isinstance(got.outcome, Done) and log == [("fra", "/a")]


def test_the_readme_has_a_push_example_for_each_push_provider() -> None:
    assert set(push_examples()) == {"gcore", "generic"}


def _push(redis_url: str, cfg: dict[str, Any], **warm: Any) -> Pushed:
    rt = runtime(redis_url, {"provider": "none"}, warm={**cfg["warm"], **warm})
    return push_batch(rt, ["/readme", "/readme?page=2"])


@pytest.mark.timeout(60)
def test_gcore_push_example(redis_url: str) -> None:
    cfg = push_examples()["gcore"]
    assert cfg["cdn"]["provider"] == "varnish" and cfg["warm"]["settle_s"] == 30
    api = GcorePrefetch(cfg["warm"]["api_token"], cfg["warm"]["resource_id"])
    with Double(api) as d:
        got = _push(redis_url, cfg, api_url=d.url, settle_s=0)
    assert isinstance(got.outcome, Done) and d.violations == [] and got.fallback == {}
    assert api.accepted == [["/readme", "/readme?page=2"]]


@pytest.mark.timeout(60)
def test_generic_push_example(redis_url: str) -> None:
    cfg = push_examples()["generic"]
    api = PreloadApi(cfg["warm"]["api_token"], cfg["warm"]["max_per_call"])
    with Double(api) as d:
        endpoint = d.url + urlsplit(cfg["warm"]["endpoint"]).path
        got = _push(redis_url, cfg, endpoint=endpoint, settle_s=0)
    assert isinstance(got.outcome, Done) and d.violations == [] and got.fallback == {}
    assert api.accepted == [[f"{SITE}/readme", f"{SITE}/readme?page=2"]]
