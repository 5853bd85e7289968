"""`sanity`: Sanity GROQ-powered webhooks.

Followed: Sanity's "GROQ-powered webhooks" docs (sanity.io/docs/webhooks) and the
@sanity/webhook toolkit (sanity-io/webhook-toolkit, src/signature.ts):

- header `sanity-webhook-signature: t=<Unix ms>,v1=<signature>` (a space may follow
  the comma), where the signature is the unpadded base64url HMAC-SHA256 of
  `"{t}.{body}"` keyed with the webhook's secret as UTF-8 text;
- the toolkit checks no age; we refuse a `t` outside the tolerance either way.

Payload: the GROQ projection the user configured, so only conventions are read:
`_type` (content type), `_id` (field `id`), `slug` as a string or a slug object
`{"current": "x"}`; every other top-level string or integer becomes a field too.
Event: the `sanity-operation` header (create, update, delete). Delivery id: the
`idempotency-key` header, the same on every retry of one delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from warming.cms.base import (
    Adapter,
    Change,
    Inbound,
    check_fresh,
    header,
    load_object,
    opt_str,
    parse_timestamp,
    require_header,
    require_secrets,
    same,
    scalars,
)
from warming.errors import WebhookError

SIGNATURE = "sanity-webhook-signature"
OPERATION = "sanity-operation"
IDEMPOTENCY_KEY = "idempotency-key"

# The toolkit's SIGNATURE_HEADER_REGEX.
_HEADER = re.compile(r"t=(\d+)[, ]+v1=([^, ]+)")


class SanityAdapter(Adapter):
    name = "sanity"

    def verify(self, req: Inbound, secrets: Sequence[str], tolerance_s: int, now: float) -> None:
        configured = require_secrets(secrets)
        m = _HEADER.fullmatch(require_header(req, SIGNATURE))
        if not m:
            raise WebhookError(401, f"{SIGNATURE} header is not of the form t=<ms>,v1=<signature>")
        sent_ms = parse_timestamp(m.group(1), SIGNATURE)
        check_fresh(sent_ms / 1000, now, tolerance_s, f"{SIGNATURE} timestamp")
        offered = m.group(2).rstrip("=")
        content = m.group(1).encode() + b"." + req.body
        matches = [same(_b64url(s, content), offered) for s in configured]
        if not any(matches):
            raise WebhookError(401, f"{SIGNATURE} does not match any configured secret")

    def parse(self, req: Inbound) -> Change:
        body = load_object(req.body)
        fields = scalars(body)
        fields.pop("_type", None)
        slug = body.get("slug")
        if isinstance(slug, dict):
            current = opt_str(slug, "current", "slug")
            if current:
                fields["slug"] = current
        elif slug is not None and not isinstance(slug, str):
            raise WebhookError(422, "slug must be a string or an object with a string current")
        doc_id = opt_str(body, "_id")
        if doc_id:
            fields["id"] = doc_id
        operation = (header(req, OPERATION) or "").strip()
        return Change(content_type=opt_str(body, "_type"), fields=fields, event=operation or None)

    def delivery_id(self, req: Inbound) -> str | None:
        return (header(req, IDEMPOTENCY_KEY) or "").strip() or None


def _b64url(secret: str, content: bytes) -> str:
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
