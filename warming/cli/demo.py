"""`warming demo`: the whole system on this machine, nothing to configure.

A local origin, a shield and two edge PoPs (real Varnish when installed, else
small Python caching proxies with the same behaviour), an embedded Redis and an
in-process Celery worker. It warms a handful of pages, proves every PoP serves
them as HITs, then publishes a change and shows the purge-warm-verify cycle
delivering the new content. The shim runs beside them, so each batch's report page
and the metrics can be opened while it runs (at a terminal, until Enter is pressed).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from warming.batch import report as reports
from warming.batch.publish import WarmRequest, publish
from warming.cli.embedded import running
from warming.cli.show import wait
from warming.pop.cachestatus import cache_status
from warming.runtime import Runtime
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


@contextmanager
def _shim(rt: Runtime) -> Iterator[str]:
    """The webhook shim on a free local port, in a thread: its base URL."""
    import uvicorn

    from warming.shim.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="demo-shim", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


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
        with running(settings) as rt, _shim(rt) as shim:
            _say(f"shim    {shim}  (batches: {shim}/batches, metrics: {shim}/metrics)")
            _say("\n1) warm every page through every PoP, then verify each is a HIT")
            plan = publish(rt, WarmRequest(paths=PAGES + REFUSED, trigger={"source": "cli"}))
            first = wait(rt.store, plan.batch_id)
            _say(reports.render(first))
            _say(f"  report page: {shim}/batches/{plan.batch_id}")

            _say("\n2) the CMS publishes a change to /blog/hello-world")
            world.origin.bump("/blog/hello-world")
            plan = publish(rt, WarmRequest(paths=["/blog/hello-world"], trigger={"source": "cli"}))
            second = wait(rt.store, plan.batch_id)
            _say(reports.render(second))
            _say(f"  report page: {shim}/batches/{plan.batch_id}")
            version = world.origin.version("/blog/hello-world")
            served = [_probe(p["url"], "/blog/hello-world") for p in world.pops()]
            fresh = all(hit and f"version {version}" in body for hit, body in served)
            _say(
                f"asked directly, every PoP serves version {version} as a HIT: "
                f"{'yes' if fresh else 'NO'}"
            )
            _say(f"\nmetrics: {shim}/metrics   batches: {shim}/batches (open them in a browser)")
            if sys.stdin.isatty():
                input("the demo keeps running for them: press Enter to stop ")
    code = max(reports.exit_code(first), reports.exit_code(second), 0 if fresh else 1)
    _say("\ndemo " + ("passed" if code == 0 else "FAILED"))
    return code


if __name__ == "__main__":
    sys.exit(run_demo())
