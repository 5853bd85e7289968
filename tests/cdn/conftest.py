"""Drive a batch's real purge (or push) stage, real Redis and no worker, against a double."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support import SITE
from warming import keys as K
from warming.batch.publish import WarmRequest, new_batch, select
from warming.rediskit import text_map
from warming.runtime import Runtime, use
from warming.settings import Settings
from warming.stages import purge as purge_stage
from warming.stages import push as push_stage
from warming.stages.outcome import Continue, Outcome, RetryIn

POPS = [{"name": "edge1", "url": "http://127.0.0.1:9"}]


@dataclass
class Purged:
    """How a batch's purge stage ended, and every countdown it asked for on the way."""

    outcome: Outcome
    waits: list[RetryIn] = field(default_factory=list)
    batch: dict[str, str] = field(default_factory=dict)

    @property
    def waited_s(self) -> float:
        return sum(w.seconds for w in self.waits)


def runtime(redis_url: str, cdn: dict[str, Any], **sections: Any) -> Runtime:
    """A runtime with `cdn` and quick retries, whatever ./warming.toml says."""
    os.environ["WARMING_CONFIG"] = "/nonexistent/warming.toml"
    try:
        settings = Settings.model_validate(
            {
                "broker_url": redis_url,
                "site": {"base_url": SITE},
                "pops": sections.pop("pops", POPS),
                "cdn": cdn,
                "limits": {"prefetch": "100/s", "purge": "100/s"},
                "fetch": {"backoff_base_s": 0.2, "max_attempts": 6},
                **sections,
            }
        )
    finally:
        del os.environ["WARMING_CONFIG"]
    return use(settings)


def purge_batch(
    rt: Runtime, paths: list[str], tags: list[str] | None = None, budget_s: float = 60.0
) -> Purged:
    """Record a batch and run its purge stage to the end, sleeping each RetryIn here.

    The worker's part (re-queueing with a countdown) is played by `_drive`; everything
    else is the real stage, store and provider.
    """
    bid = _created(rt, WarmRequest(paths=paths, tags=tags or [], trigger={"source": "cli"}))
    out, waits = _drive(lambda **kw: purge_stage.purge(rt, bid, **kw), budget_s)
    return Purged(out, waits, text_map(rt.redis.hgetall(K.BATCH.format(id=bid))))


def _created(rt: Runtime, req: WarmRequest) -> str:
    """Record a batch of `req` (its messages are not queued); its id."""
    bid = uuid.uuid4().hex
    rt.store.create(new_batch(rt.settings, rt.messages, req, select(rt.url_filter, None, req), bid))
    return bid


def _drive(stage: Callable[..., Outcome], budget_s: float) -> tuple[Outcome, list[RetryIn]]:
    """Run `stage` as a worker would: a RetryIn slept (within `budget_s`) and run again with
    its kwargs, a Continue run again at once; the first other outcome, and the waits."""
    kwargs: dict[str, Any] = {}
    waits: list[RetryIn] = []
    t0 = time.monotonic()
    while True:
        out = stage(**kwargs)
        if isinstance(out, RetryIn) and time.monotonic() - t0 < budget_s:
            assert out.seconds <= 30, "a countdown over the cap"
            waits.append(out)
            time.sleep(out.seconds)
            kwargs.update(out.kwargs)
            continue
        if isinstance(out, Continue):
            kwargs.update(out.kwargs)
            continue
        return out, waits


@dataclass
class Pushed:
    outcome: Outcome
    batch_id: str
    waits: list[RetryIn] = field(default_factory=list)
    fallback: dict[str, str] = field(default_factory=dict)
    batch: dict[str, str] = field(default_factory=dict)


def push_batch(rt: Runtime, paths: list[str], budget_s: float = 60.0) -> Pushed:
    """Record a batch (no purge) and run its push stage to the end, sleeping each RetryIn."""
    bid = _created(rt, WarmRequest(paths=paths, trigger={"source": "cli"}, purge=False))
    out, waits = _drive(lambda **kw: push_stage.push(rt, bid, **kw), budget_s)
    fallback = text_map(rt.redis.hgetall(K.PUSH_FALLBACK.format(id=bid)))
    return Pushed(out, bid, waits, fallback, text_map(rt.redis.hgetall(K.BATCH.format(id=bid))))
