"""The URL filter: normalization, the SPEC's policy, and its SSRF boundary."""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import urllib3.util
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warming.errors import ConfigError, RejectedURL
from warming.settings import SiteSettings
from warming.sources.filter import MAX_URL_LENGTH, Dropped, URLFilter, normalize

BASE = "https://www.example.com"
ALLOWED = {"www.example.com", "static.example.com", "xn--bcher-kva.example"}
F = URLFilter(
    base_url=BASE,
    allow_hosts=("www.example.com", "Static.Example.com.", "bücher.example"),
    deny_paths=("/preview", "/draft"),
    deny_params=("token", "auth", "session", "signature", "access_token"),
    strip_params=("utm_*", "gclid", "fbclid"),
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reason_of(flt: URLFilter, raw: str) -> str:
    with pytest.raises(RejectedURL) as info:
        flt.check(raw)
    assert info.value.reason, "every rejection needs a reason"
    return info.value.reason


# --- normalization -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://WWW.Example.com:443/a?b=2&a=1#x", "https://www.example.com/a?a=1&b=2"),
        ("http://www.example.com:80", "http://www.example.com/"),
        ("http://www.example.com:8080/", "http://www.example.com:8080/"),
        ("https://www.example.com:80/", "https://www.example.com:80/"),
        ("https://www.example.com:/x", "https://www.example.com/x"),
        ("https://www.example.com:0443/x", "https://www.example.com/x"),
        ("https://www.example.com./x", "https://www.example.com/x"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("https://BÜCHER.example/", "https://xn--bcher-kva.example/"),
        ("https://www.example.com/%7euser/%2fx%2F", "https://www.example.com/~user/%2Fx%2F"),
        ("https://www.example.com/%41%62c%3a%40", "https://www.example.com/Abc%3A%40"),
        ("https://www.example.com/a/./b/../c", "https://www.example.com/a/c"),
        ("https://www.example.com/a/%2E%2e/c", "https://www.example.com/c"),
        ("https://www.example.com/a/b/..", "https://www.example.com/a/"),
        ("https://www.example.com/../../x", "https://www.example.com/x"),
        ("https://www.example.com/café", "https://www.example.com/caf%C3%A9"),
        ("https://www.example.com/<x>{y}|", "https://www.example.com/%3Cx%3E%7By%7D%7C"),
        ("https://www.example.com/50%", "https://www.example.com/50%25"),
        ("https://www.example.com/x%zz", "https://www.example.com/x%25zz"),
        ("https://www.example.com/?", "https://www.example.com/"),
        ("https://www.example.com/x?&&", "https://www.example.com/x"),
        ("https://www.example.com/x?b=1&a=2&b=0", "https://www.example.com/x?a=2&b=1&b=0"),
        ("https://www.example.com/x?q=a+b%20c%2b", "https://www.example.com/x?q=a+b%20c%2B"),
        ("https://www.example.com/x?a[]=1", "https://www.example.com/x?a[]=1"),
        ("https://www.example.com/x#frag?a=1", "https://www.example.com/x"),
        ("https://www.example.com/x?utm_source=1", "https://www.example.com/x?utm_source=1"),
        ("http://[0:0::1]:80/", "http://[::1]/"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_strips_tracking_params_case_insensitively() -> None:
    raw = "https://www.example.com/x?UTM_Source=a&utm_medium=b&gclid=c&keep=1&gclidx=2"
    got = normalize(raw, strip_params=("utm_*", "GCLID"))
    assert got == "https://www.example.com/x?gclidx=2&keep=1"


@pytest.mark.parametrize(
    "raw",
    [
        "not a url",
        "https://",
        "https://:443/",
        "https://www.example.com:99999/",
        "https://www.example.com:8o/",
        "https://www.example.com:80:80/",
        "https://[zz]/",
        "https://[::1/",
        "https://www..example.com/",
        "https://" + ".".join(["a" * 63] * 4) + "/",
        "https://www.exa%6Dple.com/",
        "https://a\uff0fb.example/",
        "mailto:someone@example.com",
        "https://www.example.com/\ud800",
    ],
)
def test_normalize_refuses_what_it_cannot_parse(raw: str) -> None:
    with pytest.raises(RejectedURL) as info:
        normalize(raw)
    assert info.value.reason


# --- the filter: accepted ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.example.com/a", "https://www.example.com/a"),
        ("https://WWW.EXAMPLE.COM./a", "https://www.example.com/a"),
        ("http://www.example.com", "http://www.example.com/"),
        ("https://static.example.com/app.js", "https://static.example.com/app.js"),
        ("https://xn--BCHER-kva.example/x", "https://xn--bcher-kva.example/x"),
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
        ("https://www.example.com/previews", "https://www.example.com/previews"),
        ("https://www.example.com/blog/preview", "https://www.example.com/blog/preview"),
        ("https://www.example.com/a//../preview", "https://www.example.com/a/preview"),
        (
            # The query as given: a cache keys on the URL as sent (issue 9, query order).
            "https://www.example.com/x?tokens=1&mytoken=2",
            "https://www.example.com/x?tokens=1&mytoken=2",
        ),
        (
            "https://www.example.com/blog?page=2&lang=en",
            "https://www.example.com/blog?page=2&lang=en",
        ),
        ("https://www.example.com/x?b=1&utm_source=a&a=2", "https://www.example.com/x?b=1&a=2"),
        ("https://www.example.com/x?", "https://www.example.com/x?"),
        ("https://www.example.com/%7euser", "https://www.example.com/%7Euser"),
        ("https://www.example.com/a/%2e%2E/c?q=a+b", "https://www.example.com/c?q=a+b"),
        (
            "https://www.example.com/x?utm_source=a&UTM_MEDIUM=b&gclid=c&fbclid=d&b=2",
            "https://www.example.com/x?b=2",
        ),
    ],
)
def test_check_accepts(raw: str, expected: str) -> None:
    assert F.check(raw) == expected


# --- the filter: every trick refused, with its reason ------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        # scheme
        ("file:///etc/passwd", "scheme 'file' is not http or https"),
        ("FILE://www.example.com/etc/passwd", "scheme 'file' is not http or https"),
        ("gopher://www.example.com:70/_GET", "scheme 'gopher' is not http or https"),
        ("ftp://www.example.com/", "scheme 'ftp' is not http or https"),
        ("javascript:alert(1)", "scheme 'javascript' is not http or https"),
        ("data:text/html,<script>", "scheme 'data' is not http or https"),
        ("www.example.com/a", "no scheme"),
        ("//www.example.com/a", "no scheme"),
        ("/a", "no scheme"),
        ("", "no scheme"),
        ("https:www.example.com/a", "not a valid URL"),
        ("https:/www.example.com/a", "not a valid URL"),
        ("https:///www.example.com/a", "not a valid URL"),
        # user info
        ("https://www.example.com@evil.com/", "URL has user info"),
        ("https://user:pw@www.example.com/", "URL has user info"),
        ("https://@www.example.com/", "URL has user info"),
        ("https://evil.com%2F@www.example.com/", "URL has user info"),
        ("https://evil.com\uff03@www.example.com/", "URL has user info"),
        # host
        ("https://evil.com/", "host evil.com is not in site.allow_hosts"),
        ("https://EVIL.com./x", "host evil.com is not in site.allow_hosts"),
        ("https://www.example.com.evil.com/", "not in site.allow_hosts"),
        ("https://evil.com#@www.example.com/", "host evil.com is not in site.allow_hosts"),
        ("https://evil.com?@www.example.com/", "host evil.com is not in site.allow_hosts"),
        ("https://evil.com/@www.example.com/", "host evil.com is not in site.allow_hosts"),
        ("https://\uff45vil.com/", "host evil.com is not in site.allow_hosts"),
        ("https://example.com/", "host example.com is not in site.allow_hosts"),
        ("https://www.exa%6Dple.com/", "not a valid URL: percent-encoded host"),
        ("https://www.example.com%2eevil.com/", "not a valid URL: percent-encoded host"),
        ("https://www.example.com\uff0fevil.com/", "not a valid URL"),
        # IP literals in every spelling
        ("http://127.0.0.1/", "IP literal hosts are never warmed"),
        ("http://2130706433/", "IP literal hosts are never warmed"),
        ("http://0x7f.1/", "IP literal hosts are never warmed"),
        ("http://0x7f000001/", "IP literal hosts are never warmed"),
        ("http://0177.0.0.1/", "IP literal hosts are never warmed"),
        ("http://127.1/", "IP literal hosts are never warmed"),
        ("http://169.254.169.254/latest/meta-data/", "IP literal hosts are never warmed"),
        ("http://[::1]/", "IP literal hosts are never warmed"),
        ("http://[::ffff:127.0.0.1]:80/", "IP literal hosts are never warmed"),
        ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "IP literal hosts are never warmed"),
        # characters parsers disagree on
        ("https://www.example.com\\@evil.com/", "backslash, whitespace or control"),
        ("https://www.example.com\\.evil.com/", "backslash, whitespace or control"),
        ("https:\\\\evil.com/", "backslash, whitespace or control"),
        ("https://www.example.com/a\\..\\preview", "backslash, whitespace or control"),
        (" https://www.example.com/", "backslash, whitespace or control"),
        ("https://www.example.com/ ", "backslash, whitespace or control"),
        ("https://www.exa mple.com/", "backslash, whitespace or control"),
        ("https://www.example.com/a\tb", "backslash, whitespace or control"),
        ("https://www.example.com/a\nb", "backslash, whitespace or control"),
        ("https://www.example.com\r\nHost: evil.com/", "backslash, whitespace or control"),
        ("https://www.example.com/\x00", "backslash, whitespace or control"),
        ("https://www.example.com/\x7f", "backslash, whitespace or control"),
        ("https://www.example.com/\x85", "backslash, whitespace or control"),
        ("https://www.example.com/\u2028", "backslash, whitespace or control"),
        ("https://www.example.com/\u3000", "backslash, whitespace or control"),
        # ports
        ("https://www.example.com:8443/", "port 8443 is not the port of site.base_url"),
        ("https://www.example.com:80/", "port 80 is not the port of site.base_url"),
        ("https://www.example.com:99999/", "not a valid URL"),
        # denied paths: prefixes on segment boundaries, after normalization and decoding
        (
            "https://www.example.com/preview",
            "path /preview is denied by site.deny_paths (/preview)",
        ),
        ("https://www.example.com/preview/x", "path /preview/x is denied by site.deny_paths"),
        ("https://www.example.com/preview/", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com/draft?x=1", "denied by site.deny_paths (/draft)"),
        ("https://www.example.com/%70review/x", "path /preview/x is denied by site.deny_paths"),
        ("https://www.example.com/a/../preview", "path /preview is denied by site.deny_paths"),
        ("https://www.example.com/a/%2e%2E/preview", "path /preview is denied by site.deny_paths"),
        ("https://www.example.com/./preview/./x", "path /preview/x is denied by site.deny_paths"),
        ("https://www.example.com/%2570review", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com/preview%2Fx", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com/x%2F..%2Fpreview", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com/x/..%2F%2Fpreview", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com/x%5C..%5Cpreview", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com/preview%2F%2F..", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com/a/%2F../preview", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com/Preview/x", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com/preview;jsessionid=1", "denied by site.deny_paths (/preview)"),
        ("https://www.example.com//preview/x", "starts with //"),
        ("https://www.example.com//evil.com/x", "starts with //"),
        # denied parameters: dropped, never stripped
        (
            "https://www.example.com/?token=abc",
            "query parameter 'token' is denied by site.deny_params",
        ),
        ("https://www.example.com/?TOKEN=abc", "query parameter 'TOKEN' is denied"),
        ("https://www.example.com/?a=1&Access_Token=x", "'Access_Token' is denied"),
        ("https://www.example.com/?auth", "query parameter 'auth' is denied"),
        ("https://www.example.com/?to%6Ben=x", "query parameter 'token' is denied"),
        ("https://www.example.com/?to%256Ben=x", "is denied by site.deny_params"),
        ("https://www.example.com/?access.token=x", "'access.token' is denied"),
        ("https://www.example.com/?access+token=x", "is denied by site.deny_params"),
        ("https://www.example.com/?token[]=x", "'token[]' is denied"),
        ("https://www.example.com/?a=1;session=x", "query parameter 'session' is denied"),
        ("https://www.example.com/?utm_source=a&signature=x", "'signature' is denied"),
    ],
)
def test_check_refuses_with_reason(raw: str, reason: str) -> None:
    with pytest.raises(RejectedURL) as info:
        F.check(raw)
    assert reason in info.value.reason
    if "deny_params" in info.value.reason and "=" in raw:
        # The credential's value never travels on in the drop; the rest of the URL does.
        assert info.value.url != raw and "REDACTED" in info.value.url
        assert info.value.url.split("?")[0] == raw.split("?")[0]
    else:
        assert info.value.url == raw


