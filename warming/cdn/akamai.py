"""Provider `akamai`: Fast Purge (CCU v3) by URL, cache tag or CP code, signed with EdgeGrid.

The contract, from Akamai's Fast Purge API v3 docs (https://techdocs.akamai.com/
purge-cache/reference/api):

- Endpoints: `POST /ccu/v3/{invalidate|delete}/{url|tag|cpcode}/{production|staging}`
  with `{"objects": [...]}`, one object type per request ("Invalidate by URL or ARL",
  "Delete by cache tag", ...). 201 answers `estimatedSeconds`, "The estimated number of
  seconds before the purge is to complete": warming waits that long before warming.
- Invalidate or delete ("Invalidate and delete methods", .../docs/purge-methods):
  invalidate (`cdn.soft`) makes the next request revalidate with the origin
  (If-Modified-Since); delete removes the object. Either is in effect after the wait.
- Auth: EdgeGrid (EG1-HMAC-SHA256) through the `edgegrid-python` package, with an API
  client's client_token, client_secret and access_token; the host (`cdn.api_url`) is
  that client's, e.g. https://akab-xxxx.purge.akamaiapis.net. The client needs the
  CCU APIs (Fast Purge) grant, READ-WRITE.
- Limits ("Rate limiting", .../reference/rate-limiting): "Purge requests have a body
  size limit of 50KB" (413 above it), so URLs are packed into bodies under 50,000
  bytes; a token bucket of 100 requests refilled at 50/s, and per object type (URLs
  10,000 refilled at 12,000/min, cache tags 5,000 at 500/min, CP codes 300 at 30/min).
  "429: ... Wait five seconds, then retry": Retry-After when given, else 5 s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from akamai.edgegrid import EdgeGridAuth

from warming import defaults
from warming.cdn.api import ApiClient
from warming.cdn.base import Effect, Pending, PurgeCall, Purger
from warming.errors import ConfigError, PurgeError
from warming.settings import CdnSettings, PopSettings

# edgegrid logs the unsigned Authorization header (client and access tokens) and the
# signing key at DEBUG: a worker run with `-l DEBUG` must not print them.
logging.getLogger("akamai.edgegrid").setLevel(logging.INFO)

# `{"objects": []}`: the body's size before its objects.
_ENVELOPE = len(json.dumps({"objects": []}))


class AkamaiPurger(Purger):
    provider = "akamai"
    needs = ("client_token", "client_secret", "access_token")

    def __init__(self, cdn: CdnSettings) -> None:
        super().__init__(cdn)
        if not cdn.api_url:
            raise ConfigError("cdn.api_url", "is needed for Akamai: the API client's host")
        auth = None
        if cdn.client_token and cdn.client_secret and cdn.access_token:
            auth = EdgeGridAuth(
                client_token=cdn.client_token.get_secret_value(),
                client_secret=cdn.client_secret.get_secret_value(),
                access_token=cdn.access_token.get_secret_value(),
            )
        self._api = ApiClient(self.provider, cdn.purge_timeout_s, auth)
        self._action = "invalidate" if cdn.soft else "delete"

    @property
    def effect(self) -> Effect:
        return "after seconds"

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        n = self.cdn.max_per_call
        calls = [PurgeCall("tag", tags=t) for t in _packed(tags, n)]
        if self.cdn.cp_codes:
            codes = [str(c) for c in self.cdn.cp_codes]
            return [PurgeCall("cpcode", tags=c) for c in _packed(codes, n)] + calls
        return [PurgeCall("url", urls=u) for u in _packed(urls, n)] + calls

    def send(self, call: PurgeCall) -> Pending | None:
        kind = call.pop or ("tag" if call.tags else "url")
        objects: list[str | int] = list(call.urls or call.tags)
        if kind == "cpcode":
            objects = [int(o) for o in objects]
        url = f"{self.cdn.api_url}/ccu/v3/{self._action}/{kind}/{self.cdn.network}"
        body = {"objects": objects}
        wait = defaults.AKAMAI_RETRY_S
        resp = self._api.call("POST", url, call.describe(), json_body=body, wait_if_unsaid=wait)
        try:
            seconds = float(resp.json().get("estimatedSeconds", 0))
        except (ValueError, AttributeError, TypeError):
            raise PurgeError(
                f"{call.describe()}: Akamai's answer has no estimatedSeconds",
                provider=self.provider,
                status=resp.status_code,
            ) from None
        return Pending(call.layer, after_s=seconds) if seconds > 0 else None


def _packed(items: Sequence[str], most: int | None) -> list[tuple[str, ...]]:
    """`items` in order, as few bodies as fit under the 50,000-byte limit (and `most`)."""
    out: list[tuple[str, ...]] = []
    batch: list[str] = []
    size = _ENVELOPE
    for item in items:
        # Its quotes and escapes, and ", " (requests' json= keeps json.dumps' separators).
        cost = len(json.dumps(item)) + (2 if batch else 0)
        if batch and (size + cost > defaults.AKAMAI_MAX_BODY or len(batch) == most):
            out.append(tuple(batch))
            batch, size, cost = [], _ENVELOPE, cost - 2
        batch.append(item)
        size += cost
    if batch:
        out.append(tuple(batch))
    return out
