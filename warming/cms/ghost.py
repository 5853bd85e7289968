"""`ghost`: Ghost webhooks (post.*, page.*, tag.* events).

Followed: Ghost's webhook docs (ghost.org/docs/webhooks) and the sender itself,
TryGhost/Ghost `webhook-trigger.js`:

- header `x-ghost-signature: sha256=<hex>, t=<Unix ms>`, where the hex is the
  HMAC-SHA256 of the raw body immediately followed by `t` (no separator), keyed
  with the webhook's secret as UTF-8 text. Releases that signed the body alone,
  leaving `t` unauthenticated, are refused: their timestamp proves nothing;
- `t` must lie within the tolerance in both directions.

Payload: `{"post": {"current": {...}, "previous": {...}}}`, or `page` or `tag`
instead of `post`, which becomes the content type. `current` is empty when the
object was deleted; `previous` is read then. Fields: `slug`, `id`, `uuid`; the
object's `url` (absolute) is warmed as is. Ghost sends no event name and no
delivery id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from warming.cms.base import (
    Adapter,
    Change,
    Inbound,
    check_fresh,
    load_object,
    opt_object,
    opt_str,
    parse_timestamp,
    require_header,
    require_secrets,
    same,
    scalar,
)
from warming.errors import WebhookError

SIGNATURE = "x-ghost-signature"
KINDS = ("post", "page", "tag")
_PART = re.compile(r"\s*([a-z0-9]+)=([^,\s]*)\s*")


class GhostAdapter(Adapter):
    name = "ghost"

    def verify(self, req: Inbound, secrets: Sequence[str], tolerance_s: int, now: float) -> None:
        configured = require_secrets(secrets)
        parts = _parts(require_header(req, SIGNATURE))
        offered, stamp = parts.get("sha256"), parts.get("t")
        if not offered or not stamp:
            raise WebhookError(401, f"{SIGNATURE} header is not of the form sha256=<hex>, t=<ms>")
        sent_ms = parse_timestamp(stamp, f"{SIGNATURE} t")
        check_fresh(sent_ms / 1000, now, tolerance_s, f"{SIGNATURE} timestamp")
        content = req.body + stamp.encode()
        matches = [
            same(hmac.new(s.encode(), content, hashlib.sha256).hexdigest(), offered.lower())
            for s in configured
        ]
        if not any(matches):
            raise WebhookError(401, f"{SIGNATURE} does not match any configured secret")

    def parse(self, req: Inbound) -> Change:
        body = load_object(req.body)
        kind = next((k for k in KINDS if k in body), None)
        if kind is None:
            raise WebhookError(422, "expected a post, page or tag object")
        wrapper = opt_object(body, kind) or {}
        obj = opt_object(wrapper, "current", kind) or {}
        if obj:
            where = f"{kind}.current"
        else:
            obj = opt_object(wrapper, "previous", kind) or {}
            where = f"{kind}.previous"
        fields = {}
        for key in ("slug", "id", "uuid"):
            text = scalar(obj.get(key))
            if text is not None:
                fields[key] = text
        url = opt_str(obj, "url", where)
        return Change(urls=(url,) if url else (), content_type=kind, fields=fields)


def _parts(value: str) -> dict[str, str]:
    """`sha256=<hex>, t=<ms>` as {"sha256": ..., "t": ...}; unknown parts are kept, unused."""
    out = {}
    for piece in value.split(","):
        m = _PART.fullmatch(piece)
        if m:
            out[m.group(1)] = m.group(2)
    return out
