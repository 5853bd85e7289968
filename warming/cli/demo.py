"""`warming demo`: the whole system on this machine, nothing to configure.

A local origin, a shield and two edge PoPs (real Varnish when installed, else
small Python caching proxies with the same behaviour), an embedded Redis and an
in-process Celery worker. It warms a handful of pages, proves every PoP serves
them as HITs, then publishes a change and shows the purge-warm-verify cycle
delivering the new content.
"""

from __future__ import annotations

import os
import sys
import tempfile

import requests

from warming.batch import report as reports
from warming.batch.publish import WarmRequest, publish
from warming.cli.embedded import running
from warming.cli.show import wait
from warming.pop.cachestatus import cache_status
from warming.sandbox import start_world
from warming.settings import Settings

SITE = "http://www.example.com"
PAGES = ["/", "/blog", "/blog/hello-world", "/about", "/products/42?utm_source=mail"]
REFUSED = ["/preview/next-post", "https://evil.example.net/steal", "/account?token=s3cret"]


def _say(text: str) -> None:
    print(text, flush=True)


def _probe(pop_url: str, path: str) -> tuple[bool, str]:
    """What a visitor reaching this PoP gets: (fresh HIT?, body)."""
    resp = requests.get(pop_url + path, headers={"Host": "www.example.com"}, timeout=10)
    return cache_status(resp.headers).is_hit, resp.text


def run_demo() -> int:
    # The demo ignores any warming.toml here: it builds its own world and settings.
    os.environ["WARMING_CONFIG"] = os.path.join(tempfile.gettempdir(), "warming-demo-none.toml")
    with start_world(n_edges=2, shield=True) as world:
        _say(f"origin  {world.origin.url}  (a tiny CMS-backed site)")
        for pop in world.pops():
            _say(f"PoP     {pop['name']:<7} {pop['url']}  tier={pop['tier']}  ({world.kind})")
        settings = Settings.model_validate(
            {
                "site": {"base_url": SITE},
                "pops": world.pops(),
                "cdn": {"provider": "varnish"},
                "limits": {"prefetch": "200/s", "purge": "200/s"},
            }
        )
        with running(settings) as rt:
            _say("\n1) warm every page through every PoP, then verify each is a HIT")
            plan = publish(rt, WarmRequest(paths=PAGES + REFUSED, trigger={"source": "cli"}))
            first = wait(rt.store, plan.batch_id)
            _say(reports.render(first))

            _say("\n2) the CMS publishes a change to /blog/hello-world")
            world.origin.bump("/blog/hello-world")
            plan = publish(rt, WarmRequest(paths=["/blog/hello-world"], trigger={"source": "cli"}))
            second = wait(rt.store, plan.batch_id)
            _say(reports.render(second))
            version = world.origin.version("/blog/hello-world")
            served = [_probe(p["url"], "/blog/hello-world") for p in world.pops()]
            fresh = all(hit and f"version {version}" in body for hit, body in served)
            _say(
                f"asked directly, every PoP serves version {version} as a HIT: "
                f"{'yes' if fresh else 'NO'}"
            )
    code = max(reports.exit_code(first), reports.exit_code(second), 0 if fresh else 1)
    _say("\ndemo " + ("passed" if code == 0 else "FAILED"))
    return code


if __name__ == "__main__":
    sys.exit(run_demo())