def test_ip_literals_are_refused_even_when_allowed() -> None:
    flt = URLFilter(
        base_url="http://127.0.0.1",
        allow_hosts=("127.0.0.1", "2130706433", "0x7f.1", "[::1]", "10.0.0.1"),
    )
    for raw in ("http://127.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://[::1]/"):
        assert reason_of(flt, raw) == "IP literal hosts are never warmed"


def test_too_long_urls_are_refused_and_clipped_in_the_report() -> None:
    raw = BASE + "/" + "a" * MAX_URL_LENGTH
    with pytest.raises(RejectedURL) as info:
        F.check(raw)
    assert info.value.reason == f"URL is longer than {MAX_URL_LENGTH} characters"
    assert len(info.value.url) < 300
    # short before normalization, too long after: each "é" becomes "%C3%A9"
    assert "once normalized" in reason_of(F, BASE + "/" + "é" * 2000)
    assert F.check(BASE + "/" + "a" * (MAX_URL_LENGTH - len(BASE) - 1)).endswith("a")


def test_a_non_default_port_is_allowed_when_base_url_uses_it() -> None:
    flt = URLFilter(base_url="https://www.example.com:8443", allow_hosts=("www.example.com",))
    assert flt.check("https://www.example.com:8443/x") == "https://www.example.com:8443/x"
    assert "port 9443" in reason_of(flt, "https://www.example.com:9443/x")
    assert flt.join("/x") == "https://www.example.com:8443/x"


