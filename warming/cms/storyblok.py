"""`storyblok`: Storyblok webhooks (story published, unpublished, deleted, moved).

Followed: Storyblok's "Webhooks" concept page (storyblok.com/docs/concepts/webhooks)
and its tutorial "Securing Webhooks: Verifying Signatures in Different
Technologies" (storyblok.com/tp/webhook-secret-with-different-technologies):

- header `webhook-signature` = hex HMAC-SHA1 of the raw body, keyed with the
  webhook secret as UTF-8 text;
- no timestamp and no delivery id: a repeat of a body within `webhook.tolerance_s`
  is answered as a redelivery (`Adapter.replay_by_body`); after that a captured
  request could be replayed, so keep the endpoint on HTTPS.

Payload: `{"text": "...", "action": "published", "space_id": 1, "story_id": 2,
"full_slug": "blog/x"}` (`full_slug` only on published and moved). A story's
`full_slug` is warmed as the path "/blog/x", each segment escaped; fields
`full_slug`, `slug` (its last segment), `story_id`, `space_id`; the content type is
"story" whenever `story_id` is present. Event: `action`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from warming.cms.base import (
    Adapter,
    Change,
    Inbound,
    load_object,
    opt_str,
    require_header,
    require_secrets,
    same,
    scalar,
)
from warming.cms.paths import UnsafeValue, path_of
from warming.errors import WebhookError

SIGNATURE = "webhook-signature"


class StoryblokAdapter(Adapter):
    name = "storyblok"
    replay_by_body = True

    def verify(self, req: Inbound, secrets: Sequence[str], tolerance_s: int, now: float) -> None:
        configured = require_secrets(secrets)
        offered = require_header(req, SIGNATURE).lower()
        matches = [
            same(hmac.new(s.encode(), req.body, hashlib.sha1).hexdigest(), offered)
            for s in configured
        ]
        if not any(matches):
            raise WebhookError(401, f"{SIGNATURE} does not match any configured secret")

    def parse(self, req: Inbound) -> Change:
        body = load_object(req.body)
        fields = {}
        for key in ("story_id", "space_id"):
            text = scalar(body.get(key))
            if text is not None:
                fields[key] = text
        paths: tuple[str, ...] = ()
        full_slug = opt_str(body, "full_slug")
        if full_slug:
            fields["full_slug"] = full_slug
            try:
                paths = ("/" + path_of(full_slug),) if full_slug.strip("/") else ("/",)
            except UnsafeValue as e:
                raise WebhookError(422, f"full_slug {e}") from None
            slug = full_slug.rstrip("/").rsplit("/", 1)[-1]
            if slug:
                fields["slug"] = slug
        return Change(
            paths=paths,
            content_type="story" if "story_id" in fields else None,
            fields=fields,
            event=opt_str(body, "action"),
        )
