"""URL normalization and the URL filter every batch URL passes through.

Two forms of an accepted URL: the one a visitor's browser sends (`check` returns
it: the path and query as given, only tracking parameters stripped, host in its
ASCII form, dot segments resolved, characters a browser escapes escaped), which is
what warming requests and reports, since a cache keys on the URL as sent; and the
RFC 3986 normal form (`normalize`, query sorted), used only to drop duplicates.

The filter is the security boundary for URLs that arrive in payloads: a URL it
accepts is http(s), names an allowed host with no user info, and avoids denied
paths and parameters. Anything that parsers and browsers read differently
(backslashes, whitespace, control characters, numeric IPv4 forms, a missing
`//`) is refused rather than interpreted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote, unquote_plus

from warming import defaults
from warming.errors import ConfigError, RejectedURL
from warming.settings import SiteSettings
from warming.sources.urlparts import (
    DEFAULT_PORTS,
    SCHEME,
    clip,
    key,
    normalize,
    normalize_host,
    parse,
    refuse_ambiguous,
    remove_dot_segments,
)

__all__ = ["MAX_URL_LENGTH", "Dropped", "URLFilter", "normalize"]

# Most servers and CDNs refuse request lines past 8 KiB; a longer "URL" in a payload
# is a bug or an attack, never a page worth warming.
MAX_URL_LENGTH = 8192
# Percent-decoding rounds tried when matching deny rules: a proxy and an app may each
# decode once, and a deny list must err on the side of refusing.
DENY_DECODE_ROUNDS = 3

# WHATWG reads a host whose last label is numeric as IPv4: 127.1, 0x7f.1, 2130706433.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.ASCII)


@dataclass(frozen=True)
class Dropped:
    """A URL left out of a batch, and why."""

    url: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"url": self.url, "reason": self.reason}


@dataclass(frozen=True)
class URLFilter:
    """The SPEC's URL filter: `check` a URL, `join` a payload path, `split` a list.

    `allow_hosts` may be given in Unicode or punycode; an empty tuple allows nothing.
    """

    base_url: str
    allow_hosts: tuple[str, ...]
    deny_paths: tuple[str, ...] = defaults.DENY_PATHS
    deny_params: tuple[str, ...] = defaults.DENY_PARAMS
    strip_params: tuple[str, ...] = defaults.STRIP_PARAMS

    def __post_init__(self) -> None:
        # Fail at start, naming the key, rather than on the first webhook.
        _ = self._base, self._hosts

    @classmethod
    def from_site(cls, site: SiteSettings) -> URLFilter:
        return cls(
            base_url=site.base_url,
            allow_hosts=tuple(site.hosts),
            deny_paths=tuple(site.deny_paths),
            deny_params=tuple(site.deny_params),
            strip_params=tuple(site.strip_params),
        )

    def check(self, raw: str) -> str:
        """`raw` as a visitor requests it, or RejectedURL(raw, reason) if it must not be warmed."""
        return self.accept(raw)[0]

    def accept(self, raw: str) -> tuple[str, str]:
        """(`check`'s URL, its normal form for de-duplication), or RejectedURL."""
        try:
            return self._check(raw)
        except ValueError:
            raise RejectedURL(clip(raw), "not a valid URL") from None

    def join(self, path: str) -> str:
        """`path` from a payload appended to base_url's path, then `check`ed.

        "/blog/x" and "blog/x" both mean base_url + "/blog/x". Anything that is
        really a URL (a scheme, or a scheme-relative "//host") is refused.
        """
        refuse_ambiguous(path)
        if path.startswith("//"):
            raise RejectedURL(path, "a scheme-relative URL is not a path")
        if SCHEME.match(path):
            raise RejectedURL(path, "an absolute URL is not a path")
        return self.check(self._join(path))

    def _join(self, path: str) -> str:
        refuse_ambiguous(path)
        if path.startswith("//"):
            raise RejectedURL(path, "a scheme-relative URL is not a path")
        if SCHEME.match(path):
            raise RejectedURL(path, "an absolute URL is not a path")
        return self._base.prefix + "/" + path.removeprefix("/")

    def split(self, raws: Iterable[str], *, paths: bool = False) -> tuple[list[str], list[Dropped]]:
        """Accepted URLs (as `check` gives them; one per normal form, first seen) and the dropped.

        With `paths`, each item goes through `join` instead of `check`. Never raises
        for a bad item, whatever its type; repeated drops are listed once.
        """
        accepted: list[str] = []
        dropped: list[Dropped] = []
        seen: set[str] = set()
        seen_dropped: set[Dropped] = set()
        for raw in raws:
            try:
                if not isinstance(raw, str):
                    raise RejectedURL(clip(repr(raw)), "not a string")
                url, canonical = self.accept(self._join(raw) if paths else raw)
            except RejectedURL as e:
                drop = Dropped(e.url, e.reason)
                if drop not in seen_dropped:
                    seen_dropped.add(drop)
                    dropped.append(drop)
                continue
            if canonical not in seen:
                seen.add(canonical)
                accepted.append(url)
        return accepted, dropped

    def _check(self, raw: str) -> tuple[str, str]:
        if len(raw) > MAX_URL_LENGTH:
            raise RejectedURL(clip(raw), f"URL is longer than {MAX_URL_LENGTH} characters")
        refuse_ambiguous(raw)
        m = SCHEME.match(raw)
        if m is None:
            raise RejectedURL(raw, "URL has no scheme (expected http or https)")
        if m.group(1).lower() not in DEFAULT_PORTS:
            raise RejectedURL(raw, f"scheme {m.group(1).lower()!r} is not http or https")
        parts = parse(raw)
        if parts.userinfo is not None:
            raise RejectedURL(raw, "URL has user info")
        if _is_ip_literal(parts.host):
            raise RejectedURL(raw, "IP literal hosts are never warmed")
        if parts.host not in self._hosts:
            raise RejectedURL(raw, f"host {parts.host} is not in site.allow_hosts")
        if parts.port is not None and parts.port != self._base.port:
            raise RejectedURL(raw, f"port {parts.port} is not the port of site.base_url")
        if parts.path.startswith("//"):
            # Used as a relative reference elsewhere, "//x/..." would name host x.
            raise RejectedURL(raw, f"path {parts.path} starts with //")
        readings = _path_readings(parts.path) if self._deny_paths else set()
        for shown, rule in self._deny_paths:
            if _path_denied(readings, rule):
                reason = f"path {parts.path} is denied by site.deny_paths ({shown})"
                raise RejectedURL(raw, reason)
        for param in (p for piece in parts.params for p in re.split("[;&]", piece)):
            if _param_names(key(param)) & self._deny_params:
                name = unquote(key(param))
                # The value is a credential: it must not reach a report, a log or a CMS.
                shown = _redact(raw, self._deny_params)
                raise RejectedURL(shown, f"query parameter {name!r} is denied by site.deny_params")
        url = parts.given(self.strip_params)
        if len(url) > MAX_URL_LENGTH:
            reason = f"URL is longer than {MAX_URL_LENGTH} characters once normalized"
            raise RejectedURL(clip(raw), reason)
        # The normal form of what is sent: two spellings that go out as the same bytes
        # ("/[" and "/%5B") must be one URL, not two.
        return url, parse(url).unparse()

    @cached_property
    def _base(self) -> _Base:
        try:
            parts = parse(self.base_url)
        except (RejectedURL, ValueError):
            raise ConfigError("site.base_url", "must be an absolute http(s) URL") from None
        if parts.scheme not in DEFAULT_PORTS or parts.userinfo is not None:
            raise ConfigError("site.base_url", "must be an http(s) URL without user info")
        prefix = f"{parts.scheme}://{parts.host}"
        prefix += "" if parts.port is None else f":{parts.port}"
        return _Base(prefix + parts.path.rstrip("/"), parts.port)

    @cached_property
    def _hosts(self) -> frozenset[str]:
        hosts = set()
        for h in self.allow_hosts:
            try:
                hosts.add(normalize_host(h, h))
            except (RejectedURL, ValueError):
                raise ConfigError("site.allow_hosts", f"{h!r} is not a host name") from None
        return frozenset(hosts)

    @cached_property
    def _deny_paths(self) -> tuple[tuple[str, str], ...]:
        rules = ((d, _readings(unquote("/" + d.lstrip("/")))[0]) for d in self.deny_paths)
        return tuple((d, rule.rstrip("/")) for d, rule in rules)

    @cached_property
    def _deny_params(self) -> frozenset[str]:
        return frozenset(p.lower() for p in self.deny_params)


@dataclass(frozen=True)
class _Base:
    prefix: str  # scheme://host[:port][/path], no trailing slash
    port: int | None


def _is_ip_literal(host: str) -> bool:
    return host.startswith("[") or bool(_NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]))


