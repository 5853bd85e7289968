"""`prismic`: Prismic repository webhooks.

Followed: Prismic's "Webhooks" page (prismic.io/docs/webhooks) and the webhook
body types of @prismicio/client (src/types/webhook: WebhookBodyAPIUpdate,
WebhookBodyTestTrigger):

- Prismic signs nothing: the secret set on the webhook travels in the JSON body's
  `secret` field, compared in constant time with every configured secret. There
  is no timestamp and no delivery id: a repeat of a body within
  `webhook.tolerance_s` is answered as a redelivery (`Adapter.replay_by_body`);
  after that a captured request could be replayed, so keep the endpoint on HTTPS;
- body `{"type": "api-update", "masterRef": ..., "releases": {...}, "masks": {...},
  "tags": {...}, "documents": ["<id>", ...], "domain": ..., "apiUrl": ...,
  "secret": ...}`; `type` is "test-trigger" for the dashboard's test button.

The payload names documents only by id, so they become tags: the URLs last seen
carrying those surrogate keys are purged and warmed. No content type.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from warming.cms.base import (
    Adapter,
    Change,
    Inbound,
    load_object,
    opt_str,
    require_secrets,
    same,
    str_list,
)
from warming.errors import WebhookError


class PrismicAdapter(Adapter):
    name = "prismic"
    replay_by_body = True

    def verify(self, req: Inbound, secrets: Sequence[str], tolerance_s: int, now: float) -> None:
        configured = require_secrets(secrets)
        try:
            body = json.loads(req.body)
        except (ValueError, RecursionError):
            body = None
        offered = body.get("secret") if isinstance(body, dict) else None
        if not isinstance(offered, str) or not offered:
            raise WebhookError(401, "missing secret field in the JSON body")
        if not any([same(offered, s) for s in configured]):
            raise WebhookError(401, "secret field does not match any configured secret")

    def parse(self, req: Inbound) -> Change:
        body = load_object(req.body)
        return Change(tags=str_list(body, "documents"), event=opt_str(body, "type"))
