"""Parsing an absolute URL into the two forms warming uses (no policy here).

`Parts.given()` is the URL as it will be sent (a cache keys on it); `Parts.unparse()`
is the RFC 3986 section 6 normal form, used only to tell duplicates apart.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

import idna

from warming.errors import RejectedURL

# How much of an unusable input a Dropped entry keeps, so junk cannot bloat a report.
_CLIP = 200

DEFAULT_PORTS = {"http": 80, "https": 443}
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_AFTERSCHEME = re.compile(r"//([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?", re.DOTALL)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_LABEL = re.compile(r"[a-z0-9_-]{1,63}", re.ASCII)
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_RESERVED = frozenset(":/?#[]@!$&'()*+,;=")
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True)
class Parts:
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
        params = [p for p in self.params if not matches_any(key(p), globs)]
        query = "?" + "&".join(params) if params else ""
        return self._origin() + self.path + query

    def given(self, strip: Iterable[str] = ()) -> str:
        """The URL as a visitor requests it, with only the `strip` parameters removed."""
        if self.given_query is None:
            return self._origin() + self.given_path
        globs = [g.lower() for g in strip]
        pieces = self.given_query.split("&")
        kept = [p for p in pieces if not (p and matches_any(key(p), globs))]
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
        return parse(url).unparse(strip_params)
    except ValueError:  # UnicodeError included: a lone surrogate, an IDNA failure
        raise RejectedURL(clip(url), "not a valid URL") from None


def parse(url: str) -> Parts:
    refuse_ambiguous(url)
    m = SCHEME.match(url)
    if m is None:
        raise RejectedURL(url, "URL has no scheme (expected http or https)")
    scheme = m.group(1).lower()
    rest = _AFTERSCHEME.fullmatch(url, m.end())
    if rest is None:
        raise RejectedURL(url, "not a valid URL: no //host after the scheme")
    authority, path, query = rest.group(1), rest.group(2), rest.group(3) or ""
    userinfo, at, hostport = authority.rpartition("@")
    host, port = _split_port(url, hostport)
    port = None if port == DEFAULT_PORTS.get(scheme) else port
    params = (_pct(p) for p in query.split("&") if p)
    return Parts(
        scheme=scheme,
        userinfo=_pct(userinfo) if at else None,
        host=normalize_host(url, host),
        port=port,
        path=remove_dot_segments(_pct(path)) if path else "/",
        params=tuple(sorted(params, key=key)),
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


def normalize_host(url: str, host: str) -> str:
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


def refuse_ambiguous(text: str) -> None:
    for c in text:
        if c == "\\" or c.isspace() or unicodedata.category(c) == "Cc":
            reason = "URL contains a backslash, whitespace or control character"
            raise RejectedURL(clip(text), reason)


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


def remove_dot_segments(path: str) -> str:
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


def key(param: str) -> str:
    return param.partition("=")[0]


def matches_any(key: str, globs: list[str]) -> bool:
    name = unquote(key).lower()
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def clip(text: str) -> str:
    return text if len(text) <= _CLIP else text[:_CLIP] + "…"
