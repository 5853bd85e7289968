"""A batch's state in Redis: plan, per-pair records, phase bookkeeping and the report.

Everything a task writes here is idempotent (HSET of a pair's record, SADD of a
slice id, SET NX guards), because with `acks_late` a task can run twice after a
crash. Counts are always derived from the per-pair records, never from counters
that a redelivered task would bump twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from warming import keys as K
from warming import lua
from warming.batch import results
from warming.batch.plan import Pair, Plan
from warming.batch.proofrecords import ProofRecords
from warming.batch.records import Verdict, WarmRecord, as_failed
from warming.broker.messages import Message
from warming.rediskit import text, text_map, texts
from warming.sources.filter import Dropped

State = Literal["queued", "purging", "warming", "verifying", "done", "failed"]
FINAL: frozenset[str] = frozenset({"done", "failed"})


@dataclass(frozen=True)
class NewBatch:
    """A batch to record: its plan, how it came to be, and the messages that start it."""

    plan: Plan
    trigger: dict[str, Any]
    dropped: Sequence[Dropped]
    carried: dict[str, str] = field(default_factory=dict)  # coalescing: url -> batch
    push: Sequence[Message] = ()
    # The batch has nothing to warm: it is recorded finished, saying why.
    done_note: str | None = None


# Pairs without a verdict recorded failed per round trip when a batch ends.
_FINISH_GROUP = 1000


class BatchStore(ProofRecords):
    """Reads and writes one Redis database's batches."""

    def __init__(self, r: redis.Redis, ttl_s: int) -> None:
        self.r = r
        self.ttl_s = ttl_s
        self._create = r.register_script(lua.source("create", "create_main"))
        self._set_state = r.register_script(lua.source("set_state"))

    # -- creation -------------------------------------------------------------

    def create(self, new: NewBatch) -> None:
        """Record the batch and queue its first tasks in one atomic step."""
        self._create(args=self.create_args(new))

    def create_args(self, new: NewBatch) -> list[str | int]:
        """ARGV for create.lua (also run inside the shim's scripts)."""
        plan, done = new.plan, new.done_note is not None
        bid = plan.batch_id
        fields = [
            "state", "done" if done else "queued",
            "plan", plan.to_json(),
            "trigger", json.dumps(new.trigger),
            "dropped", json.dumps([d.as_dict() for d in new.dropped]),
            "started_at", repr(plan.created_at),
        ]  # fmt: skip
        if new.carried:
            fields += ["carried_by", json.dumps(new.carried)]
        if new.done_note is not None:
            fields += ["finished_at", repr(time.time()), "counts", "{}", "note", new.done_note]
        args: list[str | int] = [
            bid,
            K.BATCH.format(id=bid),
            self.ttl_s if done else self._keep_s(plan),
            K.ACTIVE,
            "" if done else repr(plan.deadline),  # a finished batch is not active
            K.RECENT,
            repr(plan.created_at),
            K.RECENT_KEEP,
            len(fields),
            *fields,
            len(new.push),
        ]
        for m in new.push:
            args += [m.queue, m.payload]
        return args

    def _keep_s(self, plan: Plan) -> int:
        # Until the deadline plus the report TTL: a batch that every worker abandoned
        # still expires, and the watchdog always finds its key before it does.
        return int(max(0.0, plan.deadline - time.time()) + self.ttl_s)

    # -- reading ----------------------------------------------------------------

    def plan(self, batch_id: str) -> Plan:
        """The batch's plan; read from Redis once per process (plans never change)."""
        plan = _PLANS.get(batch_id)
        if plan is None:
            raw = self.r.hget(K.BATCH.format(id=batch_id), "plan")
            if raw is None:
                raise KeyError(batch_id)
            plan = Plan.from_json(raw)
            _PLANS[batch_id] = plan
            while len(_PLANS) > _PLAN_CACHE:
                _PLANS.pop(next(iter(_PLANS)), None)
        return plan

    def state(self, batch_id: str) -> str | None:
        return text(self.r.hget(K.BATCH.format(id=batch_id), "state"))

    def fields(self, batch_id: str) -> dict[str, str]:
        """The batch hash as text ({} for an unknown or expired batch)."""
        return text_map(self.r.hgetall(K.BATCH.format(id=batch_id)))

    def is_final(self, batch_id: str) -> bool:
        # A batch whose key has expired counts as final: nothing may resurrect it.
        return self.state(batch_id) in FINAL | {None}

    # -- writing ----------------------------------------------------------------

    def set_state(self, batch_id: str, state: State) -> None:
        """Move a running batch forward; never touches a finished one."""
        key = K.BATCH.format(id=batch_id)
        self._set_state(keys=[key], args=[state, *FINAL])

    def record_warm(self, batch_id: str, pair: Pair, record: WarmRecord) -> None:
        key = K.WARM.format(id=batch_id)
        with self.r.pipeline() as p:
            p.hset(key, pair.key, results.encode_warm(record))
            p.expire(key, self.ttl_s * 2)
            p.hset(K.BATCH.format(id=batch_id), "progress_at", repr(time.time()))
            p.execute()

    def warm_record(self, batch_id: str, pair: Pair) -> WarmRecord | None:
        raw = self.r.hget(K.WARM.format(id=batch_id), pair.key)
        return results.decode_warm(pair, raw) if raw else None

    def warm_records(self, batch_id: str, pairs: list[Pair]) -> list[WarmRecord | None]:
        if not pairs:
            return []
        raws = self.r.hmget(K.WARM.format(id=batch_id), [p.key for p in pairs])
        return [results.decode_warm(p, x) if x else None for p, x in zip(pairs, raws, strict=True)]

    def record_result(self, batch_id: str, pair: Pair, record: Verdict) -> None:
        key = K.RESULTS.format(id=batch_id)
        with self.r.pipeline() as p:
            p.hset(key, pair.key, results.encode_one(record))
            p.expire(key, self.ttl_s * 2)
            p.hset(K.BATCH.format(id=batch_id), "progress_at", repr(time.time()))
            p.execute()

    def record_chunk(
        self,
        batch_id: str,
        field: str,
        chunk: Sequence[Pair],
        warm: Mapping[Pair, WarmRecord],
        verdicts: Mapping[Pair, Verdict],
    ) -> None:
        """A prefetch chunk's records and verdicts (its pairs' in its own field).

        Only the chunk's task writes its field (a retry runs after the run that queued
        it), so reading it first and merging loses nothing.
        """
        ckey, rkey = K.CHUNKS.format(id=batch_id), K.RESULTS.format(id=batch_id)
        mine = {p: v for p, v in verdicts.items() if p in set(chunk)}
        others = {p: v for p, v in verdicts.items() if p not in mine}
        before = results.decode_chunk(chunk, self.r.hget(ckey, field)) if mine else {}
        # A pair judged here needs no warm record: its verdict holds what it saw. The others
        # (to verify, to retry, shields the edges will prove) keep theirs until judged.
        pending = {pr: rec for pr, rec in warm.items() if pr not in verdicts}
        with self.r.pipeline() as p:
            if warm:
                p.hincrby(K.BATCH.format(id=batch_id), "warmed", len(warm))
            if pending:
                key = K.WARM.format(id=batch_id)
                p.hset(
                    key, mapping={pr.key: results.encode_warm(rec) for pr, rec in pending.items()}
                )
                p.expire(key, self.ttl_s * 2)
            if mine:
                p.hset(ckey, field, results.encode_chunk(chunk, {**before, **mine}))
                p.expire(ckey, self.ttl_s * 2)
                p.hincrby(
                    K.BATCH.format(id=batch_id), "chunk_verdicts", len(set(mine) - set(before))
                )
            if others:
                p.hset(rkey, mapping={pr.key: results.encode_one(v) for pr, v in others.items()})
                p.expire(rkey, self.ttl_s * 2)
            p.hset(K.BATCH.format(id=batch_id), "progress_at", repr(time.time()))
            p.execute()

    def judged(self, plan: Plan, phase: int, n: int, extra: Sequence[Pair] = ()) -> set[Pair]:
        """Which of slice `n`'s pairs and `extra` have a verdict (read, not decoded).

        `extra` (the shield pairs an edge slice proves) are looked for in their own
        chunks too: a shield whose warm failed was judged there, and kept no warm record.
        """
        fields = list(results.chunk_pairs(plan, phase, n))
        fields += results.own_chunks(plan, extra)
        singles = [*plan.slice(phase, n), *extra]
        with self.r.pipeline(transaction=False) as p:
            p.hmget(K.CHUNKS.format(id=plan.batch_id), [f for f, _ in fields] or ["-"])
            p.hmget(K.RESULTS.format(id=plan.batch_id), [x.key for x in singles] or ["-"])
            raw_chunks, raw_singles = p.execute()
        out = {x for x, raw in zip(singles, raw_singles, strict=False) if raw}
        for (_, pairs), raw in zip(fields, raw_chunks, strict=False):
            if raw:
                rows = json.loads(raw)
                out.update(x for x, row in zip(pairs, rows, strict=False) if row is not None)
        return out

    def idle(self, min_idle_s: float, now: float) -> list[tuple[str, str, float, float]]:
        """Running batches that recorded no pair for `min_idle_s`: (id, state, idle s, start).

        One pipeline for every active batch: the watchdog asks every few seconds.
        """
        ids = texts(self.r.zrange(K.ACTIVE, 0, -1))  # type: ignore[arg-type]
        with self.r.pipeline(transaction=False) as p:
            for bid in ids:
                p.hmget(K.BATCH.format(id=bid), ["state", "progress_at", "started_at"])
            rows = p.execute()
        out = []
        for bid, (state, *marks) in zip(ids, rows, strict=True):
            last = max((float(x) for x in marks if x), default=0.0)
            st = text(state) or ""
            if st in ("purging", "warming", "verifying") and last and now - last >= min_idle_s:
                out.append((bid, st, now - last, float(marks[1] or 0)))
        return out

    def touch(self, batch_id: str) -> None:
        self.r.hset(K.BATCH.format(id=batch_id), "progress_at", repr(time.time()))

    def unverified_slices(self, batch_id: str, plan: Plan) -> tuple[int, list[int]]:
        """The running phase, and its slices that should have been verified by now.

        Those are the first window, those launched, and each slice whose predecessor
        (n - window) is verified: whichever message was lost, the launch, a prefetch
        or the verification, the slice is in this list until it is verified.
        """
        for phase in range(len(plan.phases())):
            with self.r.pipeline() as p:
                p.smembers(K.LAUNCHED.format(id=batch_id, phase=phase))
                p.smembers(K.SLICES_DONE.format(id=batch_id, phase=phase))
                raw_launched, raw_done = p.execute()
            n = plan.n_slices(phase)
            done = {int(x) for x in raw_done}
            if len(done) >= n:
                continue
            window = min(n, plan.slices_in_flight)
            due = set(range(window)) | {int(x) for x in raw_launched}
            due |= {m for m in range(window, n) if m - window in done}
            return phase, sorted(due - done)
        return len(plan.phases()), []

    def slice_done(self, batch_id: str, phase: int, n: int, n_slices: int) -> tuple[bool, bool]:
        """Mark a slice verified: (first time for this slice, its phase is complete)."""
        key = K.SLICES_DONE.format(id=batch_id, phase=phase)
        with self.r.pipeline() as p:
            p.sadd(key, n)
            p.scard(key)
            p.expire(key, self.ttl_s * 2)
            added, done, _ = p.execute()
        return bool(added), int(done) >= n_slices

    def launched(self, batch_id: str, phase: int, n: int) -> bool:
        return bool(self.r.sismember(K.LAUNCHED.format(id=batch_id, phase=phase), str(n)))

    def unlaunched(self, batch_id: str, phase: int, slices: Iterable[int]) -> list[int]:
        """Those of `slices` neither published nor verified yet."""
        with self.r.pipeline(transaction=False) as p:
            p.smembers(K.LAUNCHED.format(id=batch_id, phase=phase))
            p.smembers(K.SLICES_DONE.format(id=batch_id, phase=phase))
            launched, done = p.execute()
        seen = {int(x) for x in launched | done}
        return [n for n in slices if n not in seen]

    def mark_launched(self, batch_id: str, phase: int, n: int) -> None:
        """Record that slice `n`'s chord was published (set only after it was)."""
        key = K.LAUNCHED.format(id=batch_id, phase=phase)
        with self.r.pipeline() as p:
            p.sadd(key, n)
            p.expire(key, self.ttl_s * 2)
            p.execute()

    def claim(self, batch_id: str, what: str) -> bool:
        """True exactly once per (batch, what), however many tasks ask."""
        key = K.GUARD.format(id=batch_id, what=what)
        return bool(self.r.set(key, "1", nx=True, ex=self.ttl_s * 2))

    def progress(self, batch_id: str) -> dict[str, int]:
        with self.r.pipeline() as p:
            p.hget(K.BATCH.format(id=batch_id), "warmed")
            p.hlen(K.WARM.format(id=batch_id))
            p.hlen(K.RESULTS.format(id=batch_id))
            p.hget(K.BATCH.format(id=batch_id), "chunk_verdicts")
            answers, pending, singles, in_chunks = p.execute()
        # Warm records are kept only until a pair is judged, so the warmed count is the
        # chunks' count of answers (a retried pair counts twice: capped at the total).
        total = self.plan(batch_id).total
        verified = min(total, int(singles) + int(in_chunks or 0))
        warmed = max(int(answers or 0), int(pending), verified)
        return {"warmed": min(total, warmed), "verified": verified}

    # -- finishing --------------------------------------------------------------

    def finish(
        self, batch_id: str, state: State = "done", *, error: str | None = None, note: str = ""
    ) -> bool:
        """End a batch once: every pair without a verdict becomes `failed` with a reason.

        Returns False when the batch was already finished (or is unknown).
        """
        if not self.claim(batch_id, "finished"):
            return False
        try:
            plan = self.plan(batch_id)
        except KeyError:
            return False
        # A slice at a time (a batch may hold a million pairs): count the verdicts, and
        # give each pair without one its `failed` verdict, saying why.
        counts: Counter[str] = Counter()
        why = note or error or "not verified"
        missing: list[Pair] = []
        for pair, v in self.iter_pairs(batch_id):
            if v is not None:
                counts[str(v.get("outcome"))] += 1
                continue
            missing.append(pair)
            if len(missing) >= _FINISH_GROUP:
                counts["failed"] += self._unverified(batch_id, missing, why)
                missing = []
        if missing:
            counts["failed"] += self._unverified(batch_id, missing, why)
        fields: dict[Any, Any] = {
            "state": state,
            "finished_at": repr(time.time()),
            "counts": json.dumps(dict(counts)),
        }
        if error:
            fields["error"] = error
        if note:
            fields["note"] = note
        bkey = K.BATCH.format(id=batch_id)
        with self.r.pipeline() as p:
            p.hset(bkey, mapping=fields)
            p.zrem(K.ACTIVE, batch_id)
            # What warming and the proof needed is in the verdicts now: only they stay.
            p.delete(K.WARM.format(id=batch_id), K.ORIGIN.format(id=batch_id))
            for k in self._keys(batch_id, plan):
                p.expire(k, self.ttl_s)
            p.execute()
        return True

    def _unverified(self, batch_id: str, pairs: list[Pair], why: str) -> int:
        """Record `pairs` failed (never verified, with `why`); how many."""
        warm = self.warm_records(batch_id, pairs)
        rows: dict[Any, Any] = {
            p.key: results.encode_one(unverified(p, w, why))
            for p, w in zip(pairs, warm, strict=True)
        }
        self.r.hset(K.RESULTS.format(id=batch_id), mapping=rows)
        return len(rows)

    def forget_warm(self, batch_id: str, pairs: Sequence[Pair]) -> None:
        """Drop the warm records of pairs that have their verdicts (a slice verified): only
        pairs still to judge need theirs, so Redis holds a window's worth, not a batch's."""
        if pairs:
            self.r.hdel(K.WARM.format(id=batch_id), *(p.key for p in pairs))

    def overdue(self, now: float | None = None) -> list[str]:
        ids = self.r.zrangebyscore(K.ACTIVE, "-inf", now or time.time())
        return texts(ids)  # type: ignore[arg-type]

    def _keys(self, batch_id: str, plan: Plan) -> list[str]:
        keys = [K.BATCH, K.CHUNKS, K.RESULTS, K.SHORT_LIVED]
        out = [k.format(id=batch_id) for k in keys]
        for i in range(len(plan.phases())):
            out += [
                K.SLICES_DONE.format(id=batch_id, phase=i),
                K.LAUNCHED.format(id=batch_id, phase=i),
            ]
        return out

    def iter_results(self, batch_id: str) -> Iterator[tuple[Pair, Verdict]]:
        """Every verdict recorded so far, in the plan's order, a slice at a time.

        The same verdicts as `results` (single fields win over chunk rows), without
        holding them all: a report of a million pairs is written as it is read.
        """
        for pair, v in self.iter_pairs(batch_id):
            if v is not None:
                yield pair, v

    def iter_pairs(self, batch_id: str) -> Iterator[tuple[Pair, Verdict | None]]:
        """Every pair of the plan, in order, with its verdict (None: none yet)."""
        plan = self.plan(batch_id)
        singles = {
            text(k) or "": v
            for k, v in self.r.hscan_iter(K.RESULTS.format(id=batch_id), count=1000)
        }
        chunks = K.CHUNKS.format(id=batch_id)
        for phase in range(len(plan.phases())):
            for n in range(plan.n_slices(phase)):
                sources = results.slice_sources(plan, phase, n)
                raws = self.r.hmget(chunks, [f for f, _ in sources]) if sources else []
                found: dict[Pair, Verdict] = {}
                for (_, members), raw in zip(sources, raws, strict=True):
                    found.update(results.decode_chunk(members, raw))
                for pair in plan.slice(phase, n):
                    single = singles.get(pair.key)
                    yield pair, results.decode_one(pair, single) if single else found.get(pair)

    def recent(self, limit: int = 50) -> list[str]:
        """The newest batch ids, newest first (at most RECENT_KEEP are kept)."""
        return texts(self.r.zrevrange(K.RECENT, 0, max(0, limit - 1)))  # type: ignore[arg-type]


def unverified(pair: Pair, warm: WarmRecord | None, why: str) -> Verdict:
    """The final record of a pair that never got a verdict."""
    if warm is None:
        return {
            "url": pair.url,
            "pop": pair.pop,
            "variant": pair.variant,
            "outcome": "failed",
            "status": None,
            "cache": None,
            "attempts": 0,
            "error": f"never prefetched: {why}",
        }
    if warm.get("outcome") == "failed":
        return as_failed(warm)
    return as_failed(warm, f"prefetched but {why}")


# Tasks of one batch ask for its plan thousands of times, and a 100k-pair plan is
# megabytes: keep the last few per process (dict order is insertion order).
_PLAN_CACHE = 32
_PLANS: dict[str, Plan] = {}
