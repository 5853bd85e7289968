"""Turn a response's cache-status headers into one verdict."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "HEADER_ORDER",
    "Cache",
    "CacheStatus",
    "cache_status",
    "served_by",
    "upstream_status",
]


class Cache(StrEnum):
    """What the cache that answered did with the request."""

    HIT = "HIT"
    MISS = "MISS"
    STALE = "STALE"
    EXPIRED = "EXPIRED"
    REVALIDATED = "REVALIDATED"
    UPDATING = "UPDATING"
    BYPASS = "BYPASS"
    DYNAMIC = "DYNAMIC"
    ERROR = "ERROR"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class CacheStatus:
    """A verdict and the header (lower-case name, raw value) that decided it."""

    verdict: Cache
    header: str | None
    raw: str | None

    @property
    def is_hit(self) -> bool:
        """True only for a fresh hit: a stale, updating or revalidated copy is not warm."""
        return self.verdict is Cache.HIT


CACHE_STATUS = "cache-status"
CF_CACHE_STATUS = "cf-cache-status"
X_CACHE_STATUS = "x-cache-status"
AKAMAI_CACHE_STATUS = "akamai-cache-status"
X_CACHE = "x-cache"
AGE = "age"

# The standard first, then the names only one vendor writes; X-Cache last because every
# vendor (and many origins behind the CDN) fills it in its own way.
HEADER_ORDER = (CACHE_STATUS, CF_CACHE_STATUS, X_CACHE_STATUS, AKAMAI_CACHE_STATUS, X_CACHE)

# Vendor tokens, upper-cased with "-" read as "_", so "HIT-STALE", "hit_stale" and
# "HitStale" meet one entry. Anything else is UNKNOWN.
_TOKENS: dict[str, Cache] = {
    # Varnish, Fastly, nginx, Cloudflare.
    "HIT": Cache.HIT,
    "MISS": Cache.MISS,
    "PASS": Cache.BYPASS,
    "BYPASS": Cache.BYPASS,
    "EXPIRED": Cache.EXPIRED,
    "STALE": Cache.STALE,
    "HIT_STALE": Cache.STALE,
    "HITSTALE": Cache.STALE,
    "UPDATING": Cache.UPDATING,
    "REVALIDATED": Cache.REVALIDATED,
    "DYNAMIC": Cache.DYNAMIC,
    # CloudFront ("Hit from cloudfront") and Akamai-Cache-Status ("Hit from child").
    "REFRESHHIT": Cache.REVALIDATED,
    "ERROR": Cache.ERROR,
    "LIMITEXCEEDED": Cache.ERROR,
    "CAPACITYEXCEEDED": Cache.ERROR,
    "NOTCACHEABLE": Cache.BYPASS,
    # Akamai X-Cache (Pragma: akamai-x-cache-on).
    "TCP_HIT": Cache.HIT,
    "TCP_MEM_HIT": Cache.HIT,
    "TCP_IMS_HIT": Cache.HIT,
    # A cached error served without asking the origin is still a hit; the status says the rest.
    "TCP_NEGATIVE_HIT": Cache.HIT,
    "TCP_MISS": Cache.MISS,
    "TCP_REFRESH_MISS": Cache.MISS,
    "TCP_CLIENT_REFRESH_MISS": Cache.MISS,
    "TCP_REFRESH_HIT": Cache.REVALIDATED,
    "TCP_REFRESH_FAIL_HIT": Cache.STALE,
    "TCP_DENIED": Cache.ERROR,
    "TCP_COOKIE_DENY": Cache.ERROR,
}

# RFC 9211 section 2.2: why a cache forwarded the request.
_FWD: dict[str, Cache] = {
    "uri-miss": Cache.MISS,
    "vary-miss": Cache.MISS,
    "miss": Cache.MISS,
    "partial": Cache.MISS,
    "method": Cache.MISS,
    "request": Cache.BYPASS,
    "bypass": Cache.BYPASS,
    "stale": Cache.STALE,
}

_DIGITS = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]*[1-9][0-9]*")


def cache_status(headers: Mapping[str, str], prefer: str | None = None) -> CacheStatus:
    """Decide HIT/MISS/... from the first cache-status header present, else from Age.

    `prefer` names the only header to trust (any case); Age is still the fallback when
    that header is absent. A present header decides even when its value is unknown.
    """
    lowered = _lower_names(headers)
    names = (prefer.strip().lower(),) if prefer else HEADER_ORDER
    for name in names:
        raw = lowered.get(name)
        if name != AGE and raw is not None and raw.strip():
            return CacheStatus(_parse(name, raw), name, raw)
    return _from_age(lowered.get(AGE))


def upstream_status(headers: Mapping[str, str]) -> Cache | None:
    """The verdict of the cache one tier up (a shield), from an X-Cache chain; None if absent.

    Each cache appends its entry on the way back ("HIT, MISS": the shield hit, the edge
    missed), so the entry before the last is the tier the edge filled from.
    """
    raw = _lower_names(headers).get(X_CACHE)
    entries = _split(raw, ",") if raw else []
    return _token(entries[-2]) if len(entries) >= 2 else None


def _lower_names(headers: Mapping[str, str]) -> dict[str, str]:
    # Callers pass plain dicts in any case as well as CaseInsensitiveDict; values that are
    # not text (a misused mapping) are treated as absent rather than raising.
    return {
        name.lower(): value
        for name, value in headers.items()
        if isinstance(name, str) and isinstance(value, str)
    }


def _parse(name: str, raw: str) -> Cache:
    if name == CACHE_STATUS:
        return _rfc9211(raw)
    entries = _split(raw, ",")
    if not entries:
        return Cache.UNKNOWN
    if name == AKAMAI_CACHE_STATUS:
        # Akamai writes "{status} from child, {status} from parent": the edge that answered
        # (the child) comes first, the reverse of the Varnish/Fastly append order.
        return _token(entries[0])
    # Each cache appends its entry on the way back to the client, so the last one is the
    # edge that answered: Fastly shielding gives "MISS, HIT" for a hit at the edge.
    return _token(entries[-1])


def _token(entry: str) -> Cache:
    # "Hit from cloudfront", "TCP_MEM_HIT from a23-... (AkamaiGHost/...)": the status is
    # the first word; the rest names the server.
    words = entry.strip('"').split()
    if not words:
        return Cache.UNKNOWN
    return _TOKENS.get(words[0].upper().replace("-", "_"), Cache.UNKNOWN)


def _rfc9211(raw: str) -> Cache:
    # The last list member is the cache closest to the client (RFC 9211 section 2).
    members = _split(raw, ",")
    if not members:
        return Cache.UNKNOWN
    params = _params(members[-1])
    if params.get("hit") == "?1":
        # RFC 9211 section 3: "A stale hit just has negative freshness" (ttl < 0).
        return Cache.STALE if _NEGATIVE.fullmatch(params.get("ttl", "")) else Cache.HIT
    fwd = params.get("fwd")
    if fwd is None:
        return Cache.UNKNOWN
    return _FWD.get(fwd.lower(), Cache.UNKNOWN)


def _params(member: str) -> dict[str, str]:
    """Parameters of one Structured Fields list member; a bare key is the boolean `?1`."""
    params: dict[str, str] = {}
    for part in _split(member, ";")[1:]:  # the first part names the cache
        key, sep, value = part.partition("=")
        params[key.strip().lower()] = _unquote(value.strip()) if sep else "?1"
    return params


def _split(value: str, sep: str) -> list[str]:
    """Split on `sep` outside double quotes; drop empty parts."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _from_age(raw: str | None) -> CacheStatus:
    if raw is None:
        return CacheStatus(Cache.UNKNOWN, None, None)
    age = raw.strip()
    # Compare digits, not int(age): a 5,000-digit Age must not raise.
    positive = _DIGITS.fullmatch(age) is not None and age.strip("0") != ""
    return CacheStatus(Cache.HIT if positive else Cache.UNKNOWN, AGE, raw)


