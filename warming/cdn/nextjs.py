"""Provider `nextjs`: POST the batch's tags and paths to the app's revalidate route.

Next.js on-demand revalidation runs in the app: a Route Handler (for example
`app/api/revalidate/route.ts`) checks a secret and calls `revalidateTag(tag)` /
`revalidatePath(path)`, which purge the Next.js Data Cache and the rendered routes
(https://nextjs.org/docs/app/api-reference/functions/revalidateTag and
.../revalidatePath). Next.js defines no wire format for that route, so this one is
warming's, kept small: `POST <cdn.revalidate_url>` with JSON `{"tags": [...], "paths":
[...]}` and the secret in a header (`cdn.revalidate_secret_in = "header"`, named by
`cdn.revalidate_secret_name`, default `x-revalidate-secret`) or in the query (Next.js's
own example reads `?secret=`); any 2xx means revalidated, 401/403 a refused secret.
README "Next.js" has the route to paste into the app.

- Limits: a tag "Must not exceed 256 characters" (revalidateTag); paths are sent
  without their query string (revalidatePath takes a path); 100 items per POST.
- Effect: the route decides. `revalidateTag(tag, "max")` "will use stale-while-
  revalidate semantics" (`cdn.soft = true`: stale until revalidated); without a profile
  (or `{expire: 0}`, or revalidatePath) "the next request ... will be a blocking
  revalidate/cache miss": at once. Either way the route has purged when it answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from warming import defaults
from warming.cdn.api import ApiClient
from warming.cdn.base import Effect, Pending, PurgeCall, Purger, limit
from warming.errors import ConfigError, PurgeError
from warming.settings import CdnSettings, PopSettings


class NextjsPurger(Purger):
    provider = "nextjs"
    needs = ("revalidate_secret",)

    def __init__(self, cdn: CdnSettings) -> None:
        super().__init__(cdn)
        if not cdn.revalidate_url:
            raise ConfigError("cdn.revalidate_url", "is needed: the app's revalidate route")
        self._url = cdn.revalidate_url
        default = defaults.NEXTJS_SECRET_HEADER
        if cdn.revalidate_secret_in == "query":
            default = defaults.NEXTJS_SECRET_PARAM
        self._secret_name = cdn.revalidate_secret_name or default
        self._api = ApiClient(self.provider, cdn.purge_timeout_s)

    @property
    def effect(self) -> Effect:
        return "stale until revalidated" if self.cdn.soft else "at once"

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        too_long = [t for t in tags if len(t) > defaults.TAG_MAX_LEN]
        if too_long:
            raise PurgeError(
                f"{len(too_long)} tag(s) longer than {defaults.TAG_MAX_LEN} characters, "
                "which revalidateTag refuses",
                provider=self.provider,
            )
        paths = list(dict.fromkeys(urlsplit(u).path or "/" for u in urls))
        items = [("p", p) for p in paths] + [("t", t) for t in tags]
        n = limit(self.cdn, defaults.NEXTJS_MAX_PER_CALL)
        calls = []
        for i in range(0, len(items), n):
            part = items[i : i + n]
            calls.append(
                PurgeCall(
                    None,
                    urls=tuple(v for k, v in part if k == "p"),
                    tags=tuple(v for k, v in part if k == "t"),
                )
            )
        return calls

    def send(self, call: PurgeCall) -> Pending | None:
        secret = self.cdn.revalidate_secret.get_secret_value() if self.cdn.revalidate_secret else ""
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        if self.cdn.revalidate_secret_in == "query":
            params[self._secret_name] = secret
        else:
            headers[self._secret_name] = secret
        body = {"tags": list(call.tags), "paths": list(call.urls)}
        self._api.call(
            "POST", self._url, call.describe(), headers=headers, params=params, json_body=body
        )
        return None