def _readings(path: str) -> tuple[str, str]:
    """Two ways lenient servers route an absolute path (they merge // before or after ..)."""
    path = path.replace("\\", "/")
    merged_first = remove_dot_segments(re.sub("/+", "/", path))
    return merged_first.lower(), re.sub("/+", "/", remove_dot_segments(path)).lower()


def _path_readings(path: str) -> set[str]:
    """Every reading of every decoding of `path` that a lenient server might route."""
    out: set[str] = set()
    form = path
    for _ in range(DENY_DECODE_ROUNDS + 1):
        out.update(_readings(form))
        decoded = unquote(form)
        if decoded == form:
            break
        form = decoded
    return out


def _path_denied(readings: set[str], rule: str) -> bool:
    """Whether `rule` is a segment-boundary prefix of any of a path's `readings`."""
    return any(r == rule or r.startswith((rule + "/", rule + ";")) for r in readings)


def _param_names(key: str) -> set[str]:
    """The names a server might read for a query key, lower-cased."""
    names: set[str] = set()
    form = key
    for _ in range(DENY_DECODE_ROUNDS):
        form = unquote_plus(form)
        name = form.strip().lower()
        # PHP reads "access.token" and "access token" as access_token, "token[]" as token.
        names |= {name, name.replace(".", "_").replace(" ", "_"), name.partition("[")[0]}
    return names


_QUERY_PAIR = re.compile(r"([?&;])([^=&;#]*)=([^&;#]*)")


def _redact(url: str, denied: frozenset[str]) -> str:
    """`url` with the values of denied query parameters replaced by REDACTED."""

    def sub(m: re.Match[str]) -> str:
        if _param_names(m.group(2)) & denied:
            return f"{m.group(1)}{m.group(2)}=REDACTED"
        return m.group(0)

    return _QUERY_PAIR.sub(sub, url)
