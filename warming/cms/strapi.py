"""`strapi`: Strapi webhooks, authenticated by a bearer token.

Followed: Strapi's "Webhooks" page (docs.strapi.io/cms/backend-customization/webhooks).
Strapi signs nothing; its documented protection is a header it sends with every
webhook, set per webhook in the admin panel or as `webhooks.defaultHeaders` in
`config/server`: we require `Authorization: Bearer <secret>`, compared in constant
time with each of the adapter's secrets. There is no timestamp and no
delivery id: a repeat of a body within `webhook.tolerance_s` is answered as a
redelivery (`Adapter.replay_by_body`); after that a captured request could be
replayed, so keep the endpoint on HTTPS.

Payload: `{"event": "entry.publish", "createdAt": ..., "model": "article",
"uid": "api::article.article", "entry": {"id": 1, "slug": "x", ...}}`;
content type = `model`; fields = the entry's top-level strings and integers
(`id`, `documentId`, `slug`, `locale`, ...). Media events carry no `model` and
give an empty change.
"""

from __future__ import annotations

from collections.abc import Sequence

from warming.cms.base import (
    Adapter,
    Change,
    Inbound,
    load_object,
    opt_object,
    opt_str,
    require_header,
    require_secrets,
    same,
    scalars,
)
from warming.errors import WebhookError

AUTHORIZATION = "authorization"


class StrapiAdapter(Adapter):
    name = "strapi"
    replay_by_body = True

    def verify(self, req: Inbound, secrets: Sequence[str], tolerance_s: int, now: float) -> None:
        configured = require_secrets(secrets)
        scheme, _, token = require_header(req, AUTHORIZATION).partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise WebhookError(401, "authorization header must be 'Bearer <secret>'")
        if not any([same(token, s) for s in configured]):
            raise WebhookError(401, "bearer token does not match any configured secret")

    def parse(self, req: Inbound) -> Change:
        body = load_object(req.body)
        entry = opt_object(body, "entry") or {}
        return Change(
            content_type=opt_str(body, "model"),
            fields=scalars(entry),
            event=opt_str(body, "event"),
        )