def test_deny_paths_are_segment_prefixes_and_configurable() -> None:
    flt = URLFilter(base_url=BASE, allow_hosts=("www.example.com",), deny_paths=("/Admin/",))
    assert "(/Admin/)" in reason_of(flt, BASE + "/admin")
    assert "(/Admin/)" in reason_of(flt, BASE + "/admin/users")
    assert flt.check(BASE + "/administrator") == BASE + "/administrator"
    assert flt.check(BASE + "/preview/x") == BASE + "/preview/x"  # not in this deny list
    everything = URLFilter(base_url=BASE, allow_hosts=("www.example.com",), deny_paths=("/",))
    assert "deny_paths (/)" in reason_of(everything, BASE + "/any")


def test_deny_wins_over_strip() -> None:
    # Credentials in a query string are never quietly removed and replayed: the URL is dropped.
    flt = URLFilter(base_url=BASE, allow_hosts=("www.example.com",), strip_params=("*",))
    assert "'token' is denied" in reason_of(flt, BASE + "/x?token=secret")
    assert flt.check(BASE + "/x?utm_source=a&page=2") == BASE + "/x"
    accepted, dropped = F.split([BASE + "/x?utm_source=a", BASE + "/x?utm_source=a&token=t"])
    assert accepted == [BASE + "/x"]
    assert [d.reason for d in dropped] == ["query parameter 'token' is denied by site.deny_params"]


