"""An origin, an optional shield and N edges, started and stopped together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from warming.sandbox.edge import Edge
from warming.sandbox.origin import Origin
from warming.sandbox.pyedge import PyEdge
from warming.sandbox.varnish import VarnishEdge, varnish_available

LOOPBACK = "127.0.0.1"
SHIELD_NAME = "shield"


@dataclass
class World:
    """A running local world; ``kind`` says which edge implementation it uses."""

    origin: Origin
    shield: Edge | None = None
    edges: list[Edge] = field(default_factory=list)
    kind: Literal["varnish", "python"] = "varnish"

    def pops(self) -> list[dict[str, str]]:
        """The PoPs, shield first, in the shape of ``Settings(pops=...)``."""
        pops = []
        if self.shield is not None:
            pops.append({"name": self.shield.name, "url": self.shield.url, "tier": "shield"})
        pops += [{"name": e.name, "url": e.url, "tier": "edge"} for e in self.edges]
        return pops

    def stop(self) -> None:
        """Stop everything (edges first, origin last); safe to call twice."""
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(self.edges))) as pool:
                stopping = [pool.submit(edge.stop) for edge in self.edges]
            for future in stopping:
                future.result()
            if self.shield is not None:
                self.shield.stop()
        finally:
            self.origin.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_world(
    n_edges: int = 2,
    shield: bool = False,
    throttle_rps: int | None = None,
    latency_s: float = 0.0,
    prefer_varnish: bool = True,
    quirks: dict[str, str] | None = None,
    storage: str | None = None,
) -> World:
    """Start an origin, a shield if asked, and ``n_edges`` edges named edge1, edge2, ...

    Edges fetch from the shield when there is one, else from the origin; only
    edges are throttled. Varnish is used when available and preferred, else
    PyEdge. If anything fails to start, whatever did start is stopped. ``quirks`` makes
    named PoPs misbehave on PURGE (Varnish only; see ``warming.sandbox.varnish.QUIRKS``).
    ``storage`` is each Varnish's ``-s`` (default malloc,64m).
    """
    quirks = quirks or {}
    extra: dict[str, Any] = {"storage": storage} if storage else {}
    use_varnish = prefer_varnish and varnish_available()
    if (quirks or storage) and not use_varnish:
        raise ValueError("PoP quirks and storage need Varnish (varnishd is not available)")
    kind: type[VarnishEdge] | type[PyEdge] = VarnishEdge if use_varnish else PyEdge
    world = World(origin=Origin(latency_s=latency_s), kind="varnish" if use_varnish else "python")
    try:
        world.origin.start()
        upstream = world.origin.port
        if shield:
            world.shield = kind(
                SHIELD_NAME, (LOOPBACK, upstream), **_quirk(quirks, SHIELD_NAME), **extra
            )
            upstream = world.shield.start().port
        world.edges = [
            kind(
                f"edge{i}",
                (LOOPBACK, upstream),
                throttle_rps=throttle_rps,
                **_quirk(quirks, f"edge{i}"),
                **extra,
            )
            for i in range(1, n_edges + 1)
        ]
        # Side by side: each varnishd spends most of its start compiling VCL.
        with ThreadPoolExecutor(max_workers=max(1, n_edges)) as pool:
            futures = [pool.submit(edge.start) for edge in world.edges]
            wait(futures)
        for future in futures:
            future.result()
    except BaseException:
        world.stop()
        raise
    return world


def _quirk(quirks: dict[str, str], name: str) -> dict[str, Any]:
    # Only VarnishEdge takes a quirk (start_world refuses quirks without Varnish).
    return {"quirk": quirks[name]} if name in quirks else {}
