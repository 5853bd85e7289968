"""`warm --after-deploy`: wait until the origin serves the new build, then warm.

The build is read from `deploy.version_url` (its body, or `deploy.version_header`),
asked at `deploy.origin_url` (else `verify.origin_url`, else the first edge PoP) with
the site's `Host`, like every request warming sends. The new build is the one named
(`--after-deploy v42`, e.g. the commit a CI job deployed), or else any build other
than the one served when the command started.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from warming.errors import RejectedURL, WarmingError
from warming.pop.client import PopClient
from warming.pop.discover import Discoverer
from warming.settings import PopSettings, Settings
from warming.sources.filter import URLFilter

# The first bytes of a version document are enough: a build id, a JSON health answer.
MAX_VERSION_BYTES = 4096


def wait_for_build(
    settings: Settings,
    client: PopClient,
    url_filter: URLFilter,
    expected: str | None,
    say: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Block until the new build is served; its version. WarmingError after the timeout."""
    d = settings.deploy
    if not d.version_url:
        raise WarmingError(
            "--after-deploy needs deploy.version_url (and optionally version_header)"
        )
    try:
        url = (
            url_filter.check(d.version_url)
            if "://" in d.version_url
            else url_filter.join(d.version_url)
        )
    except RejectedURL as e:
        raise WarmingError(f"deploy.version_url {e.url}: {e.reason}") from None
    where = d.origin_url or settings.verify.origin_url
    pop = (
        PopSettings(name="origin", url=where)
        if where
        else Discoverer(settings.site, settings.discover).reader(settings.pops)
    )
    start = time.monotonic()
    old = None if expected else _version(client, pop, url, d.version_header)
    say(f"waiting for build {expected}" if expected else f"waiting for a build other than {old}")
    while True:
        now = _version(client, pop, url, d.version_header)
        if (expected is not None and now == expected) or (expected is None and now != old):
            say(f"build {now} is served: warming")
            return now
        waited = time.monotonic() - start
        if waited + d.poll_s > d.timeout_s:
            raise WarmingError(
                f"after {waited:.0f} s {url} still names build {now!r}"
                + (f", not {expected!r}" if expected else " (unchanged)")
                + f" (deploy.timeout_s = {d.timeout_s:g})"
            )
        sleep(d.poll_s)


def _version(client: PopClient, pop: PopSettings, url: str, header: str | None) -> str:
    try:
        resp = client.request("GET", pop, url, {"Cache-Control": "no-cache"})
    except WarmingError as e:
        return f"(unreachable: {e})"  # mid-deploy an origin may refuse connections
    try:
        if resp.status_code != 200:
            return f"(status {resp.status_code})"
        if header:
            return resp.headers.get(header, "(no header)").strip()
        return (
            resp.raw.read(MAX_VERSION_BYTES, decode_content=True).decode(errors="replace").strip()
        )
    finally:
        resp.close()
