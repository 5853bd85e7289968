"""Provider `fastly`: purge each URL, and surrogate keys up to 256 per call.

The contract, from Fastly's API reference (Purging: https://www.fastly.com/documentation/
reference/api/purging/, as generated into fastly/fastly-py docs/PurgeApi.md) and its
API overview (https://docs.fastly.com/api/, "Authentication", "Rate limiting"):

- Auth: a `Fastly-Key: <token>` header; the token needs the `purge_select` scope.
- A URL: `POST /purge/{cached_url}`, the URL without its scheme (`www.example.com/a`).
  Not scoped to a service.
- Keys: `POST /service/{service_id}/purge` with `{"surrogate_keys": [...]}`, "Up to 256
  surrogate keys ... in one batch request".
- Soft purge: a `Fastly-Soft-Purge: 1` header "marks the affected object as stale rather
  than making it inaccessible" (`cdn.soft`).
- Limits: "Surrogate key and URL purge requests are also not limited" by the 1,000
  writes an hour; a 429 still gets its wait from Retry-After, else
  `Fastly-RateLimit-Reset` (epoch seconds).
- Effect: "Instant Purge": at once; a soft purge is stale until revalidated.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from warming import defaults
from warming.cdn.api import ApiClient
from warming.cdn.base import Effect, Pending, PurgeCall, Purger, chunks, limit
from warming.errors import PurgeError
from warming.settings import CdnSettings, PopSettings

# Where Fastly says when its rate-limit window reopens (epoch seconds).
_RESET = "Fastly-RateLimit-Reset"


class FastlyPurger(Purger):
    provider = "fastly"
    needs = ("api_token",)

    def __init__(self, cdn: CdnSettings) -> None:
        super().__init__(cdn)
        self._base = cdn.api_url or defaults.FASTLY_API_URL
        self._api = ApiClient(self.provider, cdn.purge_timeout_s)

    @property
    def effect(self) -> Effect:
        return "stale until revalidated" if self.cdn.soft else "at once"

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        if tags and not self.cdn.service_id:
            raise PurgeError(
                "cdn.service_id is needed to purge surrogate keys with Fastly",
                provider=self.provider,
            )
        calls = [PurgeCall(None, urls=(u,)) for u in urls]
        n = limit(self.cdn, defaults.FASTLY_MAX_KEYS)
        return calls + [PurgeCall(None, tags=keys) for keys in chunks(tags, n)]

    def send(self, call: PurgeCall) -> Pending | None:
        token = self.cdn.api_token.get_secret_value() if self.cdn.api_token else ""
        headers = {"Fastly-Key": token, "Accept": "application/json"}
        if self.cdn.soft:
            headers["Fastly-Soft-Purge"] = "1"
        if call.tags:
            url = f"{self._base}/service/{self.cdn.service_id}/purge"
            body = {"surrogate_keys": list(call.tags)}
            self._api.call(
                "POST", url, call.describe(), headers=headers, json_body=body, reset_header=_RESET
            )
            return None
        parts = urlsplit(call.urls[0])
        cached = parts.netloc + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        url = f"{self._base}/purge/{cached}"
        self._api.call("POST", url, call.describe(), headers=headers, reset_header=_RESET)
        return None
