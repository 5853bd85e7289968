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

import fnmatch
import ipaddress
import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote, unquote_plus

import idna

from warming import defaults
from warming.errors import ConfigError, RejectedURL
from warming.settings import SiteSettings

# Most servers and CDNs refuse request lines past 8 KiB; a longer "URL" in a payload
# is a bug or an attack, never a page worth warming.
MAX_URL_LENGTH = 8192
# Percent-decoding rounds tried when matching deny rules: a proxy and an app may each
# decode once, and a deny list must err on the side of refusing.
DENY_DECODE_ROUNDS = 3
# How much of an unusable input a Dropped entry keeps, so junk cannot bloat a report.
_CLIP = 200

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_AFTER_SCHEME = re.compile(r"//([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?", re.DOTALL)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_LABEL = re.compile(r"[a-z0-9_-]{1,63}", re.ASCII)
# WHATWG reads a host whose last label is numeric as IPv4: 127.1, 0x7f.1, 2130706433.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.ASCII)
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_RESERVED = frozenset(":/?#[]@!$&'()*+,;=")
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True)
class Dropped:
    """A URL left out of a batch, and why."""

    url: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"url": self.url, "reason": self.reason}


@dataclass(frozen=True)
class _Parts:
    scheme: str
    userinfo: str | None
    host: str
    port: int | None  # None: the scheme's default
    path: str
    params: tuple[str, ...]  # normalized "key=value" pieces, sorted by key
    # As a browser sends them: the path with dot segments resolved and the query in its
    # given order (None: no "?"), each with only the characters a browser escapes escaped.
    given_path: str = "/"
    given_query: str | None = None

    def unparse(self, strip: Iterable[str] = ()) -> str:
        """The normal form (query sorted): for telling duplicates apart, never for sending."""
        globs = [g.lower() for g in strip]
        params = [p for p in self.params if not _matches_any(_key(p), globs)]
        query = "?" + "&".join(params) if params else ""
        return self._origin() + self.path + query

    def given(self, strip: Iterable[str] = ()) -> str:
        """The URL as a visitor requests it, with only the `strip` parameters removed."""
        if self.given_query is None:
            return self._origin() + self.given_path
        globs = [g.lower() for g in strip]
        pieces = self.given_query.split("&")
        kept = [p for p in pieces if not (p and _matches_any(_key(p), globs))]
        if len(kept) == len(pieces):
            query = "?" + self.given_query
        else:
            rest = "&".join(p for p in kept if p)
            query = "?" + rest if rest else ""
        return self._origin() + self.given_path + query

    def _origin(self) -> str:
        user = "" if self.userinfo is None else self.userinfo + "@"
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{user}{self.host}{port}"


