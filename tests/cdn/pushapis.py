"""Doubles of push (prefetch) APIs: Gcore's, and a generic preload API, for `Double`.

Gcore's contract, from its API reference "Prefetch content" and its prefetch guide:
`POST /cdn/resources/{resource_id}/prefetch` with `Authorization: APIKey <token>` and a
JSON body `{"paths": [...]}` (paths "specified without a domain name"), at most 100
paths per request, one request per resource per minute. A bad token is answered 401, a
body that does not validate 400, another path 404, another method 405; a request
inside the minute 429 with Retry-After (an answer, not a breach: counted in `throttled`).

An accepted push lands asynchronously, as on the real CDN: a thread GETs each path
through each PoP of the test world with the site's Host, so the PoPs really cache it.
`drop` names paths whose push is accepted but never lands (an edge that missed it).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from tests.cdn.doubles import Answer, Seen, json_body

GCORE_MAX_PATHS = 100


class Lander:
    """GETs pushed paths through every PoP, after a short delay, in a thread per push."""

    def __init__(self, pops: Sequence[str], host: str, delay_s: float = 0.2) -> None:
        self.pops, self.host, self.delay_s = list(pops), host, delay_s
        self.landed: list[tuple[str, str]] = []  # (PoP URL, path)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def land(self, paths: Sequence[str]) -> None:
        t = threading.Thread(target=self._run, args=(list(paths),), daemon=True)
        self._threads.append(t)
        t.start()

    def _run(self, paths: list[str]) -> None:
        time.sleep(self.delay_s)  # the vendor answered first; its fetches come after
        for path in paths:
            for pop in self.pops:
                r = requests.get(pop + path, headers={"Host": self.host}, timeout=10)
                r.close()
                with self._lock:
                    self.landed.append((pop, path))

    def wait(self, timeout_s: float = 10.0) -> None:
        for t in self._threads:
            t.join(timeout_s)


class GcorePrefetch:
    """Gcore's prefetch API for one CDN resource, as `Double(handle)`."""

    def __init__(
        self,
        token: str,
        resource_id: int,
        lander: Lander | None = None,
        window_s: float = 60.0,
        drop: Callable[[str], bool] = lambda path: False,
    ) -> None:
        self.token, self.resource_id, self.lander = token, resource_id, lander
        self.window_s, self.drop = window_s, drop
        self.accepted: list[list[str]] = []
        self.accepted_at: list[float] = []
        self.throttled = 0
        self._lock = threading.Lock()

    def __call__(self, seen: Seen) -> Answer:
        if seen.path != f"/cdn/resources/{self.resource_id}/prefetch":
            return Answer(404, {"detail": "Not found."})
        if seen.method != "POST":
            return Answer(405, {"detail": f'Method "{seen.method}" not allowed.'})
        scheme, _, token = seen.headers.get("authorization", "").partition(" ")
        if not scheme:
            return Answer(401, {"detail": "Authentication credentials were not provided."})
        if scheme.lower() != "apikey" or token != self.token:
            return Answer(401, {"detail": f"Bad permanent token: {token[:4]}"})
        body = json_body(seen)
        bad = _invalid(body)
        if bad:
            return Answer(400, {"errors": {"paths": [bad]}})
        paths: list[str] = body["paths"]
        with self._lock:
            now = time.monotonic()
            if self.accepted_at and now - self.accepted_at[-1] < self.window_s:
                self.throttled += 1
                wait = math.ceil(self.window_s - (now - self.accepted_at[-1]))
                return Answer(429, {"detail": "Request was throttled."}, {"Retry-After": str(wait)})
            self.accepted_at.append(now)
            self.accepted.append(paths)
        if self.lander is not None:
            self.lander.land([p for p in paths if not self.drop(p)])
        return Answer(201)

    @property
    def paths(self) -> list[str]:
        return [p for call in self.accepted for p in call]


def _invalid(body: Any) -> str | None:
    """Why Gcore's serializer refuses `body`, or None."""
    if not isinstance(body, dict) or "paths" not in body:
        return "This field is required."
    if set(body) != {"paths"}:
        return f"Unknown fields: {sorted(set(body) - {'paths'})}"
    paths = body["paths"]
    if not isinstance(paths, list) or not paths:
        return "This list may not be empty."
    if not all(isinstance(p, str) and p.strip() for p in paths):
        return "This field may not be blank."
    if any("://" in p or not p.startswith("/") for p in paths):
        return "Paths to the files should be specified without a domain name."
    if len(paths) > GCORE_MAX_PATHS:
        return f"Ensure this field has no more than {GCORE_MAX_PATHS} elements."
    return None


class PreloadApi:
    """A generic preload API: `X-Api-Key: <token>` and `{"type": "preload", "data":
    {"urls": [...]}}` of full URLs, at most `max_items` per call."""

    def __init__(self, token: str, max_items: int, lander: Lander | None = None) -> None:
        self.token, self.max_items, self.lander = token, max_items, lander
        self.accepted: list[list[str]] = []

    def __call__(self, seen: Seen) -> Answer:
        if seen.method != "PUT" or seen.path != "/v2/preload":
            return Answer(404 if seen.path != "/v2/preload" else 405, {"error": "no such route"})
        if seen.headers.get("x-api-key") != self.token:
            return Answer(403, {"error": "bad key"})
        body = json_body(seen)
        ok = (
            isinstance(body, dict)
            and body.get("type") == "preload"
            and isinstance(body.get("data"), dict)
            and set(body["data"]) == {"urls"}
            and isinstance(body["data"]["urls"], list)
            and all(isinstance(u, str) and u.startswith("http") for u in body["data"]["urls"])
        )
        if not ok:
            return Answer(400, {"error": "body must be {type: preload, data: {urls: [URL]}}"})
        urls: list[str] = body["data"]["urls"]
        if len(urls) > self.max_items:
            return Answer(413, {"error": f"at most {self.max_items} URLs"})
        self.accepted.append(urls)
        if self.lander is not None:
            self.lander.land(["/" + u.split("/", 3)[3] if u.count("/") >= 3 else "/" for u in urls])
        return Answer(202, {"id": len(self.accepted)})
