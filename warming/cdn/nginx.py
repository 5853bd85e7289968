"""Provider `nginx`: purge each URL at every PoP through ngx_cache_purge, like Varnish.

The contract, from the module's README (https://github.com/nginx-modules/ngx_cache_purge,
"Directives" and "Sample configurations"):

- Inline form, `proxy_cache_purge PURGE from 127.0.0.1;` in the caching location: the
  request `PURGE <path>` purges the entry whose key the same request would have
  (`cdn.purge_path = ""`, the default).
- Separate-location form, `location ~ ^/purge(/.*) { proxy_cache_purge main
  "$host$1$is_args$args"; }`: `GET /purge<path>` (`cdn.purge_path = "/purge"`).
- Answers: 200 purged; 412 (or 404 with `cache_purge_legacy_status off`) not in the
  cache, which is what a purge wants; 403 the address is not allowed to purge.
- Tags: the module has none; the batch's URLs are purged.
- Effect: exact-key purges "are always synchronous": at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from warming.cdn.base import Pending, PurgeCall
from warming.cdn.varnish import VarnishPurger
from warming.errors import PurgeError, RetryLater
from warming.settings import PopSettings

_OK = {200, 202, 404, 412}


class NginxPurger(VarnishPurger):
    provider = "nginx"

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        return super().plan(urls, (), pops)

    def send(self, call: PurgeCall) -> Pending | None:
        pop = self._pops[call.pop or ""]
        url = call.urls[0]
        method = "PURGE"
        if self.cdn.purge_path:
            parts = urlsplit(url)
            target = self.cdn.purge_path.rstrip("/") + (parts.path or "/")
            url = parts._replace(path=target).geturl()
            method = "GET"
        try:
            resp = self._client.request(method, pop, url, {})
        except RetryLater as e:
            raise RetryLater(f"{call.describe()}: {e}", pop=pop.name, url=url) from None
        resp.close()
        s = resp.status_code
        if s in _OK:
            return None
        if s == 429 or s >= 500:
            raise RetryLater(f"{call.describe()}: PoP answered {s}", pop=pop.name, status=s)
        raise PurgeError(
            f"{call.describe()}: PoP answered {s} (is this address allowed by "
            "proxy_cache_purge ... from, and cdn.purge_path right?)",
            provider=self.provider,
            target=pop.name,
            status=s,
        )
