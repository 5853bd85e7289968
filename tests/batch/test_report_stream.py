"""Reports of any size: verdicts read a slice at a time, the JSON streamed, summaries small.

Checked against a real Redis and against the whole-batch reading (`whole`, how the
report was read before: every chunk merged in memory): the same verdicts, in the
plan's order, whatever the tiers, variants, slice and chunk sizes, and wherever each
verdict was recorded (a chunk's own field, an edge chunk proving its shield, a single
field that wins).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from warming import keys as K
from warming.batch.plan import Pair, Plan
from warming.batch.report import KEEP_NOT_HIT, build, dump, json_chunks
from warming.batch.results import chunk_field, chunk_pairs, decode_chunk, decode_one
from warming.batch.store import BatchStore, NewBatch
from warming.rediskit import text, text_map
from warming.settings import PopSettings, Variant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SITE = "https://www.example.com"


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[BatchStore]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield BatchStore(client, 3600)
    client.close()


def plan_of(
    n_urls: int, shields: int, edges: int, variants: int, slice_size: int, chunk: int
) -> Plan:
    pops = [
        PopSettings(name=f"sh{i}", url="http://198.51.100.2", tier="shield") for i in range(shields)
    ]
    pops += [PopSettings(name=f"e{i}", url="http://203.0.113.10") for i in range(edges)]
    now = time.time()
    return Plan(
        batch_id=f"b-{uuid.uuid4().hex}",
        urls=tuple(f"{SITE}/p{i}" for i in range(n_urls)),
        pops=tuple(pops),
        variants=tuple(Variant(name=f"v{i}") for i in range(variants)),
        slice_size=slice_size,
        chunk_size=chunk,
        created_at=now,
        deadline=now + 600,
    )


def verdict(pair: Pair, outcome: str, where: str) -> dict[str, Any]:
    return {
        "url": pair.url, "pop": pair.pop, "variant": pair.variant, "outcome": outcome,
        "status": 200, "cache": "HIT" if outcome == "hit" else "MISS", "attempts": 1,
        "error": None if outcome == "hit" else f"recorded in {where}", "served_by": "FRA",
    }  # fmt: skip


def record_randomly(store: BatchStore, plan: Plan, rng: random.Random) -> None:
    """Every chunk recorded (some rows left empty), then some single fields on top."""
    store.create(NewBatch(plan, {"source": "cli"}, []))
    for phase in range(len(plan.phases())):
        for n in range(plan.n_slices(phase)):
            for lo, hi in plan.chunks(phase, n):
                members = plan.chunk_members(phase, n, lo, hi)
                chunk = plan.slice(phase, n)[lo:hi]
                v = {
                    p: verdict(p, rng.choice(["hit", "hit", "miss", "failed"]), f"{phase}:{n}:{lo}")
                    for p in members
                    if rng.random() < 0.8
                }
                store.record_chunk(plan.batch_id, chunk_field(phase, n, lo), chunk, {}, v)  # type: ignore[arg-type]
    for p in rng.sample(plan.all_pairs(), k=min(7, plan.total)):
        store.record_result(plan.batch_id, p, verdict(p, "miss", "a single field"))  # type: ignore[arg-type]


def whole(store: BatchStore, plan: Plan) -> dict[str, Any]:
    """Every verdict by pair key, the old way: all chunk fields, then all single fields."""
    chunks = text_map(store.r.hgetall(K.CHUNKS.format(id=plan.batch_id)))
    out: dict[str, Any] = {}
    for phase in range(len(plan.phases())):
        for n in range(plan.n_slices(phase)):
            for field, pairs in chunk_pairs(plan, phase, n):
                raw = chunks.get(field)
                if raw:
                    out.update((p.key, v) for p, v in decode_chunk(pairs, raw).items())
    by_key = {p.key: p for p in plan.all_pairs()}
    for k, raw in store.r.hgetall(K.RESULTS.format(id=plan.batch_id)).items():
        key = text(k) or ""
        out[key] = decode_one(by_key[key], raw)
    return out


SHAPES = [
    (7, 1, 3, 1, 5, 2),  # one shield proven through the edges, slices of 5, chunks of 2
    (11, 1, 2, 2, 4, 3),  # two variants: the first edge's pair of each variant
    (9, 2, 2, 1, 6, 4),  # two shields: each proven by its own chunks
    (13, 0, 3, 2, 7, 3),  # no shield
    (5, 1, 1, 1, 500, 25),  # the defaults: everything in one slice
]


@pytest.mark.parametrize("shape", SHAPES)
def test_slice_at_a_time_reads_the_same_verdicts_in_plan_order(
    store: BatchStore, shape: tuple[int, ...]
) -> None:
    plan = plan_of(*shape)
    record_randomly(store, plan, random.Random(str(shape)))
    old = whole(store, plan)
    streamed = list(store.iter_results(plan.batch_id))
    assert [p.key for p, _ in streamed] == [p.key for p in plan.all_pairs() if p.key in old]
    assert {p.key: v for p, v in streamed} == old
    assert streamed and (len(streamed) < plan.total or plan.total <= 10)  # some left out
    slots = list(store.iter_pairs(plan.batch_id))
    assert [p for p, _ in slots] == plan.all_pairs()


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_the_streamed_json_is_the_whole_report(store: BatchStore, shape: tuple[int, ...]) -> None:
    plan = plan_of(*shape)
    record_randomly(store, plan, random.Random(f"json{shape}"))
    whole = build(store, plan.batch_id)
    assert whole is not None
    pieces = json_chunks(store, plan.batch_id)
    assert pieces is not None
    text = "".join(pieces)
    assert json.loads(text) == json.loads(dump(whole))
    assert text.count("\n    {") == len(whole["results"])  # one result per line


def test_a_summary_counts_every_pair_and_keeps_the_first_not_hit(store: BatchStore) -> None:
    plan = plan_of(40, 1, 3, 1, 10, 5)
    record_randomly(store, plan, random.Random("summary"))
    whole = build(store, plan.batch_id)
    small = build(store, plan.batch_id, keep=3)
    assert whole is not None and small is not None
    bad = [r for r in whole["results"] if r["outcome"] != "hit"]
    assert len(bad) > 3
    assert small["results"] == bad[:3]
    assert small["results_omitted"] == len(whole["results"]) - 3
    assert small["counts"] == whole["counts"]
    by_pop = {p.name: {"hit": 0, "miss": 0, "failed": 0} for p in plan.pops}
    for r in whole["results"]:
        by_pop[r["pop"]][r["outcome"]] += 1
    assert small["by_pop"] == whole["by_pop"] == by_pop
    assert whole["served_by"] == {pop: {"FRA": c["hit"]} for pop, c in by_pop.items() if c["hit"]}
    assert KEEP_NOT_HIT >= 100


def test_an_unknown_batch_has_no_stream(store: BatchStore) -> None:
    assert json_chunks(store, "nope") is None


def test_a_finished_batch_streams_a_verdict_for_every_pair(store: BatchStore) -> None:
    plan = plan_of(30, 1, 3, 1, 8, 3)
    record_randomly(store, plan, random.Random("finish"))
    assert store.finish(plan.batch_id, note="deadline passed")
    text = "".join(json_chunks(store, plan.batch_id) or [])
    rep = json.loads(text)
    assert len(rep["results"]) == plan.total == rep["counts"]["total"]
    assert rep["counts"]["pending"] == 0
    assert sum(rep["counts"][k] for k in ("hit", "miss", "failed")) == plan.total
    unverified = [r for r in rep["results"] if (r["error"] or "").startswith("never prefetched")]
    assert unverified and all("deadline passed" in r["error"] for r in unverified)


def test_warm_records_are_kept_only_for_pairs_still_to_judge(store: BatchStore) -> None:
    plan = plan_of(4, 0, 1, 1, 500, 25)
    store.create(NewBatch(plan, {"source": "cli"}, []))
    pairs = plan.slice(0, 0)
    warm = {
        p: {"url": p.url, "pop": p.pop, "variant": p.variant, "outcome": "warmed"} for p in pairs
    }
    judged = {pairs[0]: verdict(pairs[0], "hit", "chunk")}
    store.record_chunk(plan.batch_id, chunk_field(0, 0, 0), pairs, warm, judged)  # type: ignore[arg-type]
    kept = store.warm_records(plan.batch_id, pairs)
    assert kept[0] is None and all(k is not None for k in kept[1:])
    assert store.progress(plan.batch_id) == {"warmed": 4, "verified": 1}
    store.forget_warm(plan.batch_id, pairs)
    assert store.warm_records(plan.batch_id, pairs) == [None] * 4
    assert store.progress(plan.batch_id)["warmed"] == 4  # the count of answers stays
