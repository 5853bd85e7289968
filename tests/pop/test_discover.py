"""PoP discovery against a DNS double that answers by client subnet (no network needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pop.dnsdouble import DnsDouble, Zone, silent_udp
from warming.batch.plan import Plan
from warming.errors import FetchError
from warming.pop.cachestatus import served_by
from warming.pop.discover import UNRESOLVED_URL, Discoverer, ask, cloudfront_name
from warming.settings import DiscoverSettings, PopSettings, Settings, SiteSettings

SITE = SiteSettings(base_url="https://www.example.com")
CDN_NAME = "www.example.com.cdn.test"
DIST = "d111111abcdef8.cloudfront.net"


def zone() -> Zone:
    return Zone(
        cnames={"www.example.com": CDN_NAME},
        addresses={
            CDN_NAME: [
                ("85.214.0.0/16", ["198.51.100.11", "198.51.100.111"]),
                ("203.0.113.0/24", ["198.51.100.12"]),
                (None, ["198.51.100.13"]),
            ],
            cloudfront_name(DIST, "FRA56-P1"): [(None, ["198.51.100.21"])],
            cloudfront_name(DIST, "IAD89-C2"): [(None, ["2001:db8::21"])],
        },
        ttl=120,
    )


@pytest.fixture
def dns() -> Iterator[DnsDouble]:
    with DnsDouble(zone()) as d:
        yield d


def test_client_subnet_gets_the_answer_for_users_there(dns: DnsDouble) -> None:
    fra = ask("www.example.com", dns.address, "85.214.132.0/24")
    assert sorted(fra.ips) == ["198.51.100.11", "198.51.100.111"]  # an RRset has no order
    assert fra.scope == 16 and fra.ttl_s == 120 and fra.error is None
    nyc = ask("www.example.com", dns.address, "203.0.113.0/24")
    assert nyc.ips == ("198.51.100.12",)
    anyone = ask("www.example.com", dns.address)
    assert anyone.ips == ("198.51.100.13",) and anyone.scope is None
    # The double saw the subnets on the wire, the CNAME was followed (one question each).
    assert [a.subnet for a in dns.asked] == ["85.214.132.0/24", "203.0.113.0/24", None]
    assert dns.refused == []


def test_pops_get_urls_on_the_sites_scheme_and_port_and_answers_are_cached(
    dns: DnsDouble,
) -> None:
    d = DiscoverSettings(resolvers=[dns.address], cloudfront_domain=DIST)
    finder = Discoverer(SITE, d)
    pops = [
        PopSettings(name="fixed", url="http://192.0.2.1:8080"),
        PopSettings(name="fra", client_subnet="85.214.132.0/24"),
        PopSettings(name="nyc", client_subnet="203.0.113.0/24", resolver=dns.address),
        PopSettings(name="cf-fra", cloudfront_pop="FRA56-P1"),
        PopSettings(name="cf-iad", cloudfront_pop="IAD89-C2"),
    ]
    out, found = finder.addressed(pops)
    assert out[1].url in ("https://198.51.100.11:443", "https://198.51.100.111:443")
    assert [p.url for p in out[:1] + out[2:]] == [
        "http://192.0.2.1:8080",
        "https://198.51.100.12:443",
        "https://198.51.100.21:443",
        "https://[2001:db8::21]:443",
    ]
    assert set(found) == {"fra", "nyc", "cf-fra", "cf-iad"}
    assert found["cf-fra"].name == "d111111abcdef8.FRA56-P1.cloudfront.net"
    assert "for users in 85.214.132.0/24" in found["fra"].how()
    asked = len(dns.asked)
    again, _ = finder.addressed(pops)  # within the TTL: no new question
    assert [p.url for p in again] == [p.url for p in out] and len(dns.asked) == asked
    ported = Discoverer(SITE, d.model_copy(update={"port": 8443}))
    assert ported.address(pops[2])[0].url == "https://198.51.100.12:8443"


def test_a_pop_that_cannot_be_found_fails_its_pairs_with_the_reason(dns: DnsDouble) -> None:
    sock, down = silent_udp()
    try:
        d = DiscoverSettings(resolvers=[dns.address], cloudfront_domain=DIST, timeout_s=0.3)
        finder = Discoverer(SITE, d)
        pops = [
            PopSettings(name="gone", cloudfront_pop="XXX1-P1"),
            PopSettings(name="down", client_subnet="85.214.0.0/16", resolver=down),
            PopSettings(name="fra", client_subnet="85.214.0.0/16"),
        ]
        out, found = finder.addressed(pops)
    finally:
        sock.close()
    assert out[0].url == UNRESOLVED_URL and out[1].url == UNRESOLVED_URL
    assert "does not exist (NXDOMAIN)" in (found["gone"].error or "")
    assert found["down"].error == "no answer in 0.3 s"
    assert out[2].url.startswith("https://198.51.100.11")
    settings = Settings(site=SITE, pops=pops, discover=d)
    addresses = {
        n: {**f.as_dict(), "how": f.how(), "url": None if f.error else p.url}
        for p in out
        for n, f in found.items()
        if n == p.name
    }
    plan = Plan.build("b1", settings, ["https://www.example.com/a"], pops=out, addresses=addresses)
    back = Plan.from_json(plan.to_json())
    assert back.addresses == addresses and back.pops == plan.pops
    why = back.unaddressed("down") or ""
    assert why.startswith("no address for PoP down: www.example.com asked of")
    assert why.endswith("no answer in 0.3 s")
    assert back.unaddressed("fra") is None
    assert [p.name for p in back.addressed_pops()] == ["fra"]
    # The send path refuses before any socket is opened.
    from warming.stages.send import fetch

    with pytest.raises(FetchError, match="no address for PoP gone"):
        fetch(None, back, back.all_pairs()[0], 1.0, warming=True)  # type: ignore[arg-type]


def test_truncated_udp_answers_are_asked_again_over_tcp() -> None:
    z = zone()
    z.addresses[CDN_NAME][2] = (None, [f"198.51.100.{i}" for i in range(1, 60)])
    with DnsDouble(z) as d:
        got = ask("www.example.com", d.address)
    assert len(got.ips) == 59
    assert [a.transport for a in d.asked] == ["udp", "tcp"]


def test_the_survey_asks_every_resolver_for_every_subnet(dns: DnsDouble) -> None:
    d = DiscoverSettings(
        resolvers=[dns.address],
        subnets=[
            {"name": "fra", "subnet": "85.214.132.0/24"},  # type: ignore[list-item]
            {"name": "nyc", "subnet": "203.0.113.0/24"},  # type: ignore[list-item]
        ],
        cloudfront_domain=DIST,
        cloudfront_pops=["FRA56-P1"],
    )
    found = Discoverer(SITE, d).survey()
    assert set(found[1].ips) == {"198.51.100.11", "198.51.100.111"}
    assert [(f.subnet, f.ips[:1]) for f in found] == [
        (None, ("198.51.100.13",)),
        ("85.214.132.0/24", found[1].ips[:1]),
        ("203.0.113.0/24", ("198.51.100.12",)),
        (None, ("198.51.100.21",)),
    ]


@pytest.mark.parametrize(
    ("pop", "why"),
    [
        ({"name": "a"}, "needs url"),
        ({"name": "a", "url": "http://192.0.2.1", "resolver": "8.8.8.8"}, "set one"),
        ({"name": "a", "resolver": "dns.google"}, "DNS server's IP address"),
        ({"name": "a", "resolver": "8.8.8.8:99999"}, "DNS server's IP address"),
        ({"name": "a", "client_subnet": "85.214.0.1"}, "CIDR"),
        ({"name": "a", "cloudfront_pop": "FRA 56"}, "PoP code"),
    ],
)
def test_a_pop_must_say_where_it_is_one_way(pop: dict[str, str], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        PopSettings(**pop)


def test_subnets_are_stored_without_bits_past_the_prefix() -> None:
    assert PopSettings(name="a", client_subnet="85.214.132.7/24").client_subnet == (
        "85.214.132.0/24"
    )


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"CF-Ray": "7d1a2b3c4d5e6f70-FRA"}, "FRA"),
        ({"cf-ray": "7d1a2b3c4d5e6f70"}, None),
        ({"X-Amz-Cf-Pop": "FRA56-P1"}, "FRA56-P1"),
        ({"X-Served-By": "cache-fra-etou8220033-FRA, cache-ams21000-AMS"}, "AMS"),
        ({"x-vercel-id": "fra1::iad1::abc12-1712345678-deadbeef"}, "fra1"),
        ({"CF-Ray": "7d1a-<script>"}, None),
        ({"Server": "Varnish"}, None),
    ],
)
def test_the_location_an_answer_names(headers: dict[str, str], code: str | None) -> None:
    assert served_by(headers) == code


def test_a_cloudfront_pop_without_the_distributions_domain_stops_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from warming.errors import ConfigError
    from warming.settings import load_settings

    path = tmp_path / "warming.toml"
    path.write_text(
        '[site]\nbase_url = "https://www.example.com"\n'
        '[[pops]]\nname = "fra"\ncloudfront_pop = "FRA56-P1"\n'
    )
    monkeypatch.setenv("WARMING_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"discover.cloudfront_domain .* needed to find pops fra"):
        load_settings()
