"""`[discover]`: how PoPs without a fixed `url` get their address (warming.pop.discover).

Beside `warming.settings` (which re-exports it), like `warming.cdnsettings`. A PoP names
its way in `[[pops]]` (`resolver`, `client_subnet`, `cloudfront_pop`); this section holds
what they share, and the lists `warming pops --discover` surveys.
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator

from warming import defaults

__all__ = ["DiscoverSettings", "SubnetSettings", "check_resolver", "check_subnet"]


def check_resolver(v: str) -> str:
    """A DNS server as "IP" or "IP:port" ("[v6]:port"); ValueError otherwise."""
    _, port = split_resolver(v)
    if not 0 < port < 65536:
        raise ValueError("must be a DNS server's IP address, with an optional :port")
    return v


def split_resolver(v: str) -> tuple[str, int]:
    """("IP", port) of a resolver written "IP", "IP:port" or "[v6]:port"."""
    text = v.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else -1 if rest else 53
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p) if p.isdigit() else -1
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("must be a DNS server's IP address, with an optional :port") from None
    return host, port


def check_subnet(v: str) -> str:
    """A client subnet in CIDR form ("85.214.132.0/24", "2001:db8::/56")."""
    try:
        ipaddress.ip_network(v, strict=False)
    except ValueError:
        raise ValueError("must be a subnet in CIDR form such as 85.214.132.0/24") from None
    if "/" not in v:
        raise ValueError("must be a subnet in CIDR form such as 85.214.132.0/24")
    # The address with no bits past the prefix (RFC 7871: a server answers FORMERR else).
    return str(ipaddress.ip_network(v, strict=False))


class SubnetSettings(BaseModel):
    """A region `warming pops --discover` asks for: users in `subnet`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    subnet: str

    _subnet = field_validator("subnet")(check_subnet)


class DiscoverSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The name users resolve: the site's CDN host name (default: the host of site.base_url).
    hostname: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,253}$")
    # Asked for a PoP that sets `client_subnet` or `cloudfront_pop` but no `resolver`, and
    # surveyed by `warming pops --discover`. Unset: the machine's own (/etc/resolv.conf).
    resolvers: list[str] = Field(default_factory=list)
    # The regions `warming pops --discover` asks for, each through every resolver.
    subnets: list[SubnetSettings] = Field(default_factory=list)
    # CloudFront: the distribution's own domain; PoP "FRA56-P1" is then
    # d111111abcdef8.FRA56-P1.cloudfront.net.
    cloudfront_domain: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9-]{1,63}\.cloudfront\.net$"
    )
    cloudfront_pops: list[str] = Field(default_factory=list)  # surveyed by --discover
    # The port the found addresses are sent to (default: the port of site.base_url).
    port: int | None = Field(default=None, ge=1, le=65535)
    timeout_s: float = Field(default=defaults.DISCOVER_TIMEOUT_S, gt=0)
    # An answer is used for its DNS TTL, at most this long (a batch keeps what it got).
    max_cache_s: float = Field(default=defaults.DISCOVER_CACHE_S, ge=0)

    @field_validator("resolvers")
    @classmethod
    def _resolvers(cls, v: list[str]) -> list[str]:
        return [check_resolver(r) for r in v]

    @field_validator("cloudfront_pops")
    @classmethod
    def _pop_codes(cls, v: list[str]) -> list[str]:
        for code in v:
            check_pop_code(code)
        return v


def check_pop_code(v: str) -> str:
    """A CloudFront PoP code as it appears in X-Amz-Cf-Pop ("FRA56-P1")."""
    if not v or len(v) > 32 or not all(c.isalnum() or c == "-" for c in v):
        raise ValueError("must be a CloudFront PoP code such as FRA56-P1")
    return v
