"""`generic`: any sender that signs per Standard Webhooks and names URLs, paths or tags.

Signature: see `warming.cms.standard`. Body (SPEC, "Webhook shim"):
`{"urls": [...], "paths": [...], "tags": [...]}`, each optional, at least one
non-empty, every item a string. Other top-level keys are ignored, except a string
`type` (the Standard Webhooks event-type convention), which becomes the event.
"""

from __future__ import annotations

from collections.abc import Sequence

from warming.cms import standard
from warming.cms.base import Adapter, Change, Inbound, header, load_object, opt_str, str_list
from warming.errors import WebhookError


class GenericAdapter(Adapter):
    name = "generic"

    def verify(self, req: Inbound, secrets: Sequence[str], tolerance_s: int, now: float) -> None:
        standard.verify_headers(req.headers, req.body, secrets, tolerance_s, now)

    def parse(self, req: Inbound) -> Change:
        body = load_object(req.body)
        urls = str_list(body, "urls")
        paths = str_list(body, "paths")
        tags = str_list(body, "tags")
        if not (urls or paths or tags):
            raise WebhookError(422, "expected at least one non-empty list: urls, paths or tags")
        return Change(urls=urls, paths=paths, tags=tags, event=opt_str(body, "type"))

    def delivery_id(self, req: Inbound) -> str | None:
        return (header(req, standard.ID_HEADER) or "").strip() or None
