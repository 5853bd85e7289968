"""A batch whose PoPs are found by DNS: real Varnish edges on three loopback addresses,
a GeoDNS double that answers by client subnet, a real worker.

Each edge names itself in `CF-Ray` as a Cloudflare location does, so the report's
`served_by` is what the answers said, not what the configuration assumed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pop.dnsdouble import DnsDouble, Zone
from tests.support import SITE, Worker, need, probe, run_cli, warm_json, write_config
from warming.sandbox import Origin, varnish_available
from warming.sandbox.edge import SandboxError
from warming.sandbox.varnish import VarnishEdge

pytestmark = pytest.mark.integration

CDN_NAME = "www.example.com.cdn.test"
DIST = "d111111abcdef8.cloudfront.net"
# Loopback addresses, one per PoP, as GeoDNS would hand out one per region.
REGIONS = {"fra": ("127.0.0.11", "FRA"), "nyc": ("127.0.0.12", "EWR"), "sfo": ("127.0.0.13", "SFO")}


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Origin, dict[str, VarnishEdge]]]:
    need(varnish_available(), "varnishd is not installed (apt-get install varnish varnish-modules)")
    origin = Origin().start()
    edges: dict[str, VarnishEdge] = {}
    try:
        for _ in range(5):  # one port free on all three addresses
            for e in edges.values():
                e.stop()
            edges = {}
            try:
                port = 0
                for name, (ip, colo) in REGIONS.items():
                    edge = VarnishEdge(name, ("127.0.0.1", origin.port), listen=f"{ip}:{port}",
                                       colo=colo)  # fmt: skip
                    edges[name] = edge.start()
                    port = edge.port
                break
            except SandboxError:
                continue
        assert len(edges) == 3, "no port free on 127.0.0.11-13"
        yield origin, edges
    finally:
        for e in edges.values():
            e.stop()
        origin.stop()


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsDouble]:
    zone = Zone(
        cnames={"www.example.com": CDN_NAME},
        addresses={
            CDN_NAME: [
                ("85.214.0.0/16", [REGIONS["fra"][0]]),
                ("203.0.113.0/24", [REGIONS["nyc"][0]]),
                (None, [REGIONS["sfo"][0]]),
            ]
        },
    )
    with DnsDouble(zone) as d:
        yield d


def _config(tmp: Path, redis_url: str | None, dns: DnsDouble, port: int) -> Path:
    pops = [
        {"name": "fra", "client_subnet": "85.214.132.0/24"},
        {"name": "nyc", "client_subnet": "203.0.113.0/24"},
        {"name": "sfo", "resolver": dns.address},
        {"name": "gone", "cloudfront_pop": "XXX1-P1"},  # NXDOMAIN: no such PoP
    ]
    return write_config(
        tmp / "warming.toml",
        redis_url,
        pops,  # type: ignore[arg-type]
        discover={
            "resolvers": [dns.address],
            "port": port,
            "cloudfront_domain": DIST,
            "subnets": [],
        },
        batch={"deadline_s": 60},
    )


@pytest.mark.timeout(150)
def test_pops_found_by_client_subnet_are_warmed_and_the_batch_keeps_their_addresses(
    tmp_path: Path, redis_url: str, world: tuple[Origin, dict[str, VarnishEdge]], dns: DnsDouble
) -> None:
    origin, edges = world
    port = edges["fra"].port
    config = _config(tmp_path, redis_url, dns, port)
    paths = [f"/geo-{uuid.uuid4().hex[:8]}", f"/geo-{uuid.uuid4().hex[:8]}"]
    worker = Worker(config, tmp_path / "worker.log")
    try:
        rc, report = warm_json(config, *paths, timeout=120)
    finally:
        worker.stop()

    assert rc == 1, "the PoP without an address fails its pairs: not every pair is a HIT"
    got = {(r["pop"], r["url"].removeprefix(SITE)): r for r in report["results"]}
    for name, (ip, colo) in REGIONS.items():
        assert report["addresses"][name]["url"] == f"http://{ip}:{port}"
        assert report["addresses"][name]["ips"] == [ip]
        for p in paths:
            r = got[(name, p)]
            assert (r["outcome"], r["cache"], r["served_by"]) == ("hit", "HIT", colo), r
            seen = probe(edges[name].url, SITE + p)  # the visitor's view, at that address
            assert seen.headers["X-Cache"].split(",")[-1].strip() == "HIT"
    assert report["served_by"] == {n: {c: 2} for n, (_, c) in REGIONS.items()}
    for p in paths:
        r = got[("gone", p)]
        assert r["outcome"] == "failed" and r["attempts"] == 1
        assert r["error"].startswith("no address for PoP gone: d111111abcdef8.XXX1-P1")
        assert r["error"].endswith("does not exist (NXDOMAIN)")
    assert report["addresses"]["gone"]["url"] is None
    # The questions on the wire: ECS for the two regions, none for the plain resolver.
    subnets = {a.subnet for a in dns.asked if a.name == "www.example.com"}
    assert subnets == {"85.214.132.0/24", "203.0.113.0/24", None}
    assert dns.refused == []
    assert origin.hosts_seen == {"www.example.com"}  # each edge got the site's Host


@pytest.mark.timeout(60)
def test_warming_pops_discover_prints_what_each_question_found(
    tmp_path: Path, world: tuple[Origin, dict[str, VarnishEdge]], dns: DnsDouble
) -> None:
    _, edges = world
    port = edges["fra"].port
    config = _config(tmp_path, None, dns, port)
    text = config.read_text().replace('subnets = []', (
        'subnets = [{name = "fra", subnet = "85.214.132.0/24"}, '
        '{name = "nyc", subnet = "203.0.113.0/24"}]\ncloudfront_pops = ["XXX1-P1"]'
    ))  # fmt: skip
    config.write_text(text)
    res = run_cli(config, "pops", "--discover", "--json", timeout=30)
    assert res.returncode == 1, res.stderr  # "gone" has no address
    out = json.loads(res.stdout)
    urls = {r["name"]: r["url"] for r in out["pops"]}
    assert urls == {
        "fra": f"http://127.0.0.11:{port}",
        "nyc": f"http://127.0.0.12:{port}",
        "sfo": f"http://127.0.0.13:{port}",
        "gone": None,
    }
    survey = [(d["name"], d.get("client_subnet"), d["urls"]) for d in out["discovered"]]
    assert survey == [
        ("www.example.com", None, [f"http://127.0.0.13:{port}"]),
        ("www.example.com", "85.214.132.0/24", [f"http://127.0.0.11:{port}"]),
        ("www.example.com", "203.0.113.0/24", [f"http://127.0.0.12:{port}"]),
        ("d111111abcdef8.XXX1-P1.cloudfront.net", None, []),
    ]
    assert "NXDOMAIN" in out["discovered"][3]["error"]
    human = run_cli(config, "pops", "--discover", timeout=30).stdout
    assert f"fra          edge   http://127.0.0.11:{port}" in human
    assert "for users in 85.214.132.0/24 (scope /16): 127.0.0.11" in human
    assert "gone         edge   NO ADDRESS" in human
