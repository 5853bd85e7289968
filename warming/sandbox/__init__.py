"""A local world for demos, integration tests and benchmarks.

A real HTTP origin in a thread and real Varnish PoPs (or, where varnishd is
missing, pure-Python caching proxies with the same observable behaviour), all
on 127.0.0.1 with random ports, so that several worlds can run at once.
"""

from __future__ import annotations

from warming.sandbox.edge import HEALTH_PATH, Edge, SandboxError
from warming.sandbox.origin import Origin
from warming.sandbox.pyedge import PyEdge
from warming.sandbox.varnish import VarnishEdge, varnish_available
from warming.sandbox.world import World, start_world

__all__ = [
    "HEALTH_PATH",
    "Edge",
    "Origin",
    "PyEdge",
    "SandboxError",
    "VarnishEdge",
    "World",
    "start_world",
    "varnish_available",
]
