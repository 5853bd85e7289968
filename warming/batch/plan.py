"""A batch's plan: which (URL, PoP, variant) pairs, in which phases and slices.

Pure data, stored once in Redis at publish time; every task derives its share of
the work from it, so messages stay tiny (a batch id and a slice number) and a
config change on a worker cannot change a batch already running: the plan carries
the PoPs and the CDN settings (without secrets) its purge and requests use.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from warming import defaults
from warming.settings import CdnSettings, PopSettings, Priority, Settings, Variant


class Pair(NamedTuple):
    url: str
    pop: str
    variant: str

    @property
    def key(self) -> str:
        # Pop and variant names have no spaces and filtered URLs none either.
        return f"{self.pop} {self.variant} {self.url}"


@dataclass(frozen=True)
class Plan:
    batch_id: str
    urls: tuple[str, ...]
    pops: tuple[PopSettings, ...]
    variants: tuple[Variant, ...]
    tags: tuple[str, ...] = ()
    purge: bool = True
    slice_size: int = defaults.SLICE_SIZE
    slices_in_flight: int = defaults.SLICES_IN_FLIGHT
    chunk_size: int = defaults.CHUNK_SIZE
    created_at: float = field(default_factory=time.time)
    deadline: float = 0.0
    priority: Priority = "high"
    # `cdn` as planned, secrets left out (None: planned before plans carried it; the
    # worker's own then applies), and `site.base_url`, where tag purges are sent.
    cdn: dict[str, Any] | None = None
    base_url: str = ""
    # The freshness proof verification applies ("age", "origin", "both" or "off"; see
    # VerifySettings.proof), the origin it asks, and the statuses that count as a hit.
    freshness: str = "off"
    origin_url: str | None = None
    statuses: tuple[int, ...] = defaults.HIT_STATUSES
    # Seconds until these URLs are warmed again (a schedule's interval), else None.
    refresh_s: float | None = None
    # `warm` as planned in push mode, without the token (None: every pair warmed by GET).
    warm: dict[str, Any] | None = None
    # PoPs found by DNS (warming.pop.discover): name -> the address used and how it was
    # found, or the error (that PoP's pairs then fail with it). The report shows these.
    addresses: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        batch_id: str,
        settings: Settings,
        urls: list[str],
        tags: list[str] | None = None,
        purge: bool = True,
        priority: Priority = "high",
        pops: Sequence[PopSettings] | None = None,
        addresses: dict[str, dict[str, Any]] | None = None,
    ) -> Plan:
        """The plan for `urls`; `pops` with their addresses found (default settings.pops)."""
        plan = cls(
            batch_id=batch_id,
            urls=tuple(urls),
            pops=tuple(settings.pops if pops is None else pops),
            addresses=dict(addresses or {}),
            variants=tuple(settings.site.variants),
            tags=tuple(tags or ()),
            purge=purge,
            slice_size=settings.batch.slice_size,
            slices_in_flight=settings.batch.slices_in_flight,
            chunk_size=settings.batch.chunk_size,
            priority=priority,
            cdn=planned_cdn(settings.cdn),
            base_url=settings.site.base_url,
            freshness=settings.verify.proof(purge and settings.cdn.layers != ["none"]),
            origin_url=settings.verify.origin_url,
            statuses=tuple(settings.verify.statuses),
            warm=settings.warm.planned(),
        )
        budget = settings.batch.deadline_s or plan.default_budget(
            settings.limits.prefetch_rate.per_second, settings.limits.purge_rate.per_second
        )
        budget += 0 if settings.batch.deadline_s else settings.warm.budget_s(len(urls))
        return replace(plan, deadline=plan.created_at + budget)

    def default_budget(self, prefetch_per_s: float, purge_per_s: float) -> float:
        """Seconds a healthy cluster needs, times a generous slack, plus a floor."""
        # Each pair costs a prefetch and a verification; purges one call per URL per PoP.
        ideal = 2 * self.total / min(prefetch_per_s, defaults.DEADLINE_MAX_RATE)
        if self.purge:
            ideal += len(self.urls) * len(self.pops) / purge_per_s
        return defaults.DEADLINE_FLOOR_S + defaults.DEADLINE_SLACK * ideal

    @property
    def total(self) -> int:
        return len(self.urls) * len(self.pops) * len(self.variants)

    def pop(self, name: str) -> PopSettings:
        for p in self.pops:
            if p.name == name:
                return p
        raise KeyError(name)

    def unaddressed(self, pop: str) -> str | None:
        """Why `pop` has no address in this batch (its DNS question failed), or None."""
        found = self.addresses.get(pop)
        if not found or not found.get("error"):
            return None
        return f"no address for PoP {pop}: {found.get('how', '')}: {found['error']}"

    def addressed_pops(self) -> tuple[PopSettings, ...]:
        """The PoPs requests can go to (a purge per PoP skips those without an address)."""
        return tuple(p for p in self.pops if self.unaddressed(p.name) is None)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def phases(self) -> list[tuple[PopSettings, ...]]:
        """Shields first, so edges fill from a fresh shield; empty tiers are skipped."""
        return list(self._phases)

    @functools.cached_property
    def _phases(self) -> tuple[tuple[PopSettings, ...], ...]:
        # Asked for every pair of every slice: computed once per plan.
        tiers = (
            tuple(p for p in self.pops if p.tier == "shield"),
            tuple(p for p in self.pops if p.tier != "shield"),
        )
        return tuple(t for t in tiers if t)

    @functools.cached_property
    def shield_seen_through_edges(self) -> PopSettings | None:
        """The one shield whose pairs the edges' warm answers prove, if the tiers allow it.

        An edge that fills from the shield answers with the shield's X-Cache entry before
        its own ("HIT, MISS") and the shield's Age: the shield serving the object from
        cache, seen by the edge. That is the proof for the shield's pair, so no request
        is sent for it. Only with one shield (the entry names no PoP) and X-Cache chains.
        """
        phases = self.phases()
        if len(phases) != 2 or len(phases[0]) != 1 or phases[0][0].tier != "shield":
            return None
        chains = all(p.cache_header in (None, "x-cache", "X-Cache") for p in self.pops)
        return phases[0][0] if chains else None

    @functools.cached_property
    def shield_filled_through(self) -> PopSettings | None:
        """The edge through which the shield seen through the edges is warmed, if any.

        The shield's warm GET goes to the first edge: its miss fills the shield and that
        edge at once (the object then comes to the shield as it will for every edge).
        The second edge's warm answer, filled from the shield, proves the shield, and the
        first edge's own warm answer is then a HIT that proves itself. Per URL, a shield
        and N edges cost 2N requests instead of 2N + 1: with 3 edges, 1.5 a pair, not
        1.75. Needs a second edge to see the shield through.
        """
        shield = self.shield_seen_through_edges
        if shield is None or len(self.phases()[1]) < 2:
            return None
        first, second = self.phases()[1][:2]
        if self.unaddressed(first.name) or self.unaddressed(second.name):
            return None  # an edge without an address can neither fill nor prove the shield
        return first

    @functools.cached_property
    def shield_prover(self) -> str | None:
        """The edge whose warm answers prove the shield's pairs (`upstream_of`)."""
        if self.shield_seen_through_edges is None:
            return None
        return self.phases()[1][1 if self.shield_filled_through is not None else 0].name

    def upstream_of(self, pair: Pair) -> Pair | None:
        """The shield pair that `pair`'s chunk proves: one per URL, with its prover edge."""
        shield = self.shield_seen_through_edges
        if shield is None or pair.pop != self.shield_prover:
            return None
        return Pair(pair.url, shield.name, pair.variant)

    def warmed_through(self, pair: Pair, attempt: int = 0) -> PopSettings:
        """Where `pair`'s warm request goes: its PoP, or the edge that fills its shield.

        Only a first attempt goes through the edge: a retry warms the shield directly,
        so an edge in trouble cannot fail the shield's pairs.
        """
        via = self.shield_filled_through
        shield = self.shield_seen_through_edges
        if via is not None and shield is not None and pair.pop == shield.name and attempt == 0:
            return via
        return self.pop(pair.pop)

    def chunk_members(self, phase: int, n: int, lo: int, hi: int) -> list[Pair]:
        """A chunk's pairs, then the shield pairs it proves: its verdicts, in that order."""
        pairs = self.slice(phase, n)[lo:hi]
        return [*pairs, *(u for p in pairs if (u := self.upstream_of(p)) is not None)]

    def phase_size(self, phase: int) -> int:
        return len(self.urls) * len(self.phases()[phase]) * len(self.variants)

    def n_slices(self, phase: int) -> int:
        return max(1, math.ceil(self.phase_size(phase) / self.slice_size))

    def slice(self, phase: int, n: int) -> list[Pair]:
        """Slice `n` of a phase: URL-major, so each slice spreads over every PoP."""
        pops = self.phases()[phase]
        per_url = len(pops) * len(self.variants)
        lo, hi = n * self.slice_size, min((n + 1) * self.slice_size, self.phase_size(phase))
        out = []
        for i in range(lo, hi):
            u, rest = divmod(i, per_url)
            p, v = divmod(rest, len(self.variants))
            out.append(Pair(self.urls[u], pops[p].name, self.variants[v].name))
        return out

    def locate(self, pair: Pair) -> tuple[int, int, int]:
        """(phase, slice, chunk start within the slice) of the task that warms `pair`."""
        phase, p, per_url = self._pop_index[pair.pop]
        i = self._url_index[pair.url] * per_url + p * len(self.variants)
        n, at = divmod(i + self._variant_index[pair.variant], self.slice_size)
        return phase, n, at - at % self.chunk_size

    @functools.cached_property
    def _pop_index(self) -> dict[str, tuple[int, int, int]]:
        """PoP name -> (its phase, its place in the phase, pairs per URL in that phase)."""
        return {
            pop.name: (phase, p, len(pops) * len(self.variants))
            for phase, pops in enumerate(self.phases())
            for p, pop in enumerate(pops)
        }

    @functools.cached_property
    def _variant_index(self) -> dict[str, int]:
        return {v.name: i for i, v in enumerate(self.variants)}

    @functools.cached_property
    def _url_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.urls)}

    def chunks(self, phase: int, n: int) -> list[tuple[int, int]]:
        """(lo, hi) bounds, within slice `n`, of its prefetch tasks' chunks."""
        size = min(self.slice_size, self.phase_size(phase) - n * self.slice_size)
        return [(lo, min(lo + self.chunk_size, size)) for lo in range(0, size, self.chunk_size)]

    def all_pairs(self) -> list[Pair]:
        return [
            pair
            for ph in range(len(self.phases()))
            for s in range(self.n_slices(ph))
            for pair in self.slice(ph, s)
        ]

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "batch_id": self.batch_id,
            "urls": list(self.urls),
            # Defaults left out, so a worker one release older reads a plan that uses none
            # of the keys added since (PopSettings forbids keys it does not know).
            "pops": [p.model_dump(exclude_defaults=True) for p in self.pops],
            "variants": [v.model_dump() for v in self.variants],
            "tags": list(self.tags),
            "purge": self.purge,
            "slice_size": self.slice_size,
            "slices_in_flight": self.slices_in_flight,
            "chunk_size": self.chunk_size,
            "created_at": self.created_at,
            "deadline": self.deadline,
            "priority": self.priority,
            "cdn": self.cdn,
            "base_url": self.base_url,
            "freshness": self.freshness,
            "origin_url": self.origin_url,
            "statuses": list(self.statuses),
            "refresh_s": self.refresh_s,
            "warm": self.warm,
        }
        if self.addresses:
            d["addresses"] = self.addresses
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        d = json.loads(text)
        return cls(
            batch_id=d["batch_id"],
            urls=tuple(d["urls"]),
            pops=tuple(PopSettings(**p) for p in d["pops"]),
            variants=tuple(Variant(**v) for v in d["variants"]),
            tags=tuple(d["tags"]),
            purge=d["purge"],
            slice_size=d["slice_size"],
            slices_in_flight=d.get("slices_in_flight", defaults.SLICES_IN_FLIGHT),
            chunk_size=d.get("chunk_size", defaults.CHUNK_SIZE),
            created_at=d["created_at"],
            deadline=d["deadline"],
            priority=d.get("priority", "high"),
            cdn=d.get("cdn"),
            base_url=d.get("base_url", ""),
            freshness=d.get("freshness", "off"),
            origin_url=d.get("origin_url"),
            statuses=tuple(d.get("statuses", defaults.HIT_STATUSES)),
            refresh_s=d.get("refresh_s"),
            warm=d.get("warm"),
            addresses=d.get("addresses", {}),
        )


def planned_cdn(cdn: CdnSettings) -> dict[str, Any]:
    """`cdn` as a plan stores it: the provider, each key set to other than its default,
    and no secret (a plan is readable in Redis).

    Keys left at their default are left out, so that a worker one release older, which
    may not know a key added since, still honours every plan that does not change it.
    """
    secret = {n for n, f in type(cdn).model_fields.items() if "SecretStr" in repr(f.annotation)}
    out = cdn.model_dump(mode="json", exclude=secret, exclude_defaults=True)
    return {"provider": cdn.provider, **out}
