"""Asking the origin, once per URL and variant, which version every PoP must serve."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor

from warming.batch.plan import Pair, Plan
from warming.batch.records import OriginVersion
from warming.errors import FetchError, RetryLater
from warming.runtime import Runtime
from warming.settings import PopSettings
from warming.stages.freshness import origin_key

# A 429/503/network error from the origin is retried briefly; then the pairs are failed.
ORIGIN_ATTEMPTS = 3
ORIGIN_RETRY_S = 0.5


def versions(
    rt: Runtime, plan: Plan, pairs: Sequence[Pair], pool: Executor
) -> dict[str, OriginVersion]:
    """The origin's version for each pair's URL and variant: asked now if nobody has yet."""
    wanted = {origin_key(p.url, p.variant): p for p in pairs}
    have = rt.store.origin_versions(plan.batch_id, list(wanted))
    missing = [p for k, p in wanted.items() if k not in have]
    if missing:
        fetched = dict(zip(
            (origin_key(p.url, p.variant) for p in missing),
            pool.map(lambda p: ask(rt, plan, p), missing),
            strict=True,
        ))  # fmt: skip
        # Only answers are kept: an error is retried by the next slice that needs it.
        rt.store.record_origin(
            plan.batch_id, {k: v for k, v in fetched.items() if "error" not in v}
        )
        have = {**rt.store.origin_versions(plan.batch_id, list(fetched)), **have}
        have.update({k: v for k, v in fetched.items() if k not in have})
    return have


def ask(rt: Runtime, plan: Plan, pair: Pair) -> OriginVersion:
    """One GET of the pair's URL at `verify.origin_url`, with the site's Host."""
    assert plan.origin_url is not None
    origin = PopSettings(name="origin", url=plan.origin_url)
    variant = plan.variant(pair.variant)
    for attempt in range(ORIGIN_ATTEMPTS):
        try:
            got = rt.client.get(origin, pair.url, variant)
        except RetryLater as e:
            if attempt + 1 == ORIGIN_ATTEMPTS:
                return {"error": f"{e} (after {ORIGIN_ATTEMPTS} attempts)"}
            time.sleep(ORIGIN_RETRY_S * 2**attempt)
            continue
        except FetchError as e:
            return {"error": str(e)}
        return {
            "status": got.status,
            "etag": got.etag,
            "last_modified": got.last_modified,
            "digest": got.digest,
        }
    raise AssertionError("unreachable")
