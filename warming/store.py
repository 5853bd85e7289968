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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import redis

from warming import constants as K
from warming.messages import Message
from warming.plan import Pair, Plan

State = Literal["queued", "purging", "warming", "verifying", "done", "failed"]
FINAL: frozenset[str] = frozenset({"done", "failed"})
Outcome = Literal["hit", "miss", "failed"]


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


def _s(v: bytes | str | None) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


@dataclass(frozen=True)
class NewBatch:
    """A batch to record: its plan, how it came to be, and the messages that start it."""

    plan: Plan
    trigger: dict[str, Any]
    dropped: list[dict[str, str]]
    carried: dict[str, str] = field(default_factory=dict)  # coalescing: url -> batch
    push: Sequence[Message] = ()
    # The batch has nothing to warm: it is recorded finished, saying why.
    done_note: str | None = None


class BatchStore:
    """Reads and writes one Redis database's batches."""

    def __init__(self, r: redis.Redis, ttl_s: int) -> None:
        self.r = r
        self.ttl_s = ttl_s
        self._create = r.register_script(CREATE_LUA + "create(ARGV, 1)\n")

    # -- creation -------------------------------------------------------------

    def create(self, new: NewBatch) -> None:
        """Record the batch and queue its first tasks in one atomic step."""
        self._create(args=self.create_args(new))

    def create_args(self, new: NewBatch) -> list[str | int]:
        """ARGV for CREATE_LUA (also run inside the shim's scripts)."""
        plan, done = new.plan, new.done_note is not None
        bid = plan.batch_id
        fields = [
            "state", "done" if done else "queued",
            "plan", plan.to_json(),
            "trigger", json.dumps(new.trigger),
            "dropped", json.dumps(new.dropped),
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
        return _s(self.r.hget(K.BATCH.format(id=batch_id), "state"))

    def is_final(self, batch_id: str) -> bool:
        # A batch whose key has expired counts as final: nothing may resurrect it.
        return self.state(batch_id) in FINAL | {None}

    # -- writing ----------------------------------------------------------------

    def set_state(self, batch_id: str, state: State) -> None:
        """Move a running batch forward; never touches a finished one."""
        key = K.BATCH.format(id=batch_id)
        self.r.eval(_SET_STATE, 1, key, state, *FINAL)

    def record_warm(self, batch_id: str, pair: Pair, record: dict[str, Any]) -> None:
        key = K.WARM.format(id=batch_id)
        with self.r.pipeline() as p:
            p.hset(key, pair.key, json.dumps(record))
            p.expire(key, self.ttl_s * 2)
            p.hset(K.BATCH.format(id=batch_id), "progress_at", repr(time.time()))
            p.execute()

    def warm_record(self, batch_id: str, pair: Pair) -> dict[str, Any] | None:
        raw = self.r.hget(K.WARM.format(id=batch_id), pair.key)
        return json.loads(raw) if raw else None

    def warm_records(self, batch_id: str, pairs: list[Pair]) -> list[dict[str, Any] | None]:
        if not pairs:
            return []
        raws = self.r.hmget(K.WARM.format(id=batch_id), [p.key for p in pairs])
        return [json.loads(x) if x else None for x in raws]

    def record_result(self, batch_id: str, pair: Pair, record: dict[str, Any]) -> None:
        key = K.RESULTS.format(id=batch_id)
        with self.r.pipeline() as p:
            p.hset(key, pair.key, json.dumps(record))
            p.expire(key, self.ttl_s * 2)
            p.hset(K.BATCH.format(id=batch_id), "progress_at", repr(time.time()))
            p.execute()

    def idle(self, min_idle_s: float, now: float) -> list[tuple[str, float]]:
        """Warming or verifying batches that recorded no pair for `min_idle_s`: (id, idle s).

        One pipeline for every active batch: the watchdog asks every few seconds.
        """
        ids = [_s(x) or "" for x in self.r.zrange(K.ACTIVE, 0, -1)]  # type: ignore[arg-type]
        with self.r.pipeline(transaction=False) as p:
            for bid in ids:
                p.hmget(K.BATCH.format(id=bid), ["state", "progress_at", "started_at"])
            rows = p.execute()
        out = []
        for bid, (state, *marks) in zip(ids, rows, strict=True):
            last = max((float(x) for x in marks if x), default=0.0)
            if _s(state) in ("warming", "verifying") and last and now - last >= min_idle_s:
                out.append((bid, now - last))
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
            p.hlen(K.WARM.format(id=batch_id))
            p.hlen(K.RESULTS.format(id=batch_id))
            warmed, verified = p.execute()
        return {"warmed": int(warmed), "verified": int(verified)}

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
        results = self._results(batch_id)
        missing = [p for p in plan.all_pairs() if p.key not in results]
        if missing:
            why = note or error or "not verified"
            for pair, warm in zip(missing, self.warm_records(batch_id, missing), strict=True):
                rec = _unverified(pair, warm, why)
                results[pair.key] = rec
            key = K.RESULTS.format(id=batch_id)
            for i in range(0, len(missing), 1000):
                chunk = missing[i : i + 1000]
                self.r.hset(key, mapping={p.key: json.dumps(results[p.key]) for p in chunk})
        counts = Counter(r["outcome"] for r in results.values())
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
            for k in self._keys(batch_id, plan):
                p.expire(k, self.ttl_s)
            p.execute()
        return True

    def overdue(self, now: float | None = None) -> list[str]:
        ids = self.r.zrangebyscore(K.ACTIVE, "-inf", now or time.time())
        return [_s(i) or "" for i in ids]  # type: ignore[arg-type]

    def _keys(self, batch_id: str, plan: Plan) -> list[str]:
        keys = [K.BATCH, K.WARM, K.RESULTS]
        out = [k.format(id=batch_id) for k in keys]
        for i in range(len(plan.phases())):
            out += [
                K.SLICES_DONE.format(id=batch_id, phase=i),
                K.LAUNCHED.format(id=batch_id, phase=i),
            ]
        return out

    def _results(self, batch_id: str) -> dict[str, dict[str, Any]]:
        raw = self.r.hgetall(K.RESULTS.format(id=batch_id))
        return {_s(k) or "": json.loads(v) for k, v in raw.items()}

    # -- the report -------------------------------------------------------------

    def report(self, batch_id: str) -> dict[str, Any] | None:
        """The SPEC's batch report, or None for an unknown (or expired) batch."""
        raw = self.r.hgetall(K.BATCH.format(id=batch_id))
        if not raw:
            return None
        b = {_s(k) or "": _s(v) or "" for k, v in raw.items()}
        plan = Plan.from_json(b["plan"])
        results = self._results(batch_id)
        ordered = [_public(results[p.key]) for p in plan.all_pairs() if p.key in results]
        counts = Counter(r["outcome"] for r in ordered)
        dropped = json.loads(b.get("dropped") or "[]")
        report: dict[str, Any] = {
            "batch_id": batch_id,
            "state": b.get("state", "queued"),
            "trigger": json.loads(b.get("trigger") or "{}"),
            "counts": {
                "total": plan.total,
                "hit": counts["hit"],
                "miss": counts["miss"],
                "failed": counts["failed"],
                "dropped": len(dropped),
                "pending": plan.total - len(ordered),
            },
            "results": ordered,
            "dropped": dropped,
            "started_at": iso(float(b["started_at"])) if b.get("started_at") else None,
            "finished_at": iso(float(b["finished_at"])) if b.get("finished_at") else None,
            "deadline": iso(plan.deadline),
            "pops": [p.name for p in plan.pops],
            "variants": [v.name for v in plan.variants],
            "purge": plan.purge,
        }
        if b.get("carried_by"):
            # Coalesced: these URLs of the request were purged and warmed by other batches.
            report["carried_by"] = json.loads(b["carried_by"])
        if b.get("error"):
            report["error"] = b["error"]
        if b.get("note"):
            report["note"] = b["note"]
        return report


# create(a, i): record a batch and push its messages. From a[i]: batch id, batch key,
# keep seconds, active key, deadline ('' for a batch recorded finished), recent key,
# created at, n, n hash field/value strings, m, then m (list, payload) pairs. Returns
# the index after its arguments.
CREATE_LUA = """
local function create(a, i)
  local bid, key = a[i], a[i + 1]
  local nf = tonumber(a[i + 7])
  local f = i + 8
  redis.call('HSET', key, unpack(a, f, f + nf - 1))
  redis.call('EXPIRE', key, a[i + 2])
  if a[i + 4] ~= '' then redis.call('ZADD', a[i + 3], a[i + 4], bid) end
  redis.call('ZADD', a[i + 5], a[i + 6], bid)
  local m = tonumber(a[f + nf])
  local p = f + nf + 1
  for j = 0, m - 1 do redis.call('LPUSH', a[p + 2 * j], a[p + 2 * j + 1]) end
  return p + 2 * m
end
"""

_SET_STATE = """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return 0 end
for i = 2, #ARGV do if cur == ARGV[i] then return 0 end end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 1
"""

_PUBLIC = ("url", "pop", "variant", "outcome", "status", "cache", "attempts", "error")


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    out = {k: rec.get(k) for k in _PUBLIC}
    for k in ("age", "size", "etag", "ttfb_ms", "elapsed_ms", "rewarmed"):
        if k in rec:
            out[k] = rec[k]
    return out


def _unverified(pair: Pair, warm: dict[str, Any] | None, why: str) -> dict[str, Any]:
    """The final record of a pair that never got a verdict."""
    base: dict[str, Any] = {"url": pair.url, "pop": pair.pop, "variant": pair.variant}
    if warm is None:
        return {
            **base,
            "outcome": "failed",
            "status": None,
            "cache": None,
            "attempts": 0,
            "error": f"never prefetched: {why}",
        }
    if warm.get("outcome") == "failed":
        return {**warm, **base, "outcome": "failed"}
    return {**warm, **base, "outcome": "failed", "error": f"prefetched but {why}"}


# Tasks of one batch ask for its plan thousands of times, and a 100k-pair plan is
# megabytes: keep the last few per process (dict order is insertion order).
_PLAN_CACHE = 32
_PLANS: dict[str, Plan] = {}
