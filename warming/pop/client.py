"""One HTTP request to one PoP, read to the end and measured.

Warming never connects to a URL's own host: every request goes to a configured PoP
address and carries the site's name as `Host` (and, over HTTPS, as TLS SNI and the
name the certificate must match), exactly as a visitor's request reaches that PoP.
A PoP that routes by `Host` would connect wherever that name points, so the client
refuses, before connecting, a URL with user info or (given the site) a host that
`site.allow_hosts` does not list: the URL filter's rule, checked again here.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from urllib3 import HTTPHeaderDict

from warming.errors import ConfigError, FetchError, RetryLater
from warming.ops import metrics
from warming.pop.cachestatus import CacheStatus, cache_status, served_by
from warming.pop.retry import parse_retry_after
from warming.settings import FetchSettings, PopSettings, SiteSettings, Variant

# Headers that carry surrogate keys: Fastly/Varnish, Cloudflare/Akamai, varnish xkey.
SURROGATE_HEADERS = ("surrogate-key", "cache-tag", "xkey")
_CHUNK = 64 * 1024
# Keep-alive connections kept per PoP (and site host): one per request thread.
_POOL_SIZE = 16
# What a visitor's client sends unasked (requests' defaults, which warming sent until it
# used urllib3 directly): a cache that varies on Accept-Encoding keys its objects on it,
# so a warm request without it fills an object no visitor asks for. A variant's own
# headers replace these.
_VISITOR = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*"}
# An answer closed with at most this much body unread is drained and its connection kept.
_DRAIN_MAX = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What a host name the URL filter accepted looks like (lower-case ASCII, punycode for IDN).
_HOST_NAME = re.compile(r"[a-z0-9_.-]{1,253}", re.ASCII)


@dataclass(frozen=True)
class Fetched:
    """What a PoP answered for one URL."""

    status: int
    cache: CacheStatus
    age: int | None
    etag: str | None
    digest: str
    size: int
    keys: tuple[str, ...]
    ttfb_ms: float
    elapsed_ms: float
    location: str | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    last_modified: str | None = None
    # How long the response says a shared cache may serve it (s-maxage, else max-age), and
    # serve it stale while it revalidates (stale-while-revalidate, RFC 5861).
    lifetime_s: int | None = None
    swr_s: int | None = None
    # The CDN location that answered, where the response names it (CF-Ray's colo, ...).
    served_by: str | None = None


class Answer:
    """A PoP's answer whose body the caller reads (`raw`) and then closes."""

    def __init__(self, raw: urllib3.BaseHTTPResponse) -> None:
        self.raw = raw

    @property
    def status_code(self) -> int:
        return int(self.raw.status)

    @property
    def headers(self) -> HTTPHeaderDict:
        """Case-insensitive; a repeated header's values joined with ", "."""
        return self.raw.headers

    @property
    def is_redirect(self) -> bool:
        return self.raw.status in (301, 302, 303, 307, 308) and "location" in self.raw.headers

    def close(self) -> None:
        """Done with it: the connection goes back to its pool when little or nothing of the
        body is left (read, then dropped), and is closed otherwise (a big rest is not read
        for nothing)."""
        left = self.raw.length_remaining
        if left is not None and left <= _DRAIN_MAX:
            self.raw.drain_conn()
            self.raw.release_conn()
        else:
            self.raw.close()


