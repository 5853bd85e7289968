"""Sitemaps read with ultimate-sitemap-parser, every request sent through a PoP.

ultimate-sitemap-parser (usp) knows the formats: sitemap indexes, `.gz` files,
plain-text sitemaps, sitemaps without a namespace or with Google's old 0.84 one,
RSS/Atom feeds and robots.txt `Sitemap:` lines. Its fetching is replaced by
`_ThroughPop`, so every URL it asks for passes the URL filter and goes to a PoP with
the site's `Host`, exactly like a warm request; warming never connects to the
site's public address itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from usp.fetch_parse import SitemapFetcher
from usp.objects.sitemap import (
    AbstractSitemap,
    IndexRobotsTxtSitemap,
    IndexXMLSitemap,
    InvalidSitemap,
    PagesTextSitemap,
)
from usp.web_client.abstract_client import (
    RETRYABLE_HTTP_STATUS_CODES,
    AbstractWebClient,
    AbstractWebClientResponse,
    AbstractWebClientSuccessResponse,
    WebClientErrorResponse,
)

from warming.errors import NothingChanged, RejectedURL, RetryLater, WarmingError
from warming.pop.client import PopClient
from warming.settings import PopSettings, parse_duration_s
from warming.sources.filter import Dropped, URLFilter

# The sitemap protocol caps one file at 50,000 URLs and 50 MB; an index nests one level
# (robots.txt adds one more).
MAX_SITEMAP_URLS = 1_000_000
MAX_SITEMAP_DEPTH = 2
MAX_SITEMAP_BYTES = 100 * 1024 * 1024


@dataclass
class Sitemap:
    """A sitemap's page URLs (filtered later, like any batch URL) and the refused children."""

    urls: list[str] = field(default_factory=list)
    # Child sitemaps that the URL filter refused (never fetched), or that were too deep.
    dropped: list[Dropped] = field(default_factory=list)
    # Pages left out by `changed_since` (their lastmod is older).
    unchanged: int = 0


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--changed-since`: a duration back from now (`90m`, `24h`, `7d`) or an ISO 8601 date.

    A date without a zone is UTC. ValueError says what is accepted.
    """
    now = now or datetime.now(UTC)
    seconds = parse_duration_s(text)
    if seconds is not None:
        return now - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (90m, 24h, 7d, 2w) nor a date (2026-11-30, "
            "2026-11-30T08:00:00Z)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read(
    client: PopClient,
    pop: PopSettings,
    top: str,
    url_filter: URLFilter,
    changed_since: datetime | None = None,
) -> Sitemap:
    """The page URLs under the sitemap (or robots.txt) at `top`, an URL the filter passed.

    A page without `lastmod` is kept under `changed_since`: it may have changed. A
    sitemap that gives no URL raises WarmingError saying why, never an empty list.
    """
    out = Sitemap()
    robots = top.endswith("/robots.txt")
    depth = MAX_SITEMAP_DEPTH + (1 if robots else 0)

    def follow(url: str, level: int, parents: set[str]) -> bool:
        if level >= depth:
            out.dropped.append(Dropped(url, f"sitemap not fetched: nested deeper than {depth}"))
            return False
        try:
            url_filter.check(url)
        except RejectedURL as e:
            out.dropped.append(Dropped(e.url, f"sitemap not fetched: {e.reason}"))
            return False
        return True

    web = _ThroughPop(client, pop, url_filter)
    tree = SitemapFetcher(url=top, recursion_level=0, web_client=web, recurse_callback=follow)
    root = tree.sitemap()
    if isinstance(root, InvalidSitemap):
        raise WarmingError(f"sitemap {top}: {_reason(root)}")
    cutoff = changed_since.astimezone(UTC) if changed_since else None
    seen = 0
    for page in root.all_pages():
        seen += 1
        if seen > MAX_SITEMAP_URLS:
            raise WarmingError(f"sitemap {top}: more than {MAX_SITEMAP_URLS:,} URLs")
        lastmod = page.last_modified
        if cutoff and lastmod and _utc(lastmod) < cutoff:
            out.unchanged += 1
            continue
        out.urls.append(page.url)
    if seen == 0:
        raise WarmingError(f"sitemap {top} gives no URL: {_empty(root, out.dropped)}")
    if not out.urls:
        raise NothingChanged(
            f"sitemap {top}: none of its {seen:,} URLs changed since {cutoff:%Y-%m-%d %H:%M} UTC"
        )
    return out


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _walk(node: AbstractSitemap) -> Iterator[AbstractSitemap]:
    yield node
    for child in node.sub_sitemaps:
        yield from _walk(child)


def _reason(bad: InvalidSitemap) -> str:
    why = bad.reason.replace(f"Unable to fetch sitemap from {bad.url}: ", "")
    if why.startswith("No parsers support sitemap"):
        return "is not a sitemap (no <urlset>, <sitemapindex>, RSS or Atom root element)"
    return why


def _empty(root: AbstractSitemap, dropped: list[Dropped]) -> str:
    """Why a sitemap tree holds no page: what each part of it was."""
    if isinstance(root, PagesTextSitemap):
        return "no line of it is an http(s) URL"
    if not isinstance(root, IndexXMLSitemap | IndexRobotsTxtSitemap):
        return "it lists no <url><loc> (or feed item) with an http(s) URL"
    kind = "robots.txt" if isinstance(root, IndexRobotsTxtSitemap) else "sitemap index"
    parts = [f"{d.url}: {d.reason}" for d in dropped]
    for node in _walk(root):
        if node is root:
            continue
        if isinstance(node, InvalidSitemap):
            parts.append(f"{node.url}: {_reason(node)}")
        elif not node.sub_sitemaps:
            parts.append(f"{node.url}: lists no URL")
    if not parts:
        robots = kind == "robots.txt"
        line = "no Sitemap: line" if robots else "no <sitemap><loc> with an http(s) URL"
        return f"the {kind} has {line}"
    return f"the {kind}'s sitemaps gave none ({'; '.join(parts)})"


class _ThroughPop(AbstractWebClient):
    """usp's web client: the URL filter, then one GET through `pop`; redirects not followed."""

    def __init__(self, client: PopClient, pop: PopSettings, url_filter: URLFilter) -> None:
        self._client, self._pop, self._filter = client, pop, url_filter
        self._max = MAX_SITEMAP_BYTES

    def set_max_response_data_length(self, max_response_data_length: int | None) -> None:
        self._max = min(max_response_data_length or MAX_SITEMAP_BYTES, MAX_SITEMAP_BYTES)

    def get(self, url: str) -> AbstractWebClientResponse:
        try:
            # usp calls this only for URLs `read` let through; checked again so that no
            # path through the library can reach a host the filter refuses.
            target = self._filter.check(url)
        except RejectedURL as e:
            return WebClientErrorResponse(f"refused: {e.reason}", retryable=False)
        try:
            resp = self._client.request("GET", self._pop, target)
        except WarmingError as e:
            return WebClientErrorResponse(str(e), retryable=isinstance(e, RetryLater))
        try:
            if resp.status_code != 200:
                where = f" (Location: {resp.headers['Location']})" if resp.is_redirect else ""
                return WebClientErrorResponse(
                    f"answered {resp.status_code}{where} through PoP {self._pop.name}",
                    retryable=resp.status_code in RETRYABLE_HTTP_STATUS_CODES,
                )
            body = resp.raw.read(self._max + 1, decode_content=True)
            headers = {k.lower(): v for k, v in resp.headers.items()}
        except Exception as e:  # a connection cut mid-body
            return WebClientErrorResponse(f"reading it failed: {e}", retryable=True)
        finally:
            resp.close()
        if len(body) > self._max:
            return WebClientErrorResponse(f"larger than {self._max:,} bytes", retryable=False)
        return _Fetched(target, body, headers)


class _Fetched(AbstractWebClientSuccessResponse):
    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self._url, self._body, self._headers = url, body, headers

    def status_code(self) -> int:
        return 200

    def status_message(self) -> str:
        return "OK"

    def header(self, case_insensitive_name: str) -> str | None:
        return self._headers.get(case_insensitive_name.lower())

    def raw_data(self) -> bytes:
        return self._body

    def url(self) -> str:
        return self._url