# --- join ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/blog/x", BASE + "/blog/x"),
        ("blog/x", BASE + "/blog/x"),
        ("../x", BASE + "/x"),
        ("/../../x", BASE + "/x"),
        ("", BASE + "/"),
        ("/", BASE + "/"),
        ("/blog/x?utm_source=a&b=1#top", BASE + "/blog/x?b=1"),
        ("?page=2", BASE + "/?page=2"),
        ("/café", BASE + "/caf%C3%A9"),
    ],
)
def test_join(path: str, expected: str) -> None:
    assert F.join(path) == expected


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("//evil.com", "scheme-relative"),
        ("//evil.com/x", "scheme-relative"),
        ("///evil.com", "scheme-relative"),
        ("https://evil.com", "an absolute URL is not a path"),
        ("https://www.example.com/x", "an absolute URL is not a path"),
        ("HTTP://evil.com/", "an absolute URL is not a path"),
        ("javascript:alert(1)", "an absolute URL is not a path"),
        ("https:evil.com", "an absolute URL is not a path"),
        ("\\\\evil.com", "backslash"),
        ("/\\evil.com", "backslash"),
        (" //evil.com", "whitespace"),
        ("\t//evil.com", "whitespace"),
    ],
)
def test_join_refuses_urls_posing_as_paths(path: str, reason: str) -> None:
    with pytest.raises(RejectedURL) as info:
        F.join(path)
    assert reason in info.value.reason
    assert info.value.url == path