# Headers that name the CDN location that answered, and how to read the code from each.
_SERVED_BY: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("cf-ray", lambda v: v.rsplit("-", 1)[1] if "-" in v else None),  # 8d1f...70-FRA
    ("x-amz-cf-pop", lambda v: v.split(",")[-1].strip()),  # FRA56-P1
    # Fastly: its nodes, shield first ("cache-fra-etou8220033-FRA, cache-ams2100090-AMS").
    ("x-served-by", lambda v: v.split(",")[-1].strip().rsplit("-", 1)[-1]),
    ("x-vercel-id", lambda v: v.split("::", 1)[0] if "::" in v else None),  # fra1::iad1::…
)


def served_by(headers: Mapping[str, str]) -> str | None:
    """The CDN location that answered, as the response names it (CF-Ray's colo, CloudFront's
    X-Amz-Cf-Pop, Fastly's X-Served-By, Vercel's x-vercel-id), or None.

    On an anycast CDN (Cloudflare) a PoP cannot be chosen: this is where the request
    really went, what the report shows and what verification counts.
    """
    lower = _lower_names(headers)
    for name, read in _SERVED_BY:
        raw = lower.get(name)
        if raw:
            code = read(raw.strip())
            if code and len(code) <= 32 and code.replace("-", "").isalnum():
                return code
    return None
