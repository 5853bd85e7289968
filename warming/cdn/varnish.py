"""Provider `varnish`: `PURGE` each URL at every PoP; xkey purge for surrogate keys.

The PoPs' VCL must accept `PURGE` (and, for tags, read the keys from the header named
by `cdn.tag_header`: varnish-modules' documented `xkey-purge` by default);
`warming/sandbox/edge.vcl` is a working example. A PoP that ignores either answers
200 all the same: the freshness proof, not the purge's answer, catches it.
"""

from __future__ import annotations

from collections.abc import Sequence

from warming.cdn.base import Pending, PurgeCall, Purger
from warming.errors import PurgeError, RetryLater
from warming.pop.client import PopClient
from warming.settings import CdnSettings, FetchSettings, PopSettings

# 404: the object was not cached there, which is what a purge wants.
_OK = {200, 201, 202, 204, 404}


class VarnishPurger(Purger):
    provider = "varnish"

    def __init__(self, cdn: CdnSettings, pops: Sequence[PopSettings], base_url: str) -> None:
        super().__init__(cdn)
        self._pops = {p.name: p for p in pops}
        self._base_url = base_url
        fetch = FetchSettings(read_timeout_s=cdn.purge_timeout_s)
        self._client = PopClient(fetch)

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        ordered = sorted(pops, key=lambda p: p.tier != "shield")
        calls = [PurgeCall(p.name, urls=(u,)) for p in ordered for u in urls]
        if tags:
            calls += [PurgeCall(p.name, tags=tuple(tags)) for p in ordered]
        return calls

    def send(self, call: PurgeCall) -> Pending | None:
        pop = self._pops[call.pop or ""]
        if call.tags:
            url, headers = self._base_url + "/", {self.cdn.tag_header: " ".join(call.tags)}
        else:
            url, headers = call.urls[0], {}
        try:
            resp = self._client.request("PURGE", pop, url, headers)
        except RetryLater as e:
            raise RetryLater(f"{call.describe()}: {e}", pop=pop.name, url=url) from None
        resp.close()
        s = resp.status_code
        if s in _OK:
            return None
        if s == 429 or s >= 500:
            raise RetryLater(f"{call.describe()}: PoP answered {s}", pop=pop.name, status=s)
        raise PurgeError(
            f"{call.describe()}: PoP answered {s} (does its VCL allow PURGE from us?)",
            provider=self.provider,
            target=pop.name,
            status=s,
        )
