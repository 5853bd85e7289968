"""nginx with ngx_cache_purge: PURGE (or GET /purge<path>) at every PoP, shields first."""

from __future__ import annotations

import pytest
import requests

from tests.cdn.conftest import purge_batch, runtime
from tests.cdn.doubles import Answer, Double, Seen
from tests.support import SITE
from warming.stages.outcome import Done, Failed

pytestmark = pytest.mark.integration

HOST = SITE.split("://", 1)[1]


class CachePurge:
    """One PoP: `proxy_cache_purge PURGE from 127.0.0.1` or the /purge location form."""

    def __init__(
        self, name: str, log: list[tuple[str, str]], prefix: str = "", allowed: bool = True
    ) -> None:
        self.name, self.log, self.prefix, self.allowed = name, log, prefix, allowed
        self.cached = {"/a", "/b?x=1"}

    def __call__(self, r: Seen) -> Answer:
        if r.headers.get("host") != HOST:
            return Answer(400, {"error": "cache key uses $host: the site's Host is needed"})
        if not self.allowed:
            return Answer(403, None)
        if self.prefix:
            if r.method != "GET" or not r.target.startswith(self.prefix + "/"):
                return Answer(405, None)
            key = r.target[len(self.prefix) :]
        elif r.method == "PURGE":
            key = r.target
        else:
            return Answer(405, None)
        self.log.append((self.name, key))
        if key in self.cached:
            self.cached.discard(key)
            return Answer(200, {"Key": HOST + key})
        return Answer(412, None)  # not in the cache (cache_purge_legacy_status on)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("prefix", ["", "/purge"])
def test_every_url_purged_at_each_pop_shield_first(redis_url: str, prefix: str) -> None:
    log: list[tuple[str, str]] = []
    with (
        Double(CachePurge("shield", log, prefix)) as s,
        Double(CachePurge("fra", log, prefix)) as e,
    ):
        pops = [{"name": "fra", "url": e.url}, {"name": "shield", "url": s.url, "tier": "shield"}]
        rt = runtime(redis_url, {"provider": "nginx", "purge_path": prefix}, pops=pops)
        got = purge_batch(rt, ["/a", "/b?x=1", "/never-cached"], ["tag-ignored"])
        assert isinstance(got.outcome, Done), got.batch.get("error")
        assert s.violations == [] and e.violations == []
    keys = ["/a", "/b?x=1", "/never-cached"]
    assert log == [("shield", k) for k in keys] + [("fra", k) for k in keys]


@pytest.mark.timeout(60)
def test_a_pop_that_refuses_our_address_fails_the_batch(redis_url: str) -> None:
    with Double(CachePurge("fra", [], allowed=False)) as e:
        rt = runtime(redis_url, {"provider": "nginx"}, pops=[{"name": "fra", "url": e.url}])
        got = purge_batch(rt, ["/a"])
    assert isinstance(got.outcome, Failed) and "PoP answered 403" in got.batch["error"]


def test_the_double_refuses_what_ngx_cache_purge_refuses() -> None:
    with Double(CachePurge("fra", [])) as e:
        assert requests.request("PURGE", e.url + "/a").status_code == 400  # no site Host
        assert requests.get(e.url + "/a", headers={"Host": HOST}).status_code == 405
        assert requests.request("PURGE", e.url + "/a", headers={"Host": HOST}).status_code == 200
        assert requests.request("PURGE", e.url + "/a", headers={"Host": HOST}).status_code == 412
