"""PoP addresses found by DNS: what users in a region get for the site's CDN name.

A `[[pops]]` entry without `url` names how to find it:

- `client_subnet` (with `resolver`, else the first of `discover.resolvers`, else the
  machine's): the resolver is asked for `discover.hostname` with an EDNS Client Subnet
  option (RFC 7871), so the CDN's DNS answers as it would for a user in that subnet. A
  resolver that does not pass ECS on (1.1.1.1 does not; 8.8.8.8 does) answers for its own
  location: the README says which to use.
- `resolver` alone: that resolver's answer (one per region: a resolver in each).
- `cloudfront_pop` ("FRA56-P1"): CloudFront's per-PoP host name,
  `<distribution>.<pop>.cloudfront.net`, resolved to that PoP's addresses.

Requests then go to the first address, on the site's scheme and port (`discover.port`
to override), with the site's name as Host and TLS SNI (warming.pop.client), exactly as
a user's request reaches that PoP. Each batch is planned with the addresses found then
and keeps them (`Plan.addresses`); an answer is reused for its DNS TTL, at most
`discover.max_cache_s`, so a burst of webhooks asks once. A PoP that cannot be found is
not silently left out: its pairs fail with the reason (`Plan.unaddressed`).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from warming.discoversettings import split_resolver
from warming.errors import ConfigError
from warming.settings import DiscoverSettings, PopSettings, SiteSettings

# Where the pairs of a PoP that could not be found would go: a name that never resolves
# (RFC 6761). Nothing is sent there: the plan's `unaddressed` fails those pairs first.
UNRESOLVED_URL = "http://unresolved.invalid"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Found:
    """What one DNS question found: the addresses, or why there are none."""

    name: str  # the name asked
    resolver: str
    subnet: str | None = None
    ips: tuple[str, ...] = ()
    ttl_s: int | None = None
    error: str | None = None
    # ECS: the scope the answer is valid for (RFC 7871 SCOPE PREFIX-LENGTH), if echoed.
    scope: int | None = None
    at: float = field(default_factory=time.time)

    def how(self) -> str:
        ecs = f" for users in {self.subnet}" if self.subnet else ""
        return f"{self.name} asked of {self.resolver}{ecs}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "resolver": self.resolver}
        if self.subnet:
            out["client_subnet"] = self.subnet
            out["scope"] = self.scope
        out.update(ips=list(self.ips), ttl_s=self.ttl_s, error=self.error)
        return out


def ask(name: str, resolver: str, subnet: str | None = None, timeout_s: float = 2.0) -> Found:
    """Ask `resolver` ("IP[:port]") for `name`'s A (else AAAA) records, following CNAMEs."""
    ip, port = split_resolver(resolver)
    shown = resolver
    try:
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            got = _query(name, ip, port, subnet, rdtype, timeout_s)
            if got.error or got.ips:
                return got
        return Found(name, shown, subnet, error="no A or AAAA record", scope=got.scope)
    except dns.exception.Timeout:
        return Found(name, shown, subnet, error=f"no answer in {timeout_s:g} s")
    except (OSError, dns.exception.DNSException) as e:
        return Found(name, shown, subnet, error=f"{type(e).__name__}: {e}")


