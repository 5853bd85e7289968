"""Publishing a coalescing window's trailing batch (the changes seen mid-run) when due."""

from __future__ import annotations

from warming.batch.publish import WarmRequest, publish
from warming.runtime import Runtime
from warming.stages.outcome import Done, RetryIn
from warming.stages.timing import cap


def flush_trailing(rt: Runtime, trailing_id: str, leader: str = "") -> Done | RetryIn:
    """Publish `trailing_id` once its leader's window is over; RetryIn until then."""
    coalescer = rt.coalescer
    wait_s = coalescer.wait_s(trailing_id)
    if wait_s > 0:  # its leader's window is still open: more changes may join
        return RetryIn(cap(wait_s), {}, "window open")
    urls = coalescer.flush(trailing_id)
    if not urls:
        return Done("empty")
    if rt.store.state(trailing_id) is None:
        coalescer.lead(trailing_id, urls)
        trigger = {
            "source": "webhook:coalesced",
            "trailing_for": leader or coalescer.leader_of(trailing_id),
        }
        publish(rt, WarmRequest(urls=urls, trigger=trigger), batch_id=trailing_id)
    return Done("published")