class PopClient:
    """Sends requests to PoPs: one pool of keep-alive connections per PoP and site host,
    shared by the threads (urllib3's pools are thread-safe).

    urllib3 directly, not requests over it: measured on this project's 2-core VM against
    one Varnish (bench/bench_http.py), 263 us of CPU per GET through this client against
    529 us through a requests Session (and 425 us through this client when it was built on
    requests): the workers' largest cost (bench/RESULTS_THROUGHPUT.md).
    """

    def __init__(self, settings: FetchSettings, site: SiteSettings | None = None) -> None:
        """`site`: only its allowed hosts, on its port or the default one, are requested."""
        self._settings = settings
        self._hosts = frozenset(map(_ascii_host, site.hosts)) if site else None
        self._port = urlsplit(site.base_url).port if site else None
        self._timeout = urllib3.Timeout(
            connect=settings.connect_timeout_s, read=settings.read_timeout_s
        )
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, str], urllib3.HTTPConnectionPool] = {}

    def _pool(self, pop_url: str, host: str) -> urllib3.HTTPConnectionPool:
        key = (pop_url, host)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = self._new_pool(pop_url, host)
        return pool

    def _new_pool(self, pop_url: str, host: str) -> urllib3.HTTPConnectionPool:
        parts = urlsplit(pop_url)
        common: dict[str, Any] = {
            "maxsize": _POOL_SIZE,
            "block": False,  # a burst past maxsize opens more, kept no longer than needed
            "timeout": self._timeout,
            "retries": False,
        }
        if parts.scheme != "https":
            return urllib3.HTTPConnectionPool(parts.hostname or "", parts.port or 80, **common)
        verify = bool(self._settings.ca_bundle or self._settings.verify_tls)
        # The site's name as TLS SNI and as the name the certificate must carry; the
        # trust store is certifi's (as requests used), or fetch.ca_bundle.
        return urllib3.HTTPSConnectionPool(
            parts.hostname or "",
            parts.port or 443,
            server_hostname=host,
            assert_hostname=host if verify else False,
            cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
            ca_certs=(self._settings.ca_bundle or certifi.where()) if verify else None,
            **common,
        )

    def request(
        self,
        method: str,
        pop: PopSettings,
        url: str,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send `method` for `url` to `pop`; the caller reads and closes the answer."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        # Path and query exactly as given ("/x?" keeps its "?", %7E stays %7E): a cache
        # keys on the URL as sent.
        rest = url.split("#", 1)[0][len(f"{parts.scheme}://{parts.netloc}") :]
        target = urlsplit(pop.url).path + (rest if rest.startswith("/") else "/" + rest)
        hdrs = {"Host": self._host_header(url, pop), "User-Agent": self._settings.user_agent}
        hdrs.update(_VISITOR)
        hdrs.update(headers or {})
        try:
            raw = self._pool(pop.url, host).urlopen(
                method,
                target,
                headers=hdrs,
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                timeout=self._timeout,
            )
        except urllib3.exceptions.SSLError as e:
            # A certificate that does not match or does not chain will not fix itself.
            raise FetchError(_describe(e), url=url, pop=pop.name) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            metrics.pop_error(pop.name)
            raise RetryLater(_describe(e), url=url, pop=pop.name) from None
        return Answer(raw)

    def _host_header(self, url: str, pop: PopSettings) -> str:
        """The `Host` for `url` (its host and port, never user info), or FetchError."""
        parts = urlsplit(url)
        authority = parts.netloc.rpartition("@")[2]
        shown = parts._replace(netloc=authority).geturl()  # user info may be a password

        def refuse(why: str) -> FetchError:
            return FetchError(f"not requested: {why}", url=shown, pop=pop.name)

        if "@" in parts.netloc:
            raise refuse("URL has user info")
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            raise refuse("bad port") from None
        if port == _DEFAULT_PORTS.get(parts.scheme):
            port = None
        if not _HOST_NAME.fullmatch(host):
            raise refuse(f"{host!r} is not a host name")
        if self._hosts is not None:
            if host not in self._hosts:
                raise refuse(f"host {host} is not in site.allow_hosts")
            if port is not None and port != self._port:
                raise refuse(f"port {port} is not the port of site.base_url")
        return host if port is None else f"{host}:{port}"

    def get(self, pop: PopSettings, url: str, variant: Variant, *, head: bool = False) -> Fetched:
        """GET `url` through `pop`, read the whole body, and classify the answer.

        With `head`, a HEAD: the headers alone (a verification that compares ETags has
        no use for the body). Raises RetryLater for 429, 5xx and network errors,
        FetchError for answers that retrying will not change (redirects, 4xx).
        """
        t0 = time.perf_counter()
        answer = self.request("HEAD" if head else "GET", pop, url, variant.headers)
        resp = answer.raw
        ttfb = time.perf_counter() - t0
        metrics.pop_answer(pop.name, resp.status, ttfb)
        digest = hashlib.sha256()
        size = 0
        deadline = t0 + self._settings.total_timeout_s
        try:
            # read1: what one receive brings, so the deadline is checked between
            # receives (read(amt) would block until amt bytes or the end of the body).
            while chunk := resp.read1(_CHUNK, decode_content=False):
                digest.update(chunk)
                size += len(chunk)
                if time.perf_counter() > deadline:
                    raise RetryLater(
                        f"body not complete after {self._settings.total_timeout_s:g} s",
                        url=url,
                        pop=pop.name,
                    )
        except RetryLater:
            resp.close()  # a body cut short: its connection cannot be used again
            raise
        except Exception as e:  # urllib3 raises a wide variety mid-body
            resp.close()
            raise RetryLater(f"body read failed: {_describe(e)}", url=url, pop=pop.name) from None
        resp.release_conn()  # read to the end: the connection is kept for the next request
        got = Fetched(
            status=resp.status,
            cache=cache_status(resp.headers, pop.cache_header),
            age=_int(resp.headers.get("age")),
            etag=resp.headers.get("etag"),
            digest=digest.hexdigest(),
            size=size,
            keys=surrogate_keys(resp.headers),
            ttfb_ms=ttfb * 1000,
            elapsed_ms=(time.perf_counter() - t0) * 1000,
            location=resp.headers.get("location"),
            retry_after=parse_retry_after(resp.headers.get("retry-after")),
            headers=dict(resp.headers),
            last_modified=resp.headers.get("last-modified"),
            lifetime_s=shared_lifetime(resp.headers.get("cache-control")),
            swr_s=directive_s(resp.headers.get("cache-control"), "stale-while-revalidate"),
            served_by=served_by(resp.headers),
        )
        check_status(got, url, pop.name)
        return got


def check_status(got: Fetched, url: str, pop: str) -> None:
    """Raise for a status that is not a cacheable success."""
    s = got.status
    if s in (429, 503) or s >= 500:
        raise RetryLater(f"PoP answered {s}", delay=got.retry_after, url=url, pop=pop, status=s)
    if 300 <= s < 400:
        where = f" to {got.location}" if got.location else ""
        raise FetchError(f"redirect {s}{where} is not followed", url=url, pop=pop, status=s)
    if s >= 400 or s < 200:
        raise FetchError(f"PoP answered {s}", url=url, pop=pop, status=s)


_MAX_AGE = re.compile(r"(?:^|[,\s])(s-maxage|max-age)\s*=\s*\"?([0-9]{1,10})\"?", re.I)


def shared_lifetime(cache_control: str | None) -> int | None:
    """Seconds a shared cache may serve the response: s-maxage, else max-age (RFC 9111)."""
    found = dict((k.lower(), int(v)) for k, v in _MAX_AGE.findall(cache_control or ""))
    return found.get("s-maxage", found.get("max-age"))


def directive_s(cache_control: str | None, name: str) -> int | None:
    """A Cache-Control directive's seconds (`name=N`), or None when absent."""
    for k, v in _DIRECTIVE.findall(cache_control or ""):
        if k.lower() == name:
            return int(v)
    return None


_DIRECTIVE = re.compile(r"(?:^|[,\s])([a-z-]+)\s*=\s*\"?([0-9]{1,10})\"?", re.I)


def surrogate_keys(headers: Mapping[str, str]) -> tuple[str, ...]:
    """Every surrogate key the response carries, de-duplicated, in order."""
    seen: dict[str, None] = {}
    for name in SURROGATE_HEADERS:
        value = headers.get(name)
        if value:
            for key in value.replace(",", " ").split():
                seen.setdefault(key, None)
    return tuple(seen)


def _ascii_host(host: str) -> str:
    """An allowed host as URLs name it once filtered: lower case, IDNA, no trailing dot."""
    name = host.lower().removesuffix(".")
    try:
        return name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ConfigError("site.allow_hosts", f"{host!r} is not a host name") from None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_CAUSES = re.compile(
    r"(hostname '[^']*' doesn't match '[^']*'|certificate verify failed[^)'\"]*"
    r"|Connection refused|Connection reset|timed out|Name or service not known)"
)


def _describe(e: BaseException) -> str:
    """A short reason for a network error, without the noisy urllib3 repr chain."""
    m = _CAUSES.search(" ".join(str(x) for x in _chain(e)))
    if m:
        return f"{type(e).__name__}: {m.group(1).strip()}"
    return f"{type(e).__name__}: {str(e)[:200]}"


def _chain(e: BaseException) -> list[BaseException]:
    """`e` and what caused it: urllib3 wraps ssl and socket errors."""
    seen: list[BaseException] = []
    todo: list[object] = [e]
    while todo and len(seen) < 10:
        x = todo.pop()
        if isinstance(x, BaseException) and x not in seen:
            seen.append(x)
            todo += [getattr(x, "reason", None), x.__cause__, x.__context__, *x.args]
    return seen