def _query(
    name: str,
    ip: str,
    port: int,
    subnet: str | None,
    rdtype: dns.rdatatype.RdataType,
    timeout_s: float,
) -> Found:
    options = [dns.edns.ECSOption.from_text(subnet)] if subnet else []
    query = dns.message.make_query(name, rdtype, use_edns=0, options=options)
    reply = dns.query.udp(query, ip, port=port, timeout=timeout_s)
    if reply.flags & dns.flags.TC:  # too big for UDP: the same question over TCP
        reply = dns.query.tcp(query, ip, port=port, timeout=timeout_s)
    resolver = ip if port == 53 else f"{ip}:{port}"
    scope = next((o.scopelen for o in reply.options if isinstance(o, dns.edns.ECSOption)), None)
    rcode = reply.rcode()
    if rcode != dns.rcode.NOERROR:
        why = "does not exist" if rcode == dns.rcode.NXDOMAIN else "was refused an answer"
        error = f"{name} {why} ({dns.rcode.to_text(rcode)})"
        return Found(name, resolver, subnet, error=error, scope=scope)
    # Follow the CNAME chain from the name asked, as a stub resolver does.
    target = dns.name.from_text(name)
    ips: list[str] = []
    ttls: list[int] = []
    for _ in range(16):
        cname = reply.get_rrset(reply.answer, target, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None:
            break
        ttls.append(cname.ttl)
        target = cname[0].target
    final = reply.get_rrset(reply.answer, target, dns.rdataclass.IN, rdtype)
    if final is not None:
        ips = [r.address for r in final]
        ttls.append(final.ttl)
    return Found(name, resolver, subnet, tuple(ips), min(ttls) if ips else None, scope=scope)


def system_resolver() -> str:
    """The machine's first nameserver (/etc/resolv.conf)."""
    try:
        return str(dns.resolver.Resolver().nameservers[0])
    except (dns.resolver.NoResolverConfiguration, IndexError, OSError):
        raise ConfigError(
            "discover.resolvers", "is empty and this machine has no resolver configured"
        ) from None


def cloudfront_name(domain: str, pop_code: str) -> str:
    """CloudFront's name for one PoP of distribution `domain` (dXXXX.cloudfront.net)."""
    return f"{domain.split('.', 1)[0]}.{pop_code}.cloudfront.net"


class Discoverer:
    """Finds PoP addresses, reusing each answer for its TTL (bounded); thread-safe."""

    def __init__(self, site: SiteSettings, discover: DiscoverSettings) -> None:
        self._site = site
        self._d = discover
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str | None], tuple[float, Found]] = {}

    def question(self, pop: PopSettings) -> tuple[str, str, str | None]:
        """(name, resolver, subnet): what is asked to find `pop`."""
        resolver = pop.resolver or (self._d.resolvers[0] if self._d.resolvers else None)
        resolver = resolver or system_resolver()
        if pop.cloudfront_pop:
            if not self._d.cloudfront_domain:
                raise ConfigError(
                    "discover.cloudfront_domain", f"is needed by pops {pop.name} (cloudfront_pop)"
                )
            name = cloudfront_name(self._d.cloudfront_domain, pop.cloudfront_pop)
            return name, resolver, pop.client_subnet
        return self._d.hostname or self._site.host, resolver, pop.client_subnet

    def find(self, name: str, resolver: str, subnet: str | None) -> Found:
        key = (name.lower(), resolver, subnet)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        got = ask(name, resolver, subnet, self._d.timeout_s)
        if got.ips:
            keep = min(float(got.ttl_s or 0), self._d.max_cache_s)
            with self._lock:
                self._cache[key] = (now + keep, got)
        return got

    def url_for(self, ip: str) -> str:
        """The address requests for the site go to at `ip`: the site's scheme and port."""
        parts = urlsplit(self._site.base_url)
        port = self._d.port or parts.port or _DEFAULT_PORTS[parts.scheme]
        host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
        return f"{parts.scheme}://{host}:{port}"

    def reader(self, pops: Sequence[PopSettings]) -> PopSettings:
        """The PoP sitemaps and build versions are read through: the first edge, addressed."""
        pop = next((p for p in pops if p.tier != "shield"), pops[0])
        return self.address(pop)[0]

    def address(self, pop: PopSettings) -> tuple[PopSettings, Found | None]:
        """`pop` with its `url` set (UNRESOLVED_URL when nothing was found), and how."""
        if not pop.discovered:
            return pop, None
        got = self.find(*self.question(pop))
        url = self.url_for(got.ips[0]) if got.ips else UNRESOLVED_URL
        # Planned as a PoP with a fixed address; how it was found is kept beside it.
        fixed = {"url": url, "resolver": None, "client_subnet": None, "cloudfront_pop": None}
        return pop.model_copy(update=fixed), got

    def addressed(self, pops: Sequence[PopSettings]) -> tuple[list[PopSettings], dict[str, Found]]:
        """Every PoP with an address, asked side by side; what was found for each asked."""
        asked = [p for p in pops if p.discovered]
        if not asked:
            return list(pops), {}
        with ThreadPoolExecutor(min(8, len(asked)), thread_name_prefix="discover") as ex:
            done = dict(zip((p.name for p in asked), ex.map(self.address, asked), strict=True))
        out = [done[p.name][0] if p.name in done else p for p in pops]
        return out, {name: f for name, (_, f) in done.items() if f is not None}

    def survey(self) -> list[Found]:
        """`warming pops --discover`: every resolver for every subnet, and CloudFront's PoPs."""
        resolvers = self._d.resolvers or [system_resolver()]
        questions: list[tuple[str, str, str | None]] = []
        name = self._d.hostname or self._site.host
        for r in resolvers:
            questions.append((name, r, None))
            questions += [(name, r, s.subnet) for s in self._d.subnets]
        if self._d.cloudfront_domain:
            questions += [
                (cloudfront_name(self._d.cloudfront_domain, code), resolvers[0], None)
                for code in self._d.cloudfront_pops
            ]
        if not questions:
            return []
        with ThreadPoolExecutor(min(8, len(questions)), thread_name_prefix="discover") as ex:
            return list(ex.map(lambda q: ask(q[0], q[1], q[2], self._d.timeout_s), questions))
