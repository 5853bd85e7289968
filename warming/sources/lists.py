"""Where a batch's URLs come from: arguments, a file, a sitemap, surrogate keys."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from warming.errors import RejectedURL, WarmingError
from warming.pop.client import PopClient
from warming.settings import PopSettings
from warming.sources import sitemaps
from warming.sources.filter import URLFilter
from warming.sources.sitemaps import Sitemap

__all__ = ["Sitemap", "dedupe", "from_file", "from_sitemap"]


def from_file(path: str | Path) -> list[str]:
    """One URL or path per line; blank lines and `#` comments are skipped."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise WarmingError(f"cannot read URL file {path}: {e.strerror}") from None
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def from_sitemap(
    client: PopClient,
    pop: PopSettings,
    url: str,
    url_filter: URLFilter,
    changed_since: datetime | None = None,
) -> Sitemap:
    """The page URLs of a sitemap, sitemap index or robots.txt, fetched through `pop`.

    Fetched through a PoP like everything else: warming never connects to the site's
    public address itself. Every sitemap fetched passes `url_filter` first, so its
    `Host` is always an allowed host: a child that does not is dropped, and `url`
    itself (absolute, or a path joined to site.base_url) raises WarmingError, as does
    a sitemap that cannot be read or gives no URL.
    """
    try:
        top = url_filter.check(url) if "://" in url else url_filter.join(url)
    except RejectedURL as e:
        raise WarmingError(f"sitemap {e.url}: {e.reason}") from None
    return sitemaps.read(client, pop, top, url_filter, changed_since)


def dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
