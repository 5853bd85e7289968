"""Where a batch's URLs come from: arguments, a file, a sitemap, surrogate keys."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from defusedxml import ElementTree

from warming.errors import FetchError, RejectedURL, WarmingError
from warming.pop.client import PopClient
from warming.settings import PopSettings
from warming.sources.filter import Dropped, URLFilter

_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
# The sitemap protocol caps one file at 50,000 URLs; an index nests one level.
MAX_SITEMAP_URLS = 1_000_000
MAX_SITEMAP_DEPTH = 2


def from_file(path: str | Path) -> list[str]:
    """One URL or path per line; blank lines and `#` comments are skipped."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise WarmingError(f"cannot read URL file {path}: {e.strerror}") from None
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


@dataclass
class Sitemap:
    """A sitemap's page URLs (filtered later, like any batch URL) and the refused children."""

    urls: list[str] = field(default_factory=list)
    # Entries of a sitemap index that the URL filter refused: never fetched.
    dropped: list[Dropped] = field(default_factory=list)


def from_sitemap(client: PopClient, pop: PopSettings, url: str, url_filter: URLFilter) -> Sitemap:
    """The page URLs of a sitemap or sitemap index, fetched through `pop`.

    Fetched through a PoP like everything else: warming never connects to the site's
    public address itself. Every sitemap fetched passes `url_filter` first, so its
    `Host` is always an allowed host: a child that does not is dropped, and `url`
    itself (absolute, or a path joined to site.base_url) raises WarmingError, as does
    a sitemap that cannot be read.
    """
    try:
        top = url_filter.check(url) if "://" in url else url_filter.join(url)
    except RejectedURL as e:
        raise WarmingError(f"sitemap {e.url}: {e.reason}") from None
    out = Sitemap()
    _walk(client, pop, top, url_filter, out, 0)
    return out


def _walk(
    client: PopClient, pop: PopSettings, url: str, filt: URLFilter, out: Sitemap, depth: int
) -> None:
    resp = client.request("GET", pop, url)
    try:
        if resp.status_code != 200:
            raise FetchError(
                f"sitemap {url} answered {resp.status_code}",
                url=url,
                pop=pop.name,
                status=resp.status_code,
            )
        body = resp.content
    finally:
        resp.close()
    try:
        root = ElementTree.fromstring(body)
    except Exception as e:  # defusedxml raises several types for hostile or broken XML
        raise WarmingError(f"sitemap {url} is not valid XML: {e}") from None
    locs = [(el.text or "").strip() for el in root.iter(f"{_NS}loc")]
    if root.tag == f"{_NS}sitemapindex":
        if depth >= MAX_SITEMAP_DEPTH:
            raise WarmingError(f"sitemap {url}: index nested deeper than {MAX_SITEMAP_DEPTH}")
        children, refused = filt.split(loc for loc in locs if loc)
        out.dropped += [Dropped(d.url, f"sitemap not fetched: {d.reason}") for d in refused]
        for child in children:
            _walk(client, pop, child, filt, out, depth + 1)
        return
    out.urls.extend(loc for loc in locs if loc)
    if len(out.urls) > MAX_SITEMAP_URLS:
        raise WarmingError(f"sitemap {url}: more than {MAX_SITEMAP_URLS} URLs")


def dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