def test_join_then_check_reports_the_joined_url() -> None:
    with pytest.raises(RejectedURL) as info:
        F.join("/preview/x")
    assert info.value.url == BASE + "/preview/x"
    assert info.value.reason == "path /preview/x is denied by site.deny_paths (/preview)"
    assert "denied by site.deny_paths" in reason_of(F, F.join("blog") + "/../draft")


def test_join_is_relative_to_the_base_path() -> None:
    flt = URLFilter(base_url="https://www.example.com/en/", allow_hosts=("www.example.com",))
    assert flt.join("/blog/x") == "https://www.example.com/en/blog/x"
    assert flt.join("blog/x") == "https://www.example.com/en/blog/x"
    assert flt.join("../x") == "https://www.example.com/x"


# --- split, dedup, the report shape -------------------------------------------------


def test_split_dedups_after_normalization_in_first_seen_order() -> None:
    accepted, dropped = F.split(
        [
            "HTTPS://WWW.Example.com:443/a?b=2&a=1#x",
            "https://www.example.com/b",
            "https://www.example.com/a?a=1&b=2",
            "https://www.example.com/a?a=1&b=2&utm_campaign=z",
            "https://www.example.com/./b",
        ]
    )
    # One URL per normal form, sent as first given (host lower-cased, port and fragment gone).
    assert accepted == ["https://www.example.com/a?b=2&a=1", "https://www.example.com/b"]
    assert dropped == []


def test_split_never_raises_and_keeps_reasons() -> None:
    junk: list[object] = [
        "https://evil.com/",
        None,
        42,
        "https://www.example.com/ok",
        "https://evil.com/",
        "x" * 100_000,
        "https://www.example.com/\ud800",
    ]
    accepted, dropped = F.split(junk)  # type: ignore[arg-type]
    assert accepted == ["https://www.example.com/ok"]
    assert [d.reason for d in dropped] == [
        "host evil.com is not in site.allow_hosts",
        "not a string",
        "not a string",
        f"URL is longer than {MAX_URL_LENGTH} characters",
        "not a valid URL",
    ]
    assert dropped[0] == Dropped("https://evil.com/", "host evil.com is not in site.allow_hosts")
    assert all(len(d.url) < 300 for d in dropped)


def test_split_paths() -> None:
    accepted, dropped = F.split(["/a", "a", "/a#x", "//evil.com", "/preview/x"], paths=True)
    assert accepted == [BASE + "/a"]
    assert [d.as_dict() for d in dropped] == [
        {"url": "//evil.com", "reason": "a scheme-relative URL is not a path"},
        {
            "url": BASE + "/preview/x",
            "reason": "path /preview/x is denied by site.deny_paths (/preview)",
        },
    ]


def test_dropped_as_dict() -> None:
    assert Dropped("u", "r").as_dict() == {"url": "u", "reason": "r"}


# --- construction -------------------------------------------------------------------


