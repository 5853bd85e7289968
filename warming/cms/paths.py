"""Payload values made safe to put into a URL path.

A slug comes from the CMS, so it is data, not path syntax: "../admin" or
"x?token=1" must stay inside the one path segment it was meant to fill. Each
value is percent-encoded with nothing kept (`/`, `?` and `#` included); only
fields that hold a path by nature (PATH_FIELDS, such as Storyblok's `full_slug`)
keep their `/`, and then every segment between them is encoded on its own.
A `.` or `..` segment is refused outright, because URL normalization (ours, the
CDN's and the origin's) resolves it even when percent-encoded.
"""

from __future__ import annotations

from urllib.parse import quote

# Fields whose value is a site path ("blog/x"), so their "/" separates segments.
PATH_FIELDS = frozenset({"full_slug", "path"})


class UnsafeValue(ValueError):
    """A value that cannot be put into a path; the message completes "field 'x' ..."."""


def escape(name: str, value: str) -> str:
    """`value` of field `name`, encoded for a path: one segment, or several for PATH_FIELDS."""
    return path_of(value) if name in PATH_FIELDS else segment(value)


def segment(value: str) -> str:
    """`value` as exactly one path segment."""
    if not value:
        raise UnsafeValue("is empty")
    if value in (".", ".."):
        raise UnsafeValue("is a '.' or '..' path segment")
    return quote(value, safe="")


def path_of(value: str) -> str:
    """A slash-separated `value` ("blog/x", "/blog/x/") as a relative path, segments encoded.

    Leading and repeated slashes are dropped (so the result can never start "//" and
    read as a host); a trailing slash is kept, since "/blog/" and "/blog" are
    different cache objects.
    """
    parts = [p for p in value.split("/") if p]
    if not parts:
        raise UnsafeValue("is empty")
    if any(p in (".", "..") for p in parts):
        raise UnsafeValue("has a '.' or '..' path segment")
    path = "/".join(quote(p, safe="") for p in parts)
    return path + "/" if value.endswith("/") else path
