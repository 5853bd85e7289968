"""Push provider `gcore`: Gcore CDN's prefetch API fills the resource's cache.

From Gcore's API reference, "Prefetch content"
(https://gcore.com/docs/api-reference/cdn/tools/prefetch-content) and its guide
(https://gcore.com/docs/cdn/load-the-content-to-cdn-before-users-request-it):

- `POST https://api.gcore.com/cdn/resources/{resource_id}/prefetch`, JSON body
  `{"paths": [...]}`: "Paths to the files should be specified without a domain name".
- Auth: "Authorization: APIKey <token>", a permanent API token
  (https://gcore.com/docs/developer-tools/rest-api/authentication); a missing or bad
  token is answered 401, a body that does not validate 400 (ValidationError).
- Limits: "One request for prefetch may content only up to 100 paths to files" and
  "You can make one prefetch request for a CDN resource per minute" (`warm.rate`
  defaults to "1/m", cluster-wide); a 429 waits its Retry-After, else the minute.
- "If you need to update files stored in the CDN, first purge these files and then
  prefetch": warming purges first, as it always does. Gcore recommends prefetch for
  files "more than 200 MB and less than 5 GB"; pages work, but for them GETs cost less.
- Completion is asynchronous ("The time of procedure depends on the number and size of
  the files"): `warm.settle_s`, then every PoP is verified with a GET.
"""

from __future__ import annotations

from warming import defaults
from warming.cdn.api import ApiClient
from warming.cdn.pushbase import PushCall, Pusher, url_path
from warming.errors import ConfigError
from warming.settings import WarmSettings


class GcorePusher(Pusher):
    provider = "gcore"
    vendor_max = defaults.GCORE_MAX_PATHS
    needs = ("api_token",)

    def __init__(self, warm: WarmSettings) -> None:
        super().__init__(warm)
        if warm.resource_id is None:
            raise ConfigError("warm.resource_id", "is needed: the Gcore CDN resource's id")
        base = warm.api_url or defaults.GCORE_API_URL
        self._url = f"{base}/cdn/resources/{warm.resource_id}/prefetch"
        self._api = ApiClient(self.provider, warm.timeout_s)

    @property
    def account(self) -> str:
        # The limit is the resource's ("one prefetch request for a CDN resource per minute").
        return f"gcore:{self.warm.resource_id}"

    def item(self, url: str) -> str:
        return url_path(url)

    def send(self, call: PushCall) -> None:
        self._api.call(
            "POST",
            self._url,
            call.describe(),
            headers={"Authorization": f"APIKey {self.token()}"},
            json_body={"paths": list(call.items)},
            wait_if_unsaid=defaults.GCORE_RETRY_S,
        )