def test_from_site_uses_site_hosts_and_defaults() -> None:
    flt = URLFilter.from_site(SiteSettings(base_url="https://WWW.Example.com/"))
    assert flt.allow_hosts == ("www.example.com",)
    assert flt.check("https://www.example.com/x?utm_source=1") == "https://www.example.com/x"
    assert "denied by site.deny_paths (/draft)" in reason_of(flt, BASE + "/draft/1")
    assert "'session' is denied" in reason_of(flt, BASE + "/?session=1")
    assert "not in site.allow_hosts" in reason_of(flt, "https://static.example.com/")

    site = SiteSettings(
        base_url=BASE,
        allow_hosts=["www.example.com", "Static.Example.com"],
        deny_paths=["/secret"],
        deny_params=["key"],
        strip_params=["ref"],
    )
    flt = URLFilter.from_site(site)
    assert flt.check("https://static.example.com/x?ref=a&b=1") == "https://static.example.com/x?b=1"
    assert flt.check(BASE + "/preview") == BASE + "/preview"
    assert "(/secret)" in reason_of(flt, BASE + "/secret/x")
    assert "'key' is denied" in reason_of(flt, BASE + "/?key=1")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"base_url": "www.example.com", "allow_hosts": ("www.example.com",)}, "site.base_url"),
        ({"base_url": "ftp://www.example.com", "allow_hosts": ()}, "site.base_url"),
        ({"base_url": BASE, "allow_hosts": ("www.example.com:443",)}, "site.allow_hosts"),
        ({"base_url": BASE, "allow_hosts": ("*.example.com",)}, "site.allow_hosts"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        URLFilter(**kwargs)  # type: ignore[arg-type]
    assert info.value.key == key


def test_empty_allow_hosts_allows_nothing() -> None:
    flt = URLFilter(base_url=BASE, allow_hosts=())
    assert "not in site.allow_hosts" in reason_of(flt, BASE + "/")


# --- properties ---------------------------------------------------------------------

_PIECE_CHARS = "/.%2eEfF0a~-_:@!$&'()*+,;=[]<>\"{}|^`é☃\u00ad"
_pieces = st.text(
    alphabet=st.one_of(st.sampled_from(_PIECE_CHARS), st.characters(exclude_categories=["Cs"])),
    max_size=30,
)
generated_urls = st.builds(
    "{}://{}{}/{}{}{}".format,
    st.sampled_from(["http", "https", "HTTP", "hTTps", "ftp"]),
    st.sampled_from(
        ["www.example.com", "WWW.Example.COM.", "bücher.example", "[::1]", "[0:0::1]", "10.0.0.1"]
    ),
    st.sampled_from(["", ":", ":80", ":443", ":8080", ":0443"]),
    _pieces,
    st.one_of(st.just(""), _pieces.map("?{}".format)),
    st.one_of(st.just(""), _pieces.map("#{}".format)),
)


@FUZZ
@given(generated_urls, st.sampled_from([(), ("utm_*", "gclid"), ("*",)]))
def test_normalize_is_idempotent(url: str, strip: tuple[str, ...]) -> None:
    try:
        once = normalize(url, strip_params=strip)
    except RejectedURL:
        return
    assert normalize(once, strip_params=strip) == once
    assert normalize(once) == once
    assert once.isascii() and "#" not in once


@FUZZ
@given(st.text())
def test_normalize_is_idempotent_on_any_suffix(suffix: str) -> None:
    try:
        once = normalize(BASE + "/" + suffix)
    except RejectedURL:
        return
    assert normalize(once) == once


def assert_safe(url: str) -> None:
    """An accepted URL names an allowed host for every parser we know of."""
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https")
    assert parts.hostname in ALLOWED
    assert parts.port is None and "@" not in parts.netloc
    assert urllib3.util.parse_url(url).host in ALLOWED
    assert httpx.URL(url).raw_host.decode("ascii") in ALLOWED
    assert not re.search(r"[\s\\\x00-\x1f\x7f]", url)
    assert not parts.path.startswith("//")
    assert F.check(url) == url


_TOKENS = [
    "http", "https", "HTTPS", "file", "javascript", "gopher", ":", "//", "/", "\\", "@",
    "#", "?", "&", "=", ";", ".", "..", "%", "%2F", "%2e", "%40", "%00", "%5C", ":443",
    ":80", ":8080", "[", "]", "::1", "127.0.0.1", "0x7f", "2130706433", "www.example.com",
    "WWW.EXAMPLE.COM", "static.example.com", "bücher.example", "evil.com", "evil.com.",
    "example.com", "www", "\uff45vil", "\u3002", "\uff20", "\uff0f", "\uff03", "\t", " ",
    "\u3000", "user:pw",
    "token=1", "utm_source=x", "preview", "draft", "a", "0",
]  # fmt: skip
_soup = st.lists(st.sampled_from(_TOKENS), max_size=16).map("".join)
_urlish = st.tuples(
    st.sampled_from(["https://", "http://", "HTTPS://", "https:", "//", "https:\\\\", ""]), _soup
).map("".join)


@FUZZ
@given(st.one_of(st.text(), _urlish, _soup.map(lambda s: "https://" + s + "/")))
def test_check_never_returns_a_foreign_host(raw: str) -> None:
    try:
        url = F.check(raw)
    except RejectedURL as e:
        assert e.reason
        return
    assert_safe(url)


@FUZZ
@given(st.one_of(st.text(), _soup))
def test_join_never_leaves_the_site(path: str) -> None:
    try:
        url = F.join(path)
    except RejectedURL as e:
        assert e.reason
        return
    assert_safe(url)
    assert url.startswith(BASE + "/")


def _routes_to_denied(path: str) -> bool:
    """An independent reading of the deny rule: decode, merge slashes, resolve dots."""
    form = path
    for _ in range(4):
        p = posixpath.normpath(re.sub("/+", "/", form.replace("\\", "/"))).lower()
        if any(p == d or p.startswith((d + "/", d + ";")) for d in ("/preview", "/draft")):
            return True
        form = unquote(form)
    return False


_path_tokens = ["/", "preview", "PreView", "%70", "review", "draft", "..", ".", "%2e", "%2E",
                "%2F", "%25", "%5C", ";", "x", "s", "?", "#", "%3F"]  # fmt: skip


@FUZZ
@given(st.lists(st.sampled_from(_path_tokens), max_size=12).map("".join))
def test_accepted_urls_never_route_to_a_denied_path(path: str) -> None:
    try:
        url = F.check(BASE + "/" + path)
    except RejectedURL:
        return
    assert not _routes_to_denied(urlsplit(url).path)


@FUZZ
@given(generated_urls)
def test_spelling_variants_of_one_url_dedup(url: str) -> None:
    try:
        canonical = F.check(url)
    except RejectedURL:
        return
    parts = urlsplit(canonical)
    port = ":443" if parts.scheme == "https" else ":80"
    variant = f"{parts.scheme.upper()}://{parts.netloc.upper()}.{port}{parts.path}"
    variant += (f"?{parts.query}" if parts.query else "") + "#fragment"
    accepted, dropped = F.split([canonical, variant, url])
    assert accepted == [canonical]
    assert dropped == []


def test_denied_parameter_values_are_redacted_in_the_drop() -> None:
    f = URLFilter(base_url="http://www.example.com", allow_hosts=("www.example.com",))
    ok, dropped = f.split(["http://www.example.com/a?x=1&Token=s3cret&b=2"])
    assert ok == []
    assert "s3cret" not in dropped[0].url and "Token=REDACTED" in dropped[0].url
    assert "x=1" in dropped[0].url  # only the credential is hidden


def test_reordered_queries_are_one_url_and_the_first_spelling_is_the_one_sent() -> None:
    given = BASE + "/blog?page=2&lang=en"
    accepted, dropped = F.split([given, BASE + "/blog?lang=en&page=2", given + "&utm_source=x"])
    assert accepted == [given]
    assert dropped == []
    # The normal form still exists, for de-duplication only.
    assert F.accept(given) == (given, BASE + "/blog?lang=en&page=2")
