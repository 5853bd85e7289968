"""BatchStore against a real Redis: the report's shape, finishing, guards and deadlines."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis

from warming import keys as K
from warming.batch.plan import Pair, Plan
from warming.batch.records import failed as failed_record
from warming.batch.report import build
from warming.batch.store import BatchStore, NewBatch
from warming.settings import PopSettings, Variant
from warming.sources.filter import Dropped

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SITE = "https://www.example.com"
TTL_S = 3600
PUBLIC = {"url", "pop", "outcome", "status", "cache", "attempts", "error"}


@pytest.fixture(scope="module")
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def store(r: redis.Redis) -> BatchStore:
    return BatchStore(r, TTL_S)


def new_plan(
    n_urls: int = 2,
    shield: bool = True,
    deadline_in_s: float = 600.0,
    slice_size: int = 500,
) -> Plan:
    pops = [PopSettings(name="fra", url="http://203.0.113.10")]
    if shield:
        pops.insert(0, PopSettings(name="sh", url="http://198.51.100.2", tier="shield"))
    now = time.time()
    return Plan(
        batch_id=f"b-{uuid.uuid4().hex}",
        urls=tuple(f"{SITE}/p{i}" for i in range(n_urls)),
        pops=tuple(pops),
        variants=(Variant(),),
        slice_size=slice_size,
        created_at=now,
        deadline=now + deadline_in_s,
    )


def created(store: BatchStore, plan: Plan, **kw: Any) -> Plan:
    store.create(
        NewBatch(
            plan,
            kw.get("trigger", {"source": "cli"}),
            [
                Dropped(**d)
                for d in kw.get(
                    "dropped", [{"url": f"{SITE}/preview/x", "reason": "denied path /preview"}]
                )
            ],
        )
    )
    return plan


def warm_ok(pair: Pair, etag: str = '"e1"') -> dict[str, Any]:
    return {
        "url": pair.url,
        "pop": pair.pop,
        "variant": pair.variant,
        "outcome": "warmed",
        "status": 200,
        "cache": "MISS",
        "etag": etag,
        "digest": "d",
        "attempts": 1,
        "error": None,
    }


def verdict(pair: Pair, outcome: str, error: str | None = None) -> dict[str, Any]:
    return {**warm_ok(pair), "outcome": outcome, "cache": "HIT", "error": error}


def iso_ok(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    assert ts.tzinfo is not None, f"{text} has no time zone"
    return ts


# -- creation and the report ------------------------------------------------------


def test_new_batch_report_has_the_spec_shape(store: BatchStore) -> None:
    plan = created(store, new_plan(), trigger={"source": "webhook:generic", "id": "msg_1"})
    rep = build(store, plan.batch_id)
    assert rep is not None
    spec_keys = {"batch_id", "state", "trigger", "counts", "results", "dropped"}
    assert spec_keys | {"started_at", "finished_at"} <= set(rep)
    assert rep["batch_id"] == plan.batch_id
    assert rep["state"] == "queued"
    assert rep["trigger"] == {"source": "webhook:generic", "id": "msg_1"}
    counts = {k: rep["counts"][k] for k in ("total", "hit", "miss", "failed", "dropped")}
    assert counts == {"total": 4, "hit": 0, "miss": 0, "failed": 0, "dropped": 1}
    assert rep["results"] == []
    assert rep["dropped"] == [{"url": f"{SITE}/preview/x", "reason": "denied path /preview"}]
    started = iso_ok(rep["started_at"])
    assert abs(started.timestamp() - plan.created_at) < 0.01
    assert rep["finished_at"] is None
    json.dumps(rep)  # served as JSON as is
    assert store.state(plan.batch_id) == "queued"
    assert store.plan(plan.batch_id) == plan


def test_unknown_batch(store: BatchStore) -> None:
    assert build(store, "b-nope") is None
    assert store.state("b-nope") is None
    assert store.is_final("b-nope")
    with pytest.raises(KeyError):
        store.plan("b-nope")
    assert store.finish("b-nope") is False


def test_results_in_plan_order_with_public_fields(store: BatchStore) -> None:
    plan = created(store, new_plan())
    pairs = plan.all_pairs()
    for p in reversed(pairs):  # written out of order
        store.record_result(plan.batch_id, p, {**verdict(p, "hit"), "digest": "internal"})
    rep = build(store, plan.batch_id)
    assert rep is not None
    assert [(x["url"], x["pop"]) for x in rep["results"]] == [(p.url, p.pop) for p in pairs]
    for x in rep["results"]:
        assert set(x) >= PUBLIC
        assert "digest" not in x
        assert x["outcome"] in {"hit", "miss", "failed"}
    assert rep["counts"]["hit"] == 4


# -- finishing -----------------------------------------------------------------------


def test_finish_fills_every_missing_pair_with_a_reason(store: BatchStore, r: redis.Redis) -> None:
    plan = created(store, new_plan(n_urls=3))
    bid = plan.batch_id
    pairs = plan.all_pairs()
    hit, miss, warmed, failed_warm = pairs[0], pairs[1], pairs[2], pairs[3]
    store.set_state(bid, "verifying")
    store.record_result(bid, hit, verdict(hit, "hit"))
    store.record_result(bid, miss, verdict(miss, "miss", "cache MISS after a re-warm"))
    store.record_warm(bid, warmed, warm_ok(warmed))
    store.record_warm(bid, failed_warm, failed_record(failed_warm, "PoP answered 503", 5, 503))

    assert store.finish(bid, note="deadline passed") is True

    rep = build(store, bid)
    assert rep is not None
    assert rep["state"] == "done"
    assert rep["note"] == "deadline passed"
    iso_ok(rep["finished_at"])
    assert len(rep["results"]) == plan.total == 6
    by_pair = {(x["url"], x["pop"]): x for x in rep["results"]}
    assert by_pair[hit.url, hit.pop]["outcome"] == "hit"
    assert by_pair[miss.url, miss.pop]["outcome"] == "miss"
    w = by_pair[warmed.url, warmed.pop]
    assert (w["outcome"], w["error"]) == ("failed", "prefetched but deadline passed")
    f = by_pair[failed_warm.url, failed_warm.pop]
    assert (f["outcome"], f["error"], f["status"]) == ("failed", "PoP answered 503", 503)
    for p in pairs[4:]:
        x = by_pair[p.url, p.pop]
        assert (x["outcome"], x["attempts"]) == ("failed", 0)
        assert x["error"] == "never prefetched: deadline passed"
    c = rep["counts"]
    assert (c["total"], c["hit"], c["miss"], c["failed"]) == (6, 1, 1, 4)
    assert c["hit"] + c["miss"] + c["failed"] == c["total"]
    assert c.get("pending", 0) == 0
    assert bid not in store.overdue(now=time.time() + 10**9)


def test_finish_reason_defaults(store: BatchStore) -> None:
    plan = created(store, new_plan(n_urls=1, shield=False))
    assert store.finish(plan.batch_id, "failed", error="purge failed: 403") is True
    rep = build(store, plan.batch_id)
    assert rep is not None
    assert rep["state"] == "failed"
    assert rep["error"] == "purge failed: 403"
    assert rep["results"][0]["error"] == "never prefetched: purge failed: 403"

    plan = created(store, new_plan(n_urls=1, shield=False))
    store.finish(plan.batch_id)
    rep = build(store, plan.batch_id)
    assert rep is not None
    assert rep["results"][0]["error"] == "never prefetched: not verified"


def test_finish_is_idempotent(store: BatchStore) -> None:
    plan = created(store, new_plan())
    bid = plan.batch_id
    first = plan.all_pairs()[0]
    store.record_result(bid, first, verdict(first, "hit"))
    assert store.finish(bid, note="first") is True
    before = build(store, bid)
    # A second finisher (the watchdog, or a redelivered verify) comes along.
    assert store.finish(bid, "failed", error="second", note="second") is False
    after = build(store, bid)
    assert after == before
    assert after is not None and after["state"] == "done"


def test_finish_sets_a_ttl_on_every_batch_key(store: BatchStore, r: redis.Redis) -> None:
    plan = created(store, new_plan(slice_size=2))
    bid = plan.batch_id
    p0 = plan.all_pairs()[0]
    store.record_warm(bid, p0, warm_ok(p0))
    store.record_result(bid, p0, verdict(p0, "hit"))
    for phase in range(len(plan.phases())):
        store.slice_done(bid, phase, 0, plan.n_slices(phase))
    store.claim(bid, "phase:1")
    assert store.finish(bid) is True
    keys = [k.decode() for k in r.scan_iter(match=K.BATCH.format(id=bid) + "*")]
    # The warm records served warming and the proof; once verdicts exist they go (memory).
    assert not r.exists(K.WARM.format(id=bid))
    expected = {
        K.BATCH.format(id=bid),
        K.RESULTS.format(id=bid),
        K.SLICES_DONE.format(id=bid, phase=0),
        K.SLICES_DONE.format(id=bid, phase=1),
        K.GUARD.format(id=bid, what="phase:1"),
        K.GUARD.format(id=bid, what="finished"),
    }
    assert set(keys) == expected
    for k in keys:
        pttl = r.pttl(k)
        assert 0 < pttl <= 2 * TTL_S * 1000, f"{k} has PTTL {pttl}"
    for k in (K.BATCH, K.RESULTS):
        assert r.pttl(k.format(id=bid)) <= TTL_S * 1000, "a finished report keeps report_ttl_s"


def test_created_batch_expires_even_if_abandoned(store: BatchStore, r: redis.Redis) -> None:
    plan = created(store, new_plan(deadline_in_s=100))
    pttl = r.pttl(K.BATCH.format(id=plan.batch_id))
    assert (TTL_S + 90) * 1000 < pttl <= (TTL_S + 100) * 1000


# -- state ----------------------------------------------------------------------


def test_set_state_moves_a_running_batch(store: BatchStore) -> None:
    plan = created(store, new_plan())
    for state in ("purging", "warming", "verifying"):
        store.set_state(plan.batch_id, state)  # type: ignore[arg-type]
        assert store.state(plan.batch_id) == state
        assert not store.is_final(plan.batch_id)


@pytest.mark.parametrize("final", ["done", "failed"])
def test_set_state_never_moves_a_finished_batch(store: BatchStore, final: str) -> None:
    plan = created(store, new_plan())
    store.finish(plan.batch_id, final)  # type: ignore[arg-type]
    for state in ("queued", "warming", "verifying", "done", "failed"):
        store.set_state(plan.batch_id, state)  # type: ignore[arg-type]
        assert store.state(plan.batch_id) == final
    assert store.is_final(plan.batch_id)


def test_set_state_does_not_create_a_batch(store: BatchStore, r: redis.Redis) -> None:
    bid = f"b-{uuid.uuid4().hex}"
    store.set_state(bid, "warming")
    assert r.exists(K.BATCH.format(id=bid)) == 0


# -- phase bookkeeping -----------------------------------------------------------------


def test_slice_done_is_true_exactly_when_the_last_slice_lands(store: BatchStore) -> None:
    bid = f"b-{uuid.uuid4().hex}"
    seen = [
        store.slice_done(bid, 0, 2, 3),
        store.slice_done(bid, 0, 2, 3),  # redelivered: must not count twice
        store.slice_done(bid, 0, 0, 3),
        store.slice_done(bid, 1, 0, 1),  # another phase keeps its own count
        store.slice_done(bid, 0, 0, 3),
        store.slice_done(bid, 0, 1, 3),
    ]
    # (first time this slice is marked, its phase is complete)
    assert seen == [
        (True, False),
        (False, False),
        (True, False),
        (True, True),
        (False, False),
        (True, True),
    ]


def test_single_slice_phase(store: BatchStore) -> None:
    assert store.slice_done(f"b-{uuid.uuid4().hex}", 0, 0, 1) == (True, True)


def test_launch_markers_are_per_slice_and_per_phase(store: BatchStore) -> None:
    bid = f"b-{uuid.uuid4().hex}"
    assert not store.launched(bid, 0, 3)
    store.mark_launched(bid, 0, 3)
    store.mark_launched(bid, 0, 3)  # a repeated hand-over changes nothing
    assert store.launched(bid, 0, 3)
    assert not store.launched(bid, 0, 4)
    assert not store.launched(bid, 1, 3)  # phases are separate


def test_claim_is_true_once(store: BatchStore) -> None:
    bid = f"b-{uuid.uuid4().hex}"
    assert [store.claim(bid, "phase:1") for _ in range(5)] == [True] + [False] * 4
    assert store.claim(bid, "phase:2") is True
    assert store.claim(f"b-{uuid.uuid4().hex}", "phase:1") is True


def test_progress_counts_pairs_not_writes(store: BatchStore) -> None:
    plan = created(store, new_plan())
    p0, p1 = plan.all_pairs()[:2]
    for _ in range(3):
        store.record_warm(plan.batch_id, p0, warm_ok(p0))
    store.record_warm(plan.batch_id, p1, warm_ok(p1))
    store.record_result(plan.batch_id, p0, verdict(p0, "hit"))
    assert store.progress(plan.batch_id) == {"warmed": 2, "verified": 1}
    given = {k: v for k, v in warm_ok(p0).items() if v is not None}  # None reads back absent
    assert store.warm_record(plan.batch_id, p0) == given
    assert store.warm_records(plan.batch_id, [p1, plan.all_pairs()[3]]) == [
        {k: v for k, v in warm_ok(p1).items() if v is not None},
        None,
    ]


# -- deadlines ----------------------------------------------------------------------


def test_overdue_lists_batches_past_their_deadline(store: BatchStore) -> None:
    late = created(store, new_plan(deadline_in_s=-5))
    soon = created(store, new_plan(deadline_in_s=30))
    later = created(store, new_plan(deadline_in_s=3600))
    now = store.overdue()
    assert late.batch_id in now
    assert soon.batch_id not in now and later.batch_id not in now
    in_a_minute = store.overdue(now=time.time() + 60)
    assert {late.batch_id, soon.batch_id} <= set(in_a_minute)
    assert later.batch_id not in in_a_minute
    store.finish(late.batch_id)
    assert late.batch_id not in store.overdue()