def normalize(url: str, *, strip_params: Iterable[str] = ()) -> str:
    """The RFC 3986 §6 normal form of an absolute URL; no policy beyond parsing.

    Query keys matching a `strip_params` glob (case-insensitive) are removed.
    Raises RejectedURL for text that is not an unambiguous absolute URL.
    """
    try:
        return _parse(url).unparse(strip_params)
    except ValueError:  # UnicodeError included: a lone surrogate, an IDNA failure
        raise RejectedURL(_clip(url), "not a valid URL") from None


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
            raise RejectedURL(_clip(raw), "not a valid URL") from None

    def join(self, path: str) -> str:
        """`path` from a payload appended to base_url's path, then `check`ed.

        "/blog/x" and "blog/x" both mean base_url + "/blog/x". Anything that is
        really a URL (a scheme, or a scheme-relative "//host") is refused.
        """
        _refuse_ambiguous(path)
        if path.startswith("//"):
            raise RejectedURL(path, "a scheme-relative URL is not a path")
        if _SCHEME.match(path):
            raise RejectedURL(path, "an absolute URL is not a path")
        return self.check(self._join(path))

    def _join(self, path: str) -> str:
        _refuse_ambiguous(path)
        if path.startswith("//"):
            raise RejectedURL(path, "a scheme-relative URL is not a path")
        if _SCHEME.match(path):
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
                    raise RejectedURL(_clip(repr(raw)), "not a string")
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
            raise RejectedURL(_clip(raw), f"URL is longer than {MAX_URL_LENGTH} characters")
        _refuse_ambiguous(raw)
        m = _SCHEME.match(raw)
        if m is None:
            raise RejectedURL(raw, "URL has no scheme (expected http or https)")
        if m.group(1).lower() not in _DEFAULT_PORTS:
            raise RejectedURL(raw, f"scheme {m.group(1).lower()!r} is not http or https")
        parts = _parse(raw)
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
            if _param_names(_key(param)) & self._deny_params:
                key = unquote(_key(param))
                # The value is a credential: it must not reach a report, a log or a CMS.
                shown = _redact(raw, self._deny_params)
                raise RejectedURL(shown, f"query parameter {key!r} is denied by site.deny_params")
        url = parts.given(self.strip_params)
        if len(url) > MAX_URL_LENGTH:
            reason = f"URL is longer than {MAX_URL_LENGTH} characters once normalized"
            raise RejectedURL(_clip(raw), reason)
        # The normal form of what is sent: two spellings that go out as the same bytes
        # ("/[" and "/%5B") must be one URL, not two.
        return url, _parse(url).unparse()

    @cached_property
    def _base(self) -> _Base:
        try:
            parts = _parse(self.base_url)
        except (RejectedURL, ValueError):
            raise ConfigError("site.base_url", "must be an absolute http(s) URL") from None
        if parts.scheme not in _DEFAULT_PORTS or parts.userinfo is not None:
            raise ConfigError("site.base_url", "must be an http(s) URL without user info")
        prefix = f"{parts.scheme}://{parts.host}"
        prefix += "" if parts.port is None else f":{parts.port}"
        return _Base(prefix + parts.path.rstrip("/"), parts.port)

    @cached_property
    def _hosts(self) -> frozenset[str]:
        hosts = set()
        for h in self.allow_hosts:
            try:
                hosts.add(_normalize_host(h, h))
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


def _parse(url: str) -> _Parts:
    _refuse_ambiguous(url)
    m = _SCHEME.match(url)
    if m is None:
        raise RejectedURL(url, "URL has no scheme (expected http or https)")
    scheme = m.group(1).lower()
    rest = _AFTER_SCHEME.fullmatch(url, m.end())
    if rest is None:
        raise RejectedURL(url, "not a valid URL: no //host after the scheme")
    authority, path, query = rest.group(1), rest.group(2), rest.group(3) or ""
    userinfo, at, hostport = authority.rpartition("@")
    host, port = _split_port(url, hostport)
    port = None if port == _DEFAULT_PORTS.get(scheme) else port
    params = (_pct(p) for p in query.split("&") if p)
    return _Parts(
        scheme=scheme,
        userinfo=_pct(userinfo) if at else None,
        host=_normalize_host(url, host),
        port=port,
        path=_remove_dot_segments(_pct(path)) if path else "/",
        params=tuple(sorted(params, key=_key)),
        given_path=_browser_dots(_escape(path, _PATH_AS_IS)) if path else "/",
        given_query=_escape(query, _QUERY_AS_IS) if rest.group(3) is not None else None,
    )


def _split_port(url: str, hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]") + 1
        host, rest = hostport[:end], hostport[end:]
        if not end or (rest and not rest.startswith(":")):
            raise RejectedURL(url, "not a valid URL: bad IPv6 literal")
        port = rest[1:]
    else:
        host, _, port = hostport.partition(":")
    if not port:
        return host, None
    if not _PORT.fullmatch(port) or int(port) > 65535:
        raise RejectedURL(url, f"not a valid URL: bad port {port!r}")
    return host, int(port)


