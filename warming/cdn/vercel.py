"""Provider `vercel`: invalidate, or dangerously delete, cache tags on a project.

The contract, from Vercel's REST API reference:

- "Invalidate by tag" (https://vercel.com/docs/rest-api/edge-cache/invalidate-by-tag):
  `POST /v1/edge-cache/invalidate-by-tags?projectIdOrName=...&teamId=...`, "Marks a
  cache tag as stale, causing cache entries associated with that tag to be revalidated
  in the background on the next request" (`cdn.soft`).
- "Dangerously delete by tag" (.../edge-cache/dangerously-delete-by-tag):
  `POST /v1/edge-cache/dangerously-delete-by-tags`, same query; the next request is a
  MISS that blocks while revalidating (`vercel cache dangerously-delete`, .../docs/cli/
  cache).
- Body: `{"tags": [...]}`, "Required array length: 1 - 16 elements", each at most 256
  characters. Auth: `Authorization: Bearer <token>` of a member allowed cache purging
  (owner or member role, "Purging Vercel CDN Cache"), scoped to the team.
- URLs: "Cache keys are not configurable. To purge the cache you must configure cache
  tags": a batch without tags cannot be purged here and fails saying so.
- 429: Retry-After when given, else `X-RateLimit-Reset` (epoch seconds), the headers of
  the REST API's rate limits.
- Effect: delete at once; invalidate stale until revalidated.
"""

from __future__ import annotations

from collections.abc import Sequence

from warming import defaults
from warming.cdn.api import ApiClient
from warming.cdn.base import Effect, Pending, PurgeCall, Purger, chunks, limit
from warming.errors import ConfigError, PurgeError
from warming.settings import CdnSettings, PopSettings


class VercelPurger(Purger):
    provider = "vercel"
    needs = ("api_token",)

    def __init__(self, cdn: CdnSettings) -> None:
        super().__init__(cdn)
        if not cdn.project:
            raise ConfigError("cdn.project", "is needed to purge with Vercel (id or name)")
        action = "invalidate-by-tags" if cdn.soft else "dangerously-delete-by-tags"
        self._url = f"{cdn.api_url or defaults.VERCEL_API_URL}/v1/edge-cache/{action}"
        self._params = {"projectIdOrName": cdn.project}
        if cdn.team_id:
            self._params["teamId"] = cdn.team_id
        self._api = ApiClient(self.provider, cdn.purge_timeout_s)

    @property
    def effect(self) -> Effect:
        return "stale until revalidated" if self.cdn.soft else "at once"

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        if urls and not tags:
            raise PurgeError(
                "Vercel purges by cache tag only and this batch has none: warm with --tag, "
                "or give the content route `keys`",
                provider=self.provider,
            )
        too_long = [t for t in tags if len(t) > defaults.TAG_MAX_LEN]
        if too_long:
            raise PurgeError(
                f"{len(too_long)} tag(s) longer than {defaults.TAG_MAX_LEN} characters, "
                "which Vercel refuses",
                provider=self.provider,
            )
        n = limit(self.cdn, defaults.VERCEL_MAX_TAGS)
        return [PurgeCall(None, tags=batch) for batch in chunks(tags, n)]

    def send(self, call: PurgeCall) -> Pending | None:
        token = self.cdn.api_token.get_secret_value() if self.cdn.api_token else ""
        self._api.call(
            "POST",
            self._url,
            call.describe(),
            headers={"Authorization": f"Bearer {token}"},
            params=self._params,
            json_body={"tags": list(call.tags)},
            reset_header="X-RateLimit-Reset",
        )
        return None
