"""Where a batch's URLs come from: arguments, a file, a sitemap, surrogate keys."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from defusedxml import ElementTree

from warming.errors import FetchError, WarmingError
from warming.pop.client import PopClient
from warming.settings import PopSettings

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


def from_sitemap(client: PopClient, pop: PopSettings, url: str) -> list[str]:
    """The page URLs of a sitemap or sitemap index, fetched through `pop`.

    Fetched through a PoP like everything else: warming never connects to the site's
    public address itself. Raises WarmingError when the sitemap cannot be read.
    """
    out: list[str] = []
    _walk(client, pop, url, out, 0)
    return out


def _walk(client: PopClient, pop: PopSettings, url: str, out: list[str], depth: int) -> None:
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
        for loc in locs:
            _walk(client, pop, loc, out, depth + 1)
        return
    out.extend(loc for loc in locs if loc)
    if len(out) > MAX_SITEMAP_URLS:
        raise WarmingError(f"sitemap {url}: more than {MAX_SITEMAP_URLS} URLs")


def dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
