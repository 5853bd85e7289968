"""The cluster's state for `/metrics`, read from Redis at scrape time.

Unfinished batches by state (from `warming:active`), the messages waiting in each of
our queues (priority lists included), and each PoP's adaptive factor: the same
answer from whichever worker or shim process is scraped.
"""

from __future__ import annotations

import time
from collections import Counter

from warming import keys as K
from warming.broker import tasknames as T
from warming.ops.metrics import Live
from warming.rediskit import text, texts
from warming.runtime import Runtime

# kombu's Redis transport: a message of priority p > 0 waits in "<queue>\x06\x16<step>".
_PRIORITY_SEP = "\x06\x16"
_KOMBU_STEPS = (0, 3, 6, 9)
# Unfinished batches counted by state; past this many, the rest are not looked at.
_ACTIVE_MAX = 10_000


def live(rt: Runtime) -> Live:
    """One pipeline of reads, plus one GET per PoP's adaptive factor."""
    r = rt.redis
    ids = texts(r.zrange(K.ACTIVE, 0, _ACTIVE_MAX - 1))  # type: ignore[arg-type]
    opts = rt.messages.app.conf.broker_transport_options or {}
    steps = [s for s in opts.get("priority_steps") or _KOMBU_STEPS if s]
    with r.pipeline(transaction=False) as p:
        p.zcount(K.ACTIVE, "-inf", time.time())
        for bid in ids:
            p.hget(K.BATCH.format(id=bid), "state")
        for q in T.QUEUES:
            name = rt.messages.list_name(q)
            p.llen(name)
            for s in steps:
                p.llen(f"{name}{_PRIORITY_SEP}{s}")
        overdue, *got = p.execute()
    states = Counter(text(s) for s in got[: len(ids)] if s is not None)
    depths = got[len(ids) :]
    per = 1 + len(steps)
    queues = {q: sum(depths[i * per : (i + 1) * per]) for i, q in enumerate(T.QUEUES)}
    factors = {}
    for pop in rt.settings.pops:
        limiter = rt.pop_limiter(pop)
        factors[pop.name] = limiter.factor() if limiter is not None else 1.0
    batches = {str(k): v for k, v in states.items()}
    return Live(batches=batches, queues=queues, factors=factors, overdue=int(overdue))
