"""Traffic-ranked URLs: hits per URL from an analytics CSV export or access logs.

Analytics exports (the column shapes of GA4's "Pages and screens", Plausible's
pages.csv and Matomo's flat Pages report) give a page and a count per row. Access
logs give one request per line: the combined (and common) log format, which Apache,
nginx and Fastly's Apache-style presets write; CloudFront's standard logs (`#Fields:`
header, tab-separated); and JSON lines (Fastly's JSON logging) with a `url`, `path`
or `request` field. Only GET requests answered below 400 count: a 404 is not worth
warming. Every page passes the URL filter, spellings of one URL are added up, and the
result is ranked by hits, most first.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from warming.errors import RejectedURL, WarmingError
from warming.sources.filter import Dropped, URLFilter

# Header names, lower-cased: the page column, then the count column, first match wins.
PAGE_COLUMNS = (
    "page location",  # GA4, full URL
    "page path + query string",  # GA4
    "page path and screen class",  # GA4
    "page path",
    "landing page + query string",
    "landing page",
    "url",  # Matomo flat export
    "page",
    "name",  # Plausible pages.csv
    "label",  # Matomo
    "path",
)
COUNT_COLUMNS = (
    "views",  # GA4
    "screen page views",
    "pageviews",  # Plausible
    "nb_hits",  # Matomo
    "nb_pageviews",
    "hits",
    "visitors",  # Plausible
    "nb_visits",  # Matomo
    "sessions",
    "entrances",
    "event count",
    "count",
)
_COMBINED = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+)[^"]*" (\d{3}) ')


@dataclass
class Ranked:
    """URLs as they will be requested, most hits first, with their hits and what was refused."""

    urls: list[str] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    dropped: list[Dropped] = field(default_factory=list)
    kind: str = ""


def rank(path: str | Path, url_filter: URLFilter) -> Ranked:
    """Read `path` (a CSV export or a log, optionally .gz), filter, add up and rank."""
    text = _read(Path(path))
    kind, counts = _parse(text, str(path))
    out = Ranked(kind=kind)
    total: Counter[str] = Counter()
    refused: dict[str, str] = {}
    for page, n in counts.items():
        try:
            url = url_filter.check(page) if "://" in page else url_filter.join(page)
        except RejectedURL as e:
            refused.setdefault(e.url, e.reason)
            continue
        total[url] += n
    # Counter.most_common keeps first-seen order among equal counts.
    out.urls = [u for u, _ in total.most_common()]
    out.hits = dict(total)
    out.dropped = [Dropped(u, r) for u, r in refused.items()]
    if not out.urls:
        why = "every page was refused by the filter" if refused else "it lists no page"
        raise WarmingError(f"analytics {path} ({kind}) gives no URL: {why}")
    return out


def bands(urls: list[str], high: int, normal: int) -> dict[str, list[str]]:
    """Ranks 1..high warm as high, the next up to rank `normal` as normal, the rest bulk."""
    return {
        p: part
        for p, part in (
            ("high", urls[:high]),
            ("normal", urls[high:normal]),
            ("bulk", urls[max(high, normal) :]),
        )
        if part
    }


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise WarmingError(f"cannot read analytics file {path}: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Matomo's UI exports UTF-16
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig", errors="replace")


def _parse(text: str, name: str) -> tuple[str, Counter[str]]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = next((ln for ln in lines if not ln.startswith("#")), "")
    if any(ln.startswith("#Fields:") for ln in lines[:5]):
        return "CloudFront log", _cloudfront(lines)
    if first.lstrip().startswith("{"):
        return "JSON log", _json_lines(lines)
    if _COMBINED.match(first):
        return "access log", _combined(lines)
    return _csv(lines, name)


def _ok(method: str, status: str) -> bool:
    return method.upper() == "GET" and status.isdigit() and int(status) < 400


def _combined(lines: Iterable[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for ln in lines:
        m = _COMBINED.match(ln)
        if m and _ok(m.group(1), m.group(3)):
            out[m.group(2)] += 1
    return out


def _cloudfront(lines: list[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    names: list[str] = []
    for ln in lines:
        if ln.startswith("#Fields:"):
            names = ln.split(":", 1)[1].split()
            continue
        if ln.startswith("#") or not names:
            continue
        row = dict(zip(names, ln.split("\t"), strict=False))
        if not _ok(row.get("cs-method", ""), row.get("sc-status", "")):
            continue
        query = row.get("cs-uri-query", "-")
        out[row.get("cs-uri-stem", "/") + (f"?{query}" if query not in ("-", "") else "")] += 1
    return out


def _json_lines(lines: Iterable[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for ln in lines:
        try:
            row = json.loads(ln)
        except ValueError:
            continue
        if not isinstance(row, dict):
            continue
        target = next((row[k] for k in ("url", "path", "request_url", "uri") if k in row), None)
        method = str(row.get("method") or row.get("request_method") or "GET")
        status = str(row.get("status") or row.get("status_code") or "200")
        if isinstance(target, str) and _ok(method, status):
            out[target] += 1
    return out


def _csv(lines: list[str], name: str) -> tuple[str, Counter[str]]:
    # GA4 puts "# ----" comment lines (property, date range) above the header.
    rows = list(csv.reader(io.StringIO("\n".join(ln for ln in lines if not ln.startswith("#")))))
    if not rows:
        raise WarmingError(f"analytics {name}: empty")
    header = [h.strip().lower() for h in rows[0]]
    page = next((header.index(c) for c in PAGE_COLUMNS if c in header), None)
    count = next((header.index(c) for c in COUNT_COLUMNS if c in header), None)
    if page is None or count is None:
        raise WarmingError(
            f"analytics {name}: not an export this reads (a page column such as "
            f"{', '.join(repr(c) for c in PAGE_COLUMNS[:3])}... and a count column such as "
            f"{', '.join(repr(c) for c in COUNT_COLUMNS[:3])}...; header {rows[0]!r}), nor "
            "a combined, CloudFront or JSON access log"
        )
    out: Counter[str] = Counter()
    for row in _rows(rows[1:], max(page, count)):
        n = row[count].replace(",", "").replace(" ", "").strip()
        target = row[page].strip()
        if target and n.replace(".", "", 1).isdigit():
            out[target] += int(float(n))
    return f"analytics CSV ({rows[0][page].strip()} by {rows[0][count].strip()})", out


def _rows(rows: Iterable[list[str]], width: int) -> Iterator[list[str]]:
    for row in rows:
        if len(row) > width and row[0].strip().lower() not in ("total", "grand total"):
            yield row
