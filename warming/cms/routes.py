"""Content routes: which paths and surrogate keys a CMS change touches.

A `[[routes]]` entry maps a content type to path templates (`/blog/{slug}`) and
surrogate-key templates (`post-{id}`), filled from `Change.fields`. Values are
escaped for the path (see `warming.cms.paths`): a slug fills one segment whatever
it contains; `full_slug` and `path` fields keep their slashes. A template that
needs a field the payload lacks is skipped and reported, never guessed at.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence

from warming.cms.base import Change
from warming.cms.paths import UnsafeValue, escape
from warming.errors import ConfigError
from warming.settings import Priority, RouteSettings
from warming.sources.lists import dedupe

# Lower is more urgent; when several routes match, the most urgent one wins.
_RANK = {"high": 0, "normal": 1, "bulk": 2}
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Surrogate-key headers are space-separated lists; a value with whitespace would
# turn one key into several and purge objects the change never touched.
_KEY_BREAKER = re.compile(r"[\s\x00-\x1f\x7f]")


class _Skip(Exception):
    """A template that cannot be rendered for this change; the message is the reason."""


def expand(
    change: Change, routes: Sequence[RouteSettings]
) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """Paths, surrogate keys and dropped templates for `change`.

    Paths are the payload's own followed by rendered URL templates, tags likewise
    with key templates; both deduplicated in first-seen order. Dropped entries are
    `{"url": template, "reason": ...}`, shaped like `warming.sources.filter.Dropped.as_dict()`.
    """
    paths = list(change.paths)
    tags = list(change.tags)
    dropped: list[dict[str, str]] = []
    for route in matching(change, routes):
        for template in route.urls:
            try:
                paths.append(render(template, change.fields, for_key=False))
            except _Skip as e:
                dropped.append({"url": template, "reason": f"route for {route.content_type} {e}"})
        for template in route.keys:
            try:
                tags.append(render(template, change.fields, for_key=True))
            except _Skip as e:
                dropped.append({"url": template, "reason": f"key for {route.content_type} {e}"})
    return dedupe(paths), dedupe(tags), _dedupe_dropped(dropped)


def priority_of(change: Change, routes: Sequence[RouteSettings]) -> Priority:
    """The most urgent priority among matching routes; "high" when none matches."""
    found = [r.priority for r in matching(change, routes)]
    return min(found, key=_RANK.__getitem__) if found else "high"


def matching(change: Change, routes: Sequence[RouteSettings]) -> list[RouteSettings]:
    if change.content_type is None:
        return []
    return [r for r in routes if r.content_type == change.content_type]


def render(template: str, fields: Mapping[str, str], *, for_key: bool) -> str:
    """`template` with each `{name}` replaced by its field, escaped; raise _Skip if it can't."""
    out: list[str] = []
    try:
        parts = list(_parse(template))
    except ValueError as e:
        raise _Skip(f"has an invalid template: {e}") from None
    for literal, name in parts:
        out.append(literal)
        if name is None:
            continue
        value = fields.get(name)
        if not value:
            raise _Skip(f"needs field '{name}', which the payload lacks")
        if for_key:
            if _KEY_BREAKER.search(value):
                raise _Skip(f"cannot use field '{name}': it holds whitespace or control characters")
            out.append(value)
            continue
        try:
            out.append(escape(name, value))
        except UnsafeValue as e:
            raise _Skip(f"cannot use field '{name}': it {e}") from None
    return "".join(out)


def check_routes(routes: Sequence[RouteSettings]) -> None:
    """ConfigError naming the first template `expand` could never render (for start-up)."""
    for i, route in enumerate(routes):
        for kind in ("urls", "keys"):
            for j, template in enumerate(getattr(route, kind)):
                try:
                    list(_parse(template))
                except ValueError as e:
                    raise ConfigError(f"routes[{i}].{kind}[{j}]", str(e)) from None


def _parse(template: str) -> Iterable[tuple[str, str | None]]:
    """(literal, field name or None) pairs; ValueError for anything but plain `{name}`."""
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            yield literal, None
            continue
        if not _FIELD_NAME.fullmatch(name) or spec or conversion:
            raise ValueError(
                "fields must be plain names such as {slug}: no index, attribute, "
                "conversion or format spec"
            )
        yield literal, name


def _dedupe_dropped(items: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for item in items:
        key = (item["url"], item["reason"])
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
