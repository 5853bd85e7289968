"""The freshness proof of a batch, as one verification task or chunk needs it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor

from warming.batch.plan import Pair, Plan
from warming.runtime import Runtime
from warming.stages import origin
from warming.stages.freshness import Proof


def proof_for(rt: Runtime, plan: Plan, pairs: Sequence[Pair], pool: Executor) -> Proof:
    """What `pairs`' answers are judged against: the purge time, the origin's versions."""
    store = rt.store
    # "Now" on Redis's clock, the one the purge start was read from: one offset per call.
    offset = store.clock() - time.time()
    proof = Proof(
        plan.freshness,
        plan.statuses,
        store.purge_started(plan.batch_id) if plan.freshness in ("age", "both") else None,
        lambda: time.time() + offset,
    )
    if proof.by_origin:
        return Proof(
            proof.freshness,
            proof.statuses,
            proof.purged_at,
            proof.now,
            origin.versions(rt, plan, pairs, pool),
        )
    return proof
