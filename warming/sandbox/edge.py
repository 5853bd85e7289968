"""What every sandbox edge (Varnish or pure Python) offers, and what they share.

Observable behaviour, identical for both kinds:

- GET/HEAD are cached by Host + URL (+ normalized Accept-Encoding), for the
  backend's ``Cache-Control`` max-age; ``Age`` is kept.
- ``X-Cache`` is ``HIT`` when the object was already in this edge's cache, else
  ``MISS``. When the backend already sent an ``X-Cache`` (it is another edge,
  a shield), this edge appends its own: ``"<upstream>, <this edge>"``, edge-most
  last. The upstream part is stored with the object, so behind a shield the
  first GET reads ``MISS, MISS``, the next ``MISS, HIT``, and after purging
  only the edge ``HIT, MISS``.
- ``PURGE <url>`` (from 127.0.0.1 only, else 403) drops every variant of that
  URL for that Host: ``200`` with body ``Purged``.
- ``PURGE`` with header ``xkey-purge: k1 k2`` drops every object whose ``xkey``
  response header carries one of the keys: ``200``, body ``Purged <n>`` and
  header ``X-Purged: <n>``.
- With ``throttle_rps``, GETs beyond that many per second (one bucket for the
  whole edge, not per client) answer ``429`` with ``Retry-After: 1``.
- ``GET /.sandbox/health`` answers ``200 OK`` from the edge itself.
"""

from __future__ import annotations

from typing import Protocol, Self

from warming.errors import WarmingError

# Answered by the edge itself, never forwarded: lets start() wait until the
# cache process (not just the listening socket) is up.
HEALTH_PATH = "/.sandbox/health"
# The only client allowed to purge, like the ACL of a real Varnish.
PURGER = "127.0.0.1"
XKEY_PURGE_HEADER = "xkey-purge"
PURGED_HEADER = "X-Purged"
# Varnish's default_ttl, used when the backend sends no max-age.
DEFAULT_TTL_S = 3600
# Seconds a throttled client is told to wait: the bucket refills within one second.
RETRY_AFTER_S = 1


class SandboxError(WarmingError):
    """A sandbox process could not start or stop; carries the component's name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class Edge(Protocol):
    """A caching PoP in front of one backend; VarnishEdge and PyEdge both fit."""

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def port(self) -> int: ...

    def start(self) -> Self: ...

    def stop(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def chain_x_cache(upstream: str | None, hit: bool) -> str:
    """The X-Cache value to deliver: this edge's verdict appended to the upstream one."""
    own = "HIT" if hit else "MISS"
    return f"{upstream}, {own}" if upstream else own
