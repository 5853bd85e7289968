"""Verdicts as Redis keeps them: compact rows, a chunk's in one field.

A verdict is stored as a JSON row of the report's fields in a fixed order (`FIELDS`),
without what the key already says (URL, PoP, variant) or what only verification
needs (digest, surrogate keys). A prefetch chunk writes its pairs' rows as one field
(`"phase:slice:lo"` in `warming:batch:{id}:chunks`); a verdict reached elsewhere (the
callback's re-check, a shield proven by an edge, the watchdog) is one field of its
own in `warming:batch:{id}:results`, and wins. Measured (bench/bench_throughput.py):
about 2,000 bytes of Redis per pair as one JSON document per record and per verdict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from warming.batch.plan import Pair, Plan
from warming.batch.records import NOT_LANDED, Verdict, WarmRecord

# The report's fields, in the order rows keep them (warming.batch.report).
FIELDS = (
    "outcome", "status", "cache", "attempts", "error", "age", "size", "etag",
    "ttfb_ms", "elapsed_ms", "rewarmed", "via", "served_by", "warm", "warm_reason",
)  # fmt: skip


# A row spells the outcome in one letter and a flag as 0/1: bytes per pair add up.
_OUTCOME = {"hit": "h", "miss": "m", "failed": "f"}
_OUTCOME_BACK = {v: k for k, v in _OUTCOME.items()}
# Push mode's `warm` in one letter too; a "get" row without a reason means NOT_LANDED.
_WARM = {"push": "p", "get": "g"}
_WARM_BACK = {v: k for k, v in _WARM.items()}
_W, _WHY = FIELDS.index("warm"), FIELDS.index("warm_reason")
_REWARMED = FIELDS.index("rewarmed")
_ETAG = FIELDS.index("etag")
_MS = (FIELDS.index("ttfb_ms"), FIELDS.index("elapsed_ms"))
# A hit's usual status and cache verdict go unwritten (null): most rows are hits.
_HIT_DEFAULTS = {FIELDS.index("status"): 200, FIELDS.index("cache"): "HIT"}
_COMPACT = (",", ":")


def pack(v: Verdict) -> list[Any]:
    """`v` as a row: its fields in FIELDS order, trailing empties dropped."""
    raw: Mapping[str, Any] = v
    row = [raw.get(f) for f in FIELDS]
    row[0] = _OUTCOME.get(str(row[0]), row[0])
    if row[0] == "h":
        for i, usual in _HIT_DEFAULTS.items():
            row[i] = None if row[i] == usual else (row[i] if row[i] is not None else "")
    if row[_W] is not None:
        row[_W] = _WARM.get(str(row[_W]), row[_W])
        row[_WHY] = None if row[_WHY] == NOT_LANDED else row[_WHY]
    if row[_REWARMED] is False:  # read back as False for a verified pair
        row[_REWARMED] = None
    for i in _MS:  # whole milliseconds: a row is read by people, not profilers
        ms = row[i]
        if isinstance(ms, float):
            row[i] = round(ms)
    row = [int(x) if isinstance(x, bool) else x for x in row]
    while row and row[-1] is None:
        row.pop()
    return row


def unpack(pair: Pair, row: Sequence[Any]) -> Verdict:
    """The verdict a row keeps for `pair`."""
    out: dict[str, Any] = {"url": pair.url, "pop": pair.pop, "variant": pair.variant}
    hit = bool(row) and row[0] == "h"
    for i, (name, value) in enumerate(zip(FIELDS, row, strict=False)):
        if hit and i in _HIT_DEFAULTS:
            value = _HIT_DEFAULTS[i] if value is None else (None if value == "" else value)
        if value is not None or name in ("status", "cache", "error"):
            out[name] = value
    if hit:  # a row cut before its status (every field after it empty)
        for i, usual in _HIT_DEFAULTS.items():
            out.setdefault(FIELDS[i], usual)
    out["outcome"] = _OUTCOME_BACK.get(str(out.get("outcome")), out.get("outcome"))
    if "rewarmed" in out or out["outcome"] in ("hit", "miss"):
        out["rewarmed"] = bool(out.get("rewarmed"))
    if "warm" in out:
        out["warm"] = _WARM_BACK.get(str(out["warm"]), out["warm"])
        if out["warm"] == "get" and not out.get("warm_reason"):
            out["warm_reason"] = NOT_LANDED
    return cast(Verdict, out)


def chunk_field(phase: int, n: int, lo: int) -> str:
    return f"{phase}:{n}:{lo}"


def encode_chunk(pairs: Sequence[Pair], verdicts: Mapping[Pair, Verdict]) -> str:
    """One chunk's rows, in its pairs' order (null for a pair without a verdict yet).

    A chunk holds each URL at every PoP of its tier, one after the other, and they send
    the same ETag: a row whose ETag is the row before's says 1 instead (an ETag is a
    string). Measured, 17 of the 78 bytes a pair took in Redis.
    """
    rows = [pack(verdicts[p]) if p in verdicts else None for p in pairs]
    last = None
    for row in rows:
        if row is None or len(row) <= _ETAG:
            continue
        etag = row[_ETAG]
        if etag is not None and etag == last:
            row[_ETAG] = 1
        last = etag
    return json.dumps(rows, separators=_COMPACT)


def decode_chunk(pairs: Sequence[Pair], raw: bytes | str | None) -> dict[Pair, Verdict]:
    if not raw:
        return {}
    rows = json.loads(raw)
    last = None
    for row in rows:
        if row is None or len(row) <= _ETAG:
            continue
        if row[_ETAG] == 1:
            row[_ETAG] = last
        last = row[_ETAG]
    return {p: unpack(p, row) for p, row in zip(pairs, rows, strict=False) if row is not None}


def encode_one(v: Verdict) -> str:
    return json.dumps(pack(v), separators=_COMPACT)


def decode_one(pair: Pair, raw: bytes | str) -> Verdict:
    return unpack(pair, json.loads(raw))


def chunk_pairs(plan: Plan, phase: int, n: int) -> Iterable[tuple[str, list[Pair]]]:
    """Each chunk field of slice `n` with the pairs whose verdicts it keeps."""
    for lo, hi in plan.chunks(phase, n):
        yield chunk_field(phase, n, lo), plan.chunk_members(phase, n, lo, hi)


def slice_sources(plan: Plan, phase: int, n: int) -> list[tuple[str, list[Pair]]]:
    """The chunk fields that can hold verdicts of slice `n`'s pairs, in `merge`'s order
    (a later field's row wins): the slice's own chunks, then, for shields proven through
    the edges, the proving edge's chunks of the same URLs (`Plan.upstream_of`)."""
    out = list(chunk_pairs(plan, phase, n))
    if phase != 0 or plan.shield_seen_through_edges is None:
        return out
    prover = plan.shield_prover or ""
    provers = [Pair(p.url, prover, p.variant) for p in plan.slice(phase, n)]
    return out + own_chunks(plan, provers)


def own_chunks(plan: Plan, pairs: Sequence[Pair]) -> list[tuple[str, list[Pair]]]:
    """The chunk fields (with their members) in which `pairs` were warmed, each once."""
    out: dict[str, list[Pair]] = {}
    for pair in pairs:
        phase, n, lo = plan.locate(pair)
        field = chunk_field(phase, n, lo)
        if field not in out:
            hi = min(lo + plan.chunk_size, plan.phase_size(phase) - n * plan.slice_size)
            out[field] = plan.chunk_members(phase, n, lo, hi)
    return list(out.items())


# A warm record as Redis keeps it until its pair is judged: its fields in this order, not
# the pair (the hash field names it), trailing empties dropped, any other key in a dict
# at the end. Measured in a 1,000,000-pair batch: 550 bytes a record as a JSON document,
# a quarter of a million of them held while the shields wait for the edges.
WARM_FIELDS = (
    "outcome", "status", "cache", "cache_header", "age", "etag", "last_modified", "digest",
    "size", "keys", "ttfb_ms", "elapsed_ms", "at", "attempts", "error", "served_by",
)  # fmt: skip
_PAIR_KEYS = ("url", "pop", "variant")


def encode_warm(rec: WarmRecord) -> str:
    raw: Mapping[str, Any] = rec
    row: list[Any] = [raw.get(f) for f in WARM_FIELDS]
    extra = {k: v for k, v in raw.items() if k not in WARM_FIELDS and k not in _PAIR_KEYS}
    while row and row[-1] is None:
        row.pop()
    if extra:
        row += [None] * (len(WARM_FIELDS) - len(row)) + [extra]
    return json.dumps(row, separators=_COMPACT)


def decode_warm(pair: Pair, raw: bytes | str) -> WarmRecord:
    data = json.loads(raw)
    if isinstance(data, dict):  # written before records were rows
        return cast(WarmRecord, data)
    out: dict[str, Any] = {"url": pair.url, "pop": pair.pop, "variant": pair.variant}
    out.update(dict.fromkeys(WARM_FIELDS))
    out.update(zip(WARM_FIELDS, data, strict=False))
    if len(data) > len(WARM_FIELDS):
        out.update(data[len(WARM_FIELDS)])
    # A field that was None reads back absent: readers of warm records use .get().
    return cast(WarmRecord, {k: v for k, v in out.items() if v is not None})
