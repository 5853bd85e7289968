"""`warming warm --dry-run/--exclude/--limit` and `warming config schema|show`, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import ROOT, SITE, SitemapOrigin, env_for, need, run_cli, write_config
from warming.sandbox import VarnishEdge, varnish_available
from warming.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PAGES = ["/a", "/blog/one", "/b", "/preview/draft", "/c?utm_source=x", "/d", "/blog/two"]


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[SitemapOrigin, list[dict[str, str]]]]:
    need(varnish_available(), "varnishd is not installed")
    origin = SitemapOrigin().start()
    edges = [VarnishEdge(f"edge{i}", ("127.0.0.1", origin.port)) for i in (1, 2)]
    try:
        for e in edges:
            e.start()
        ns = "http://www.sitemaps.org/schemas/sitemap/0.9"
        locs = "".join(f"<url><loc>{SITE}{p.replace('&', '&amp;')}</loc></url>" for p in PAGES)
        origin.documents = {"/dry.xml": f'<urlset xmlns="{ns}">{locs}</urlset>'.encode()}
        pops = [{"name": e.name, "url": e.url} for e in edges]
        pops[1]["rate"] = "2/s"  # slower than the cluster's share: it sets the estimate
        yield origin, pops
    finally:
        for e in edges:
            e.stop()
        origin.stop()


def _config(tmp_path: Path, redis_url: str, pops: list[dict[str, str]]) -> Path:
    variants = [
        {"name": "gzip", "headers": {"Accept-Encoding": "gzip"}},
        {"name": "plain", "headers": {}},
    ]
    return write_config(
        tmp_path / "warming.toml",
        redis_url,
        pops,
        site={"variants": variants},
        limits={"prefetch": "100/s"},
    )


def test_dry_run_prints_the_plan_and_sends_nothing(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> None:
    origin, pops = world
    config = _config(tmp_path, redis_url, pops)
    origin.reset_counts()
    args = ["warm", "--sitemap", "/dry.xml", "--exclude", "/blog/*", "--limit", "3"]
    res = run_cli(config, *args, "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    # In sitemap order, tracking parameter stripped, the denied path and the excluded ones out.
    assert plan["urls"] == [SITE + "/a", SITE + "/b", SITE + "/c"]
    assert [p["name"] for p in plan["pops"]] == ["edge1", "edge2"]
    assert plan["variants"] == ["gzip", "plain"]
    assert plan["pairs"] == 12
    dropped = {d["url"]: d["reason"] for d in plan["dropped"]}
    assert (
        dropped[SITE + "/blog/one"]
        == dropped[SITE + "/blog/two"]
        == "excluded by --exclude /blog/*"
    )
    assert dropped[SITE + "/d"] == "over --limit 3"
    assert "deny_paths" in dropped[SITE + "/preview/draft"]
    # edge2's own 2/s for its 6 pairs is slower than 12 pairs at the cluster's 100/s.
    assert plan["estimate"] == {"prefetch_rate": "100/s", "warm_s": 3.0, "with_verification_s": 6.0}
    # Only the sitemap was fetched: no purge, no warm request, no batch stored.
    assert origin.counts == {"/dry.xml": 1}
    assert list(redis.Redis.from_url(redis_url).scan_iter("warming:batch:*")) == []

    text = run_cli(config, *args, "--dry-run")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert out.startswith("dry run: nothing purged, warmed or stored\n")
    assert "3 URLs x 2 PoPs x 2 variants = 12 pairs; priority bulk, purge yes" in out
    assert "estimated time at limits.prefetch = 100/s: 3.0 s to warm, up to 6.0 s" in out
    assert f"  {SITE}/d: over --limit 3\n" in out


def test_exclude_and_limit_shape_the_real_batch(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> None:
    _, pops = world
    config = _config(tmp_path, redis_url, pops)
    res = run_cli(config, "warm", "/x", "/skip/me", "/y", "/z", "--exclude", "*/skip/*",
                  "--limit", "2", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    batch_id = json.loads(res.stdout)["batch_id"]
    rep = json.loads(run_cli(config, "report", batch_id, "--json").stdout)
    assert {d["url"]: d["reason"] for d in rep["dropped"]} == {
        SITE + "/skip/me": "excluded by --exclude */skip/*",
        SITE + "/z": "over --limit 2",
    }
    assert rep["counts"]["total"] == 2 * 2 * 2  # /x and /y, two PoPs, two variants
    assert run_cli(config, "warm", "/x", "--limit", "0").returncode == 2


def test_config_schema_describes_the_file() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "warming", "config", "schema"],
        env={k: v for k, v in env_for(Path("/nonexistent")).items() if k != "WARMING_CONFIG"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr  # no config file needed
    schema = json.loads(res.stdout)
    assert set(schema["properties"]) == set(Settings.model_fields)
    assert {"site", "pops"} <= set(schema["required"])
    pop = schema["$defs"]["PopSettings"]
    assert pop["properties"]["tier"]["enum"] == ["edge", "shield"]
    assert pop["additionalProperties"] is False  # a misspelt key is an error, as at load


def test_config_show_prints_the_effective_config_with_secrets_redacted(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "warming.toml",
        "redis://:hunter2-broker@127.0.0.1:6397/9",
        [{"name": "edge1", "url": "http://127.0.0.1:1"}],
        webhook={"secrets": ["whsec_dG9wc2VjcmV0LWZpbGU="]},
        cdn={"provider": "fastly", "api_token": "file-token-s3cret"},
    )
    env = env_for(config, WARMING_CDN__API_TOKEN="env-token-s3cret", WARMING_LIMITS__PREFETCH="7/s")
    res = subprocess.run(
        [sys.executable, "-m", "warming", "config", "show"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    for secret in ("hunter2", "dG9wc2VjcmV0", "s3cret"):
        assert secret not in res.stdout + res.stderr
    shown = json.loads(res.stdout)
    assert shown["broker_url"] == "redis://127.0.0.1:6397/9"
    assert shown["webhook"]["secrets"] == ["**********"]
    assert shown["cdn"]["api_token"] == "**********"
    assert shown["limits"]["prefetch"] == "7/s"  # the environment wins over the file
    assert shown["site"]["deny_paths"] == ["/preview", "/draft"]  # defaults are shown too
