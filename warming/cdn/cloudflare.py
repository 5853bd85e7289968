"""Provider `cloudflare`: the zone's `purge_cache`, by files, tags, hosts or prefixes.

The contract, from Cloudflare's docs:

- Endpoint and bodies: "Purge Cached Content" (https://developers.cloudflare.com/api/
  resources/cache/methods/purge/): `POST /zones/{zone_id}/purge_cache` with
  `{"files": [url, ...]}`, `{"tags": [...]}`, `{"hosts": [...]}` or `{"prefixes": [...]}`,
  one kind per request; answers `{"success": true, "result": {"id": ...}}`.
- Auth: `Authorization: Bearer <API token>`; the token needs Zone > Cache Purge > Purge
  on the zone.
- Limits: "Purge cache" (https://developers.cloudflare.com/cache/how-to/purge-cache/):
  per account, a token bucket (Free 5 requests a minute, bucket 25; Pro 5/s; Business
  10/s, bucket 50; Enterprise 50/s, bucket 500) and "Max operations per request: 100"
  (Enterprise single-file purges 500: `cdn.max_per_call`). Set `limits.purge` to the
  plan's request rate.
- 429: "Rate limits" (https://developers.cloudflare.com/fundamentals/api/reference/
  limits/): `retry-after`, "The number of seconds, rounded up, until more capacity is
  available", returned when the limit is exceeded.
- Effect: "Instant Purge ensures that updates to your content are reflected
  immediately": at once. Cloudflare is anycast, so a PoP cannot be chosen: configure
  the one address (README).
"""

from __future__ import annotations

from collections.abc import Sequence

from warming import defaults
from warming.cdn.api import ApiClient
from warming.cdn.base import Pending, PurgeCall, Purger, chunks, limit
from warming.errors import ConfigError, PurgeError
from warming.settings import CdnSettings, PopSettings

# A call's kind rides in `pop` (calls of a global API carry no PoP): what its values are.
_KINDS = ("files", "tags", "hosts", "prefixes")


class CloudflarePurger(Purger):
    provider = "cloudflare"
    needs = ("api_token",)

    def __init__(self, cdn: CdnSettings) -> None:
        super().__init__(cdn)
        if not cdn.zone_id:
            raise ConfigError("cdn.zone_id", "is needed to purge with Cloudflare")
        self._url = f"{cdn.api_url or defaults.CLOUDFLARE_API_URL}/zones/{cdn.zone_id}/purge_cache"
        self._api = ApiClient(self.provider, cdn.purge_timeout_s)

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        n = limit(self.cdn, defaults.CLOUDFLARE_MAX_PER_CALL)
        calls = [PurgeCall(None, urls=batch) for batch in chunks(urls, n)]
        calls += [PurgeCall(None, tags=batch) for batch in chunks(tags, n)]
        for kind in ("hosts", "prefixes"):
            items = getattr(self.cdn, kind)
            calls += [PurgeCall(kind, tags=batch) for batch in chunks(items, n)]
        return calls

    def send(self, call: PurgeCall) -> Pending | None:
        kind = call.pop if call.pop in _KINDS else ("tags" if call.tags else "files")
        items = call.urls or call.tags
        token = self.cdn.api_token.get_secret_value() if self.cdn.api_token else ""
        resp = self._api.call(
            "POST",
            self._url,
            call.describe(),
            headers={"Authorization": f"Bearer {token}"},
            json_body={kind: list(items)},
        )
        body = resp.json() if resp.content else {}
        if not isinstance(body, dict) or body.get("success") is not True:
            raise PurgeError(
                f"{call.describe()}: Cloudflare did not confirm the purge: {resp.text[:200]}",
                provider=self.provider,
                target=self.cdn.zone_id or "",
                status=resp.status_code,
            )
        return None
