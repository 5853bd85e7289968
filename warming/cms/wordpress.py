"""`wordpress`: the WP Webhooks plugin's post triggers (post_create, post_update, ...).

Followed: the plugin's source (Ironikus/wp-webhooks: `generate_trigger_signature`
and `post_to_webhook` in core/includes/classes/class-wp-webhooks-pro-webhook.php,
and the post_update trigger's documented parameters):

- header `x-wp-webhook-signature` = base64(HMAC-SHA256(raw body, secret)), where
  the secret is the plugin's "trigger secret" setting as UTF-8 text;
- no timestamp and no delivery id: a repeat of a body within `webhook.tolerance_s`
  is answered as a redelivery (`Adapter.replay_by_body`); after that a captured
  request could be replayed, so keep the endpoint on HTTPS.

Payload: the trigger's `{"post_id": 1, "post": {WP_Post}, "post_meta": ...,
"post_permalink": "https://..."}`, or a bare WP_Post object (`ID`, `post_type`,
`post_name`, optional `permalink`) from a custom sender. Content type =
`post_type`; fields `slug` (`post_name`), `id` (`ID`), `post_type`, `post_status`;
the permalink, an absolute URL, is warmed as is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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
    scalar,
)
from warming.errors import WebhookError

SIGNATURE = "x-wp-webhook-signature"


class WordPressAdapter(Adapter):
    name = "wordpress"
    replay_by_body = True

    def verify(self, req: Inbound, secrets: Sequence[str], tolerance_s: int, now: float) -> None:
        configured = require_secrets(secrets)
        offered = require_header(req, SIGNATURE)
        matches = [same(_signature(s, req.body), offered) for s in configured]
        if not any(matches):
            raise WebhookError(401, f"{SIGNATURE} does not match any configured secret")

    def parse(self, req: Inbound) -> Change:
        body = load_object(req.body)
        post = opt_object(body, "post")
        where = "post" if post is not None else ""
        if post is None:
            if "ID" not in body and "post_id" not in body:
                raise WebhookError(422, "expected a post: a post object, or a WP_Post with ID")
            post = body
        fields = {}
        for field, key in (("slug", "post_name"), ("id", "ID"), ("post_status", "post_status")):
            text = scalar(post.get(key))
            if text is not None:
                fields[field] = text
        if "id" not in fields and (post_id := scalar(body.get("post_id"))) is not None:
            fields["id"] = post_id
        post_type = opt_str(post, "post_type", where)
        if post_type:
            fields["post_type"] = post_type
        permalink = opt_str(body, "post_permalink") or opt_str(post, "permalink", where)
        return Change(
            urls=(permalink,) if permalink else (),
            content_type=post_type or None,
            fields=fields,
        )


def _signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")
