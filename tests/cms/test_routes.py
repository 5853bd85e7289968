"""Content routes: template expansion, missing fields, hostile values, dedup, priority."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warming.cms import Change, Inbound, adapter_for
from warming.cms.routes import check_routes, expand, priority_of
from warming.errors import ConfigError, RejectedURL
from warming.settings import RouteSettings
from warming.sources.filter import URLFilter

BASE = "https://www.example.com"
FILTER = URLFilter(
    base_url=BASE,
    allow_hosts=("www.example.com",),
    deny_paths=("/preview", "/draft"),
    deny_params=("token", "auth", "session", "signature", "access_token"),
    strip_params=("utm_*", "gclid", "fbclid"),
)
BLOG = RouteSettings(
    content_type="blogPost",
    urls=["/blog/{slug}", "/blog", "/"],
    keys=["post-{id}", "blog"],
)
PAGE = RouteSettings(content_type="page", urls=["/{path}"], priority="normal")
STORY = RouteSettings(content_type="story", urls=["/{full_slug}"], priority="bulk")
ROUTES = [BLOG, PAGE, STORY]


def post(**fields: str) -> Change:
    return Change(content_type="blogPost", fields=fields)


def one_path(template: str, **fields: str) -> str:
    route = RouteSettings(content_type="t", urls=[template])
    paths, _, dropped = expand(Change(content_type="t", fields=fields), [route])
    assert dropped == []
    assert len(paths) == 1
    return paths[0]


def reason(template: str, **fields: str) -> str:
    route = RouteSettings(content_type="t", urls=[template])
    paths, _, dropped = expand(Change(content_type="t", fields=fields), [route])
    assert paths == []
    assert len(dropped) == 1
    assert dropped[0]["url"] == template
    return dropped[0]["reason"]


def test_templates_expand_from_fields() -> None:
    paths, tags, dropped = expand(post(slug="hello-world", id="42"), ROUTES)
    assert paths == ["/blog/hello-world", "/blog", "/"]
    assert tags == ["post-42", "blog"]
    assert dropped == []


def test_payload_paths_and_tags_come_first_and_duplicates_go() -> None:
    change = Change(
        paths=("/blog", "/about", "/blog"),
        tags=("blog", "x"),
        content_type="blogPost",
        fields={"slug": "a", "id": "1"},
    )
    paths, tags, _ = expand(change, [BLOG, BLOG])
    assert paths == ["/blog", "/about", "/blog/a", "/"]
    assert tags == ["blog", "x", "post-1"]


def test_routes_of_other_content_types_do_not_apply() -> None:
    change = Change(paths=("/x",), content_type="author", fields={"slug": "a"})
    assert expand(change, ROUTES) == (["/x"], [], [])
    untyped = Change(tags=("t",), fields={"slug": "a", "path": "p", "full_slug": "f"})
    assert expand(untyped, ROUTES) == ([], ["t"], [])
    assert expand(post(slug="a", id="1"), []) == ([], [], [])


def test_missing_field_skips_the_template_and_says_why() -> None:
    paths, tags, dropped = expand(post(slug="hello"), ROUTES)
    assert paths == ["/blog/hello", "/blog", "/"]
    assert tags == ["blog"]
    assert dropped == [
        {"url": "post-{id}", "reason": "key for blogPost needs field 'id', which the payload lacks"}
    ]
    _, _, dropped = expand(post(id="1"), ROUTES)
    assert dropped == [
        {
            "url": "/blog/{slug}",
            "reason": "route for blogPost needs field 'slug', which the payload lacks",
        }
    ]


def test_empty_field_counts_as_missing() -> None:
    assert (
        reason("/blog/{slug}", slug="") == "route for t needs field 'slug', which the payload lacks"
    )


def test_repeated_drops_are_listed_once() -> None:
    _, _, dropped = expand(post(), [BLOG, BLOG])
    assert [d["url"] for d in dropped] == ["/blog/{slug}", "post-{id}"]


@pytest.mark.parametrize(
    ("slug", "path"),
    [
        ("../admin", "/blog/..%2Fadmin"),
        ("x?token=1", "/blog/x%3Ftoken%3D1"),
        ("a#frag", "/blog/a%23frag"),
        ("a/b", "/blog/a%2Fb"),
        ("%2e%2e", "/blog/%252e%252e"),
        ("a b", "/blog/a%20b"),
        ("back\\slash", "/blog/back%5Cslash"),
        ("naïve", "/blog/na%C3%AFve"),
        ("//evil.example/x", "/blog/%2F%2Fevil.example%2Fx"),
        ("line\r\nX-Injected: 1", "/blog/line%0D%0AX-Injected%3A%201"),
        ("...", "/blog/..."),
    ],
)
def test_hostile_slugs_stay_in_their_segment(slug: str, path: str) -> None:
    rendered = one_path("/blog/{slug}", slug=slug)
    assert rendered == path
    url = FILTER.join(rendered)
    assert urlsplit(url).path.startswith("/blog/")
    assert urlsplit(url).query == ""


@pytest.mark.parametrize("slug", [".", ".."])
def test_dot_segment_slugs_are_dropped(slug: str) -> None:
    assert reason("/blog/{slug}", slug=slug) == (
        "route for t cannot use field 'slug': it is a '.' or '..' path segment"
    )


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("blog/x", "/blog/x"),
        ("/blog/x", "/blog/x"),
        ("blog/x/", "/blog/x/"),
        ("blog//x", "/blog/x"),
        ("//evil.example/x", "/evil.example/x"),
        ("blog/a b?token=1", "/blog/a%20b%3Ftoken%3D1"),
    ],
)
def test_path_fields_keep_their_slashes_and_nothing_else(value: str, path: str) -> None:
    assert one_path("/{full_slug}", full_slug=value) == path
    assert one_path("/{path}", path=value) == path
    assert urlsplit(FILTER.join(path)).netloc == "www.example.com"


@pytest.mark.parametrize("value", ["../admin", "blog/../../admin", "./x", "blog/.."])
def test_path_fields_with_dot_segments_are_dropped(value: str) -> None:
    assert reason("/{full_slug}", full_slug=value) == (
        "route for t cannot use field 'full_slug': it has a '.' or '..' path segment"
    )


def test_a_path_field_of_only_slashes_is_dropped() -> None:
    assert reason("/{path}", path="//") == "route for t cannot use field 'path': it is empty"


def test_keys_use_values_verbatim_but_refuse_whitespace() -> None:
    route = RouteSettings(content_type="t", urls=["/"], keys=["doc-{id}"])
    _, tags, dropped = expand(Change(content_type="t", fields={"id": "a/b:c"}), [route])
    assert (tags, dropped) == (["doc-a/b:c"], [])
    _, tags, dropped = expand(Change(content_type="t", fields={"id": "a b"}), [route])
    assert tags == []
    assert dropped == [
        {
            "url": "doc-{id}",
            "reason": "key for t cannot use field 'id': it holds whitespace or control characters",
        }
    ]


def test_escaped_braces_are_literal() -> None:
    assert one_path("/a{{b}}/{slug}", slug="x") == "/a{b}/x"


@pytest.mark.parametrize(
    "template", ["/{slug.upper}", "/{slug[0]}", "/{slug!r}", "/{slug:>9}", "/{}", "/{0}", "/{slug"]
)
def test_invalid_templates_are_dropped_and_caught_at_start(template: str) -> None:
    assert reason(template, slug="x").startswith("route for t has an invalid template: ")
    with pytest.raises(ConfigError) as info:
        check_routes([BLOG, RouteSettings(content_type="t", urls=["/"], keys=[template])])
    assert info.value.key == "routes[1].keys[0]"


def test_valid_routes_pass_the_start_check() -> None:
    check_routes(ROUTES)


def test_priority() -> None:
    assert priority_of(post(), ROUTES) == "high"
    assert priority_of(Change(content_type="page"), ROUTES) == "normal"
    assert priority_of(Change(content_type="story"), ROUTES) == "bulk"
    assert priority_of(Change(content_type="author"), ROUTES) == "high"
    assert priority_of(Change(), ROUTES) == "high"
    bulk_page = RouteSettings(content_type="page", urls=["/"], priority="bulk")
    assert priority_of(Change(content_type="page"), [bulk_page, PAGE]) == "normal"
    assert priority_of(Change(content_type="page"), [bulk_page]) == "bulk"


def test_storyblok_payload_through_its_route() -> None:
    body = b'{"action": "published", "story_id": 7, "full_slug": "blog/hello/"}'
    change = adapter_for("storyblok").parse(Inbound("POST", "/", {}, body))
    paths, _, dropped = expand(change, ROUTES)
    assert (paths, dropped) == (["/blog/hello/"], [])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slug=st.text(min_size=1, max_size=40))
def test_no_slug_leaves_its_segment(slug: str) -> None:
    route = RouteSettings(content_type="t", urls=["/blog/{slug}"])
    paths, _, dropped = expand(Change(content_type="t", fields={"slug": slug}), [route])
    if slug in (".", ".."):
        assert paths == []
        assert len(dropped) == 1
        return
    assert len(paths) == 1
    assert paths[0].count("/") == 2
    try:
        url = FILTER.join(paths[0])
    except RejectedURL:
        return  # refusing is always safe
    parts = urlsplit(url)
    assert parts.netloc == "www.example.com"
    assert parts.query == "" and parts.fragment == ""
    assert parts.path.startswith("/blog/")
    assert parts.path.count("/") == 2
