"""A batch's plan: phases, slices, serialization, deadline budget and pair keys."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from warming import defaults
from warming.batch.plan import Pair, Plan
from warming.settings import PopSettings, Settings, Variant

pytestmark = pytest.mark.timeout(60)

SITE = "https://www.example.com"


def make_pops(shields: int, edges: int) -> tuple[PopSettings, ...]:
    # Interleaved on purpose: shields must come first however the config lists them.
    out: list[PopSettings] = []
    for i in range(max(shields, edges)):
        if i < edges:
            out.append(PopSettings(name=f"edge{i}", url=f"http://203.0.113.{i + 1}"))
        if i < shields:
            out.append(
                PopSettings(name=f"shield{i}", url=f"http://198.51.100.{i + 1}", tier="shield")
            )
    return tuple(out)


def make_variants(n: int) -> tuple[Variant, ...]:
    return tuple(Variant(name=f"v{i}", headers={"Accept-Encoding": f"enc{i}"}) for i in range(n))


def make_plan(
    n_urls: int, shields: int, edges: int, n_variants: int = 1, slice_size: int = 500
) -> Plan:
    return Plan(
        batch_id="b1",
        urls=tuple(f"{SITE}/page/{i}" for i in range(n_urls)),
        pops=make_pops(shields, edges),
        variants=make_variants(n_variants),
        slice_size=slice_size,
        created_at=1_700_000_000.0,
    )


def slices_of(plan: Plan, phase: int) -> list[list[Pair]]:
    return [plan.slice(phase, n) for n in range(plan.n_slices(phase))]


# -- phases ---------------------------------------------------------------------


def test_shields_come_first_whatever_the_config_order() -> None:
    plan = make_plan(3, shields=2, edges=3)
    phases = plan.phases()
    assert [[p.name for p in ph] for ph in phases] == [
        ["shield0", "shield1"],
        ["edge0", "edge1", "edge2"],
    ]


@pytest.mark.parametrize(("shields", "edges"), [(0, 3), (2, 0)])
def test_an_empty_tier_is_no_phase(shields: int, edges: int) -> None:
    plan = make_plan(2, shields=shields, edges=edges)
    phases = plan.phases()
    assert len(phases) == 1
    assert len(phases[0]) == shields + edges
    assert plan.all_pairs() == [pair for s in slices_of(plan, 0) for pair in s]


def test_every_pop_counts_in_the_total() -> None:
    plan = make_plan(4, shields=1, edges=2, n_variants=2)
    assert plan.total == 4 * 3 * 2
    assert plan.phase_size(0) + plan.phase_size(1) == plan.total


# -- slicing --------------------------------------------------------------------


@given(
    n_urls=st.integers(0, 25),
    shields=st.integers(0, 3),
    edges=st.integers(0, 4),
    n_variants=st.integers(1, 3),
    slice_size=st.integers(1, 40),
)
def test_slices_cover_every_pair_exactly_once(
    n_urls: int, shields: int, edges: int, n_variants: int, slice_size: int
) -> None:
    if shields + edges == 0:
        edges = 1
    plan = make_plan(n_urls, shields, edges, n_variants, slice_size)
    expected = {
        Pair(u, p.name, v.name) for u in plan.urls for p in plan.pops for v in plan.variants
    }
    seen: list[Pair] = []
    for phase, pops in enumerate(plan.phases()):
        names = {p.name for p in pops}
        slices = slices_of(plan, phase)
        assert len(slices) == max(1, -(-plan.phase_size(phase) // slice_size))
        for n, sl in enumerate(slices):
            assert len(sl) <= slice_size
            if n < len(slices) - 1:
                assert len(sl) == slice_size, "only the last slice of a phase may be short"
            assert {pair.pop for pair in sl} <= names, "a slice strays out of its phase"
            seen += sl
    assert len(seen) == len(expected) == plan.total
    assert set(seen) == expected
    assert plan.all_pairs() == seen
    # Shields strictly before edges.
    tiers = ["shield" if pair.pop.startswith("shield") else "edge" for pair in seen]
    assert tiers == sorted(tiers, key=lambda t: t != "shield")


@given(
    n_urls=st.integers(1, 30),
    edges=st.integers(1, 6),
    n_variants=st.integers(1, 3),
    slice_size=st.integers(1, 60),
)
def test_each_slice_spreads_over_the_pops(
    n_urls: int, edges: int, n_variants: int, slice_size: int
) -> None:
    plan = make_plan(n_urls, 0, edges, n_variants, slice_size)
    names = [p.name for p in plan.pops]
    for sl in slices_of(plan, 0):
        per_pop = Counter(pair.pop for pair in sl)
        counts = [per_pop.get(n, 0) for n in names]
        # URL-major order: no PoP gets more than one URL's worth of pairs over another.
        assert max(counts) - min(counts) <= n_variants
        if len(sl) >= edges * n_variants:
            assert set(per_pop) == set(names)


def test_a_slice_of_a_big_phase_hits_every_pop_evenly() -> None:
    plan = make_plan(100, 0, 5, slice_size=50)
    for sl in slices_of(plan, 0):
        assert Counter(pair.pop for pair in sl) == {f"edge{i}": 10 for i in range(5)}


def test_empty_batch_has_one_empty_slice() -> None:
    plan = make_plan(0, 1, 1)
    assert plan.total == 0
    assert [plan.n_slices(0), plan.n_slices(1)] == [1, 1]
    assert plan.all_pairs() == []


# -- serialization ------------------------------------------------------------


def test_json_round_trip_keeps_every_field() -> None:
    plan = Plan(
        batch_id="b-rt",
        urls=(f"{SITE}/a?x=1&y=%C3%BC", f"{SITE}/b;c"),
        pops=(
            PopSettings(name="sh", url="http://198.51.100.2:8080", tier="shield", rate="5/s"),
            PopSettings(name="fra", url="https://203.0.113.10", cache_header="cf-cache-status"),
        ),
        variants=(Variant(name="gz", headers={"Accept-Encoding": "gzip"}), Variant(name="id")),
        tags=("post-1", "home"),
        purge=False,
        slice_size=7,
        created_at=1_700_000_123.456,
        deadline=1_700_000_999.5,
        priority="bulk",
    )
    text = plan.to_json()
    json.loads(text)  # plain JSON, storable as one Redis hash field
    again = Plan.from_json(text)
    assert again == plan
    assert Plan.from_json(text.encode()) == plan
    assert again.all_pairs() == plan.all_pairs()


def test_from_json_defaults_priority_for_old_plans() -> None:
    d = json.loads(make_plan(1, 0, 1).to_json())
    del d["priority"]
    assert Plan.from_json(json.dumps(d)).priority == "high"


# -- deadline budget ------------------------------------------------------------


def test_default_budget_formula() -> None:
    plan = make_plan(10, 1, 2, n_variants=2)  # 60 pairs, 30 purges
    got = plan.default_budget(prefetch_per_s=10.0, purge_per_s=5.0)
    ideal = 2 * 60 / 10.0 + 10 * 3 / 5.0
    assert got == pytest.approx(defaults.DEADLINE_FLOOR_S + defaults.DEADLINE_SLACK * ideal)


def test_default_budget_grows_with_pairs_and_shrinks_with_rate() -> None:
    small, big = make_plan(10, 0, 2), make_plan(1000, 0, 2)
    assert big.default_budget(10, 10) > small.default_budget(10, 10)
    assert big.default_budget(100, 10) < big.default_budget(10, 10)
    assert big.default_budget(10, 100) < big.default_budget(10, 10)
    assert small.default_budget(1e9, 1e9) >= defaults.DEADLINE_FLOOR_S


def test_default_budget_counts_purges_only_when_purging() -> None:
    plan = make_plan(100, 0, 3)
    no_purge = replace(plan, purge=False)
    assert no_purge.default_budget(10, 1) < plan.default_budget(10, 1)


def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **batch: float) -> Settings:
    for name in [k for k in os.environ if k.startswith("WARMING_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WARMING_CONFIG", str(tmp_path / "absent.toml"))
    return Settings.model_validate(
        {
            "site": {"base_url": SITE},
            "pops": [{"name": "fra", "url": "http://203.0.113.10"}],
            "limits": {"prefetch": "20/s", "purge": "600/m"},
            "batch": batch,
        }
    )


def test_build_uses_the_rate_limits_for_the_deadline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _settings(monkeypatch, tmp_path)
    plan = Plan.build("b-build", settings, [f"{SITE}/x", f"{SITE}/y"], tags=["t"])
    assert plan.deadline - plan.created_at == pytest.approx(plan.default_budget(20.0, 10.0))
    assert (plan.tags, plan.purge, plan.priority) == (("t",), True, "high")


def test_build_honours_a_configured_deadline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _settings(monkeypatch, tmp_path, deadline_s=42.0)
    plan = Plan.build("b-dl", settings, [f"{SITE}/x"])
    assert plan.deadline - plan.created_at == pytest.approx(42.0)


# -- pair keys -----------------------------------------------------------------

ODD_URLS = [
    f"{SITE}/a%20b?x=1&y=%E2%9C%93#frag",
    f"{SITE}/\u00fc/\u65e5\u672c?q=a+b",
    f"{SITE}/path;param=1/..//x?",
    f"{SITE}/tab\there\nnewline",
    f"{SITE}/\"quotes'\\back",
    "",
]


@pytest.mark.parametrize("url", ODD_URLS)
def test_pair_key_round_trip_odd_urls(url: str) -> None:
    pair = Pair(url, "fra-1.b_2", "br")
    # The key is the pair's identity in Redis: it must split back into the same pair.
    assert pair.key.split(" ", 2) == [pair.pop, pair.variant, pair.url]


@given(
    url=st.text(st.characters(blacklist_characters=" ", blacklist_categories=("Cs",))),
    pop=st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z"),
    variant=st.text(
        st.characters(blacklist_characters=" ", blacklist_categories=("Cs",)), min_size=1
    ),
)
def test_pair_key_round_trip(url: str, pop: str, variant: str) -> None:
    pair = Pair(url, pop, variant)
    assert pair.key.split(" ", 2) == [pair.pop, pair.variant, pair.url]


def test_variant_names_that_would_make_pair_keys_collide_are_refused() -> None:
    # Pair.key joins pop, variant and URL with spaces: a space in a name would let
    # ("gzip br", "/x") and ("gzip", "br /x") share one Redis field.
    with pytest.raises(ValidationError):
        Variant(name="gzip br")
    assert Pair(f"{SITE}/x", "fra", "gzip").key != Pair(f"{SITE}/x", "fra", "br").key


# -- a shield warmed through the edges ---------------------------------------------------


@pytest.mark.parametrize(
    ("shields", "edges", "through", "prover"),
    [(1, 3, "edge0", "edge1"), (1, 2, "edge0", "edge1"), (1, 1, None, "edge0"), (2, 3, None, None)],
)
def test_a_shield_is_filled_through_the_first_edge_and_proven_by_the_second(
    shields: int, edges: int, through: str | None, prover: str | None
) -> None:
    plan = make_plan(3, shields=shields, edges=edges)
    filled = plan.shield_filled_through
    assert (filled.name if filled else None, plan.shield_prover) == (through, prover)
    shield_pair = Pair(plan.urls[1], "shield0", "v0")
    first = plan.warmed_through(shield_pair, attempt=0)
    assert first.name == (through or "shield0")
    assert plan.warmed_through(shield_pair, attempt=1).name == "shield0"  # a retry goes direct
    edge_pair = Pair(plan.urls[1], "edge0", "v0")
    assert plan.warmed_through(edge_pair).name == "edge0"
    proving = [p for p in plan.slice(1, 0) if plan.upstream_of(p) is not None] if edges else []
    if prover is None:
        assert proving == []
    else:  # one edge pair per URL and variant proves the shield's
        assert {p.pop for p in proving} == {prover}
        assert [plan.upstream_of(p) for p in proving] == [
            Pair(u, "shield0", "v0") for u in plan.urls
        ]


@given(
    n_urls=st.integers(1, 30),
    edges=st.integers(1, 4),
    n_variants=st.integers(1, 3),
    slice_size=st.integers(1, 40),
    chunk=st.integers(1, 9),
)
def test_locate_names_the_chunk_that_warms_each_pair(
    n_urls: int, edges: int, n_variants: int, slice_size: int, chunk: int
) -> None:
    from dataclasses import replace

    plan = replace(make_plan(n_urls, 1, edges, n_variants, slice_size), chunk_size=chunk)
    for phase in range(len(plan.phases())):
        for n in range(plan.n_slices(phase)):
            for lo, hi in plan.chunks(phase, n):
                for pair in plan.slice(phase, n)[lo:hi]:
                    assert plan.locate(pair) == (phase, n, lo)


def test_a_limit_no_cluster_reaches_does_not_shrink_the_budget() -> None:
    big = make_plan(250, shields=1, edges=3)
    at_cap = big.default_budget(defaults.DEADLINE_MAX_RATE, 10)
    assert big.default_budget(100_000, 10) == at_cap == big.default_budget(1e9, 10)
    assert big.default_budget(defaults.DEADLINE_MAX_RATE / 2, 10) > at_cap


def test_a_shield_is_warmed_directly_when_its_edges_have_no_address() -> None:
    from dataclasses import replace

    plan = make_plan(3, shields=1, edges=3)
    gone = replace(plan, addresses={"edge0": {"error": "NXDOMAIN", "how": "asked"}})
    assert plan.shield_filled_through is not None and gone.shield_filled_through is None
    assert gone.shield_prover == "edge0"
    assert gone.warmed_through(Pair(plan.urls[0], "shield0", "v0")).name == "shield0"