def _normalize_host(url: str, host: str) -> str:
    """Lower-case ASCII (punycode for IDN), no trailing dot; IPv6 in compressed form."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise RejectedURL(url, "not a valid URL: bad IPv6 literal") from None
    if "%" in host:
        raise RejectedURL(url, "not a valid URL: percent-encoded host")
    if not host.isascii():
        # UTS #46 non-transitional, as browsers map a host (IDNA 2003 would read "ß" and
        # some symbols differently from the browser that visitors use).
        host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    host = host.lower().removesuffix(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise RejectedURL(url, f"not a valid URL: bad host {host!r}")
    return host


def _refuse_ambiguous(text: str) -> None:
    for c in text:
        if c == "\\" or c.isspace() or unicodedata.category(c) == "Cc":
            reason = "URL contains a backslash, whitespace or control character"
            raise RejectedURL(_clip(text), reason)


def _is_ip_literal(host: str) -> bool:
    return host.startswith("[") or bool(_NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]))


def _pct(text: str) -> str:
    """Escapes in normal form: unreserved ones decoded, hex upper-case, non-URL chars as UTF-8."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            decoded = chr(int(text[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + text[i + 1 : i + 3].upper())
            i += 3
            continue
        if c in _UNRESERVED or c in _RESERVED:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8"))
        i += 1
    return "".join(out)


# The characters sent as they are; every other one is percent-encoded. These are
# urllib3's (it re-encodes every request target it sends, `_encode_target`), so the URL
# warming reports is byte for byte the URL on the wire. A browser escapes a little less
# (it sends "[", "]", "|" and "^" raw, and keeps lower-case escapes): README says so.
_SENT_AS_IS = frozenset(string.ascii_letters + string.digits + "-._~" + "!$&'()*+,;=" + ":@/")
_PATH_AS_IS = _SENT_AS_IS
_QUERY_AS_IS = _SENT_AS_IS | {"?"}
_ESCAPE = re.compile("%([0-9A-Fa-f]{2})")


def _escape(text: str, as_is: frozenset[str]) -> str:
    """`text` escaped as it will be sent: escapes kept (hex upper-case), the rest encoded.

    A "%" that starts no escape makes every "%" literal (%25), as urllib3 does.
    """
    text = _ESCAPE.sub(lambda m: "%" + m.group(1).upper(), text)
    keep_escapes = len(_ESCAPE.findall(text)) == text.count("%")
    out: list[str] = []
    for c in text:
        if (c == "%" and keep_escapes) or c in as_is:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8"))
    return "".join(out)


_SINGLE_DOT = frozenset({".", "%2E"})
_DOUBLE_DOT = frozenset({"..", ".%2E", "%2E.", "%2E%2E"})


def _browser_dots(path: str) -> str:
    """Dot segments resolved as a browser resolves them ("%2e" counts as ".")."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for seg in segments:
        if seg.upper() in _DOUBLE_DOT:
            if out:
                out.pop()
        elif seg.upper() not in _SINGLE_DOT:
            out.append(seg)
    if segments and segments[-1].upper() in _SINGLE_DOT | _DOUBLE_DOT:
        out.append("")
    return "/" + "/".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for seg in segments:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


def _key(param: str) -> str:
    return param.partition("=")[0]


def _matches_any(key: str, globs: list[str]) -> bool:
    name = unquote(key).lower()
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def _readings(path: str) -> tuple[str, str]:
    """Two ways lenient servers route an absolute path (they merge // before or after ..)."""
    path = path.replace("\\", "/")
    merged_first = _remove_dot_segments(re.sub("/+", "/", path))
    return merged_first.lower(), re.sub("/+", "/", _remove_dot_segments(path)).lower()


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


def _clip(text: str) -> str:
    return text if len(text) <= _CLIP else text[:_CLIP] + "…"


_QUERY_PAIR = re.compile(r"([?&;])([^=&;#]*)=([^&;#]*)")


def _redact(url: str, denied: frozenset[str]) -> str:
    """`url` with the values of denied query parameters replaced by REDACTED."""

    def sub(m: re.Match[str]) -> str:
        if _param_names(m.group(2)) & denied:
            return f"{m.group(1)}{m.group(2)}=REDACTED"
        return m.group(0)

    return _QUERY_PAIR.sub(sub, url)
