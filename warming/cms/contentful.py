"""`contentful`: Contentful webhook request verification and entry payloads.

Followed: Contentful's "Webhooks > Request verification" page
(contentful.com/developers/docs/extensibility/webhooks/request-verification) and
`verifyRequest`/`signRequest` in contentful/node-apps-toolkit (src/requests), which
that page points to:

- headers `x-contentful-signature` (hex HMAC-SHA256), `x-contentful-timestamp`
  (Unix milliseconds) and `x-contentful-signed-headers` (comma-separated names);
- canonical request: method, path (encodeURI-normalized), the signed headers as
  `name:value` pairs sorted by name and joined by ";", and the body, joined by "\\n";
- key: the 64-character signing secret as UTF-8 text.

The toolkit only refuses old requests (TTL); we also refuse timestamps beyond the
tolerance in the future, and require the timestamp to be among the signed headers,
since otherwise it could be replayed with a new one.

Payload (Contentful "Webhooks > Overview", entry JSON): `sys.id`,
`sys.contentType.sys.id`, and `fields.<name>.<locale>` (localized); the first
locale of each field is used, and reported as the `locale` field. Event: the
`x-contentful-topic` header without its "ContentManagement." prefix.
Delivery id: `x-contentful-idempotency-key` (Contentful's documented
de-duplication header), else `x-contentful-webhook-request-id`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import quote

from warming.cms.base import (
    Adapter,
    Change,
    Inbound,
    check_fresh,
    header,
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

SIGNATURE = "x-contentful-signature"
TIMESTAMP = "x-contentful-timestamp"
SIGNED_HEADERS = "x-contentful-signed-headers"
TOPIC = "x-contentful-topic"
DELIVERY_HEADERS = ("x-contentful-idempotency-key", "x-contentful-webhook-request-id")

# What JavaScript's encodeURI and querystring.escape leave unescaped (besides A-Za-z0-9).
_ENCODE_URI_SAFE = ";,/?:@&=+$-_.!~*'()#"
_ESCAPE_SAFE = "-_.!~*'()"


class ContentfulAdapter(Adapter):
    name = "contentful"

    def verify(self, req: Inbound, secrets: Sequence[str], tolerance_s: int, now: float) -> None:
        configured = require_secrets(secrets)
        signature = require_header(req, SIGNATURE).lower()
        sent_ms = parse_timestamp(require_header(req, TIMESTAMP), TIMESTAMP)
        signed = [n.strip().lower() for n in require_header(req, SIGNED_HEADERS).split(",")]
        if TIMESTAMP not in signed:
            raise WebhookError(401, f"{TIMESTAMP} is not among the signed headers")
        check_fresh(sent_ms / 1000, now, tolerance_s, TIMESTAMP)
        canonical = canonical_request(req, signed, sent_ms)
        matches = [
            same(hmac.new(s.encode(), canonical, hashlib.sha256).hexdigest(), signature)
            for s in configured
        ]
        if not any(matches):
            raise WebhookError(401, f"{SIGNATURE} does not match any configured secret")

    def parse(self, req: Inbound) -> Change:
        body = load_object(req.body)
        sys = opt_object(body, "sys")
        if sys is None:
            raise WebhookError(422, "sys must be an object")
        content_type = None
        ct = opt_object(sys, "contentType", "sys")
        if ct is not None:
            ct_sys = opt_object(ct, "sys", "sys.contentType") or {}
            content_type = opt_str(ct_sys, "id", "sys.contentType.sys")
        fields: dict[str, str] = {}
        locale = None
        for name, value in (opt_object(body, "fields") or {}).items():
            text, in_locale = _localized(value)
            if text is not None:
                fields[name] = text
                locale = locale or in_locale
        if locale:
            fields.setdefault("locale", locale)
        entry_id = opt_str(sys, "id", "sys")
        if entry_id:
            fields["id"] = entry_id  # sys.id, even if the content type has an "id" field
        topic = (header(req, TOPIC) or "").strip()
        return Change(
            content_type=content_type,
            fields=fields,
            event=topic.removeprefix("ContentManagement.") or None,
        )

    def delivery_id(self, req: Inbound) -> str | None:
        for name in DELIVERY_HEADERS:
            value = (header(req, name) or "").strip()
            if value:
                return value
        return None


def canonical_request(req: Inbound, signed: Sequence[str], timestamp_ms: int) -> bytes:
    """The bytes Contentful signs, as node-apps-toolkit's signRequest builds them."""
    picked = {}
    for name in signed:
        value = header(req, name)
        if name and value is not None:
            picked[name] = value.strip()
    names = set(picked) | {SIGNED_HEADERS, TIMESTAMP}
    picked[SIGNED_HEADERS] = ",".join(sorted(names))
    picked[TIMESTAMP] = str(timestamp_ms)
    headers = ";".join(f"{k}:{v}" for k, v in sorted(picked.items()))
    head = f"{req.method}\n{_normalized_path(req.path)}\n{headers}\n"
    return head.encode("utf-8") + req.body


def _normalized_path(path: str) -> str:
    """The toolkit's getNormalizedEncodedURI: escape the query, then encodeURI the lot."""
    parts = path.split("?")
    search = quote(parts[1], safe=_ESCAPE_SAFE) if len(parts) > 1 else ""
    return quote(f"{parts[0]}?{search}" if search else parts[0], safe=_ENCODE_URI_SAFE)


def _localized(value: object) -> tuple[str | None, str | None]:
    """A field's value in its first locale ({"en-US": "x"} -> ("x", "en-US")), or as is."""
    if isinstance(value, dict):
        first = next(iter(value.items()), None)
        return (scalar(first[1]), first[0]) if first else (None, None)
    return scalar(value), None
