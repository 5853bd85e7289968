"""Recent batches for people: `GET /batches` and `warming batches`.

Read from `warming:recent` (trimmed to RECENT_KEEP ids whenever a batch is recorded)
and each batch's hash, a page of ids per round trip; the plan, megabytes for a big
batch, is never read here.
"""

from __future__ import annotations

import json
from typing import Any

from warming import defaults
from warming import keys as K
from warming.batch.report import iso
from warming.batch.store import BatchStore
from warming.rediskit import text, texts

_FIELDS = ("state", "trigger", "started_at", "finished_at", "counts", "error", "note")
_PAGE = 200


def recent(
    store: BatchStore, state: str | None = None, limit: int = defaults.BATCHES_LIST
) -> list[dict[str, Any]]:
    """The newest batches, newest first, in `state` if given; expired ones left out.

    With a state filter that few match, at most RECENT_SCAN ids are looked at.
    """
    out: list[dict[str, Any]] = []
    for start in range(0, defaults.RECENT_SCAN, _PAGE):
        ids = texts(store.r.zrevrange(K.RECENT, start, start + _PAGE - 1))  # type: ignore[arg-type]
        if not ids:
            break
        with store.r.pipeline(transaction=False) as p:
            for bid in ids:
                p.hmget(K.BATCH.format(id=bid), _FIELDS)
            rows = p.execute()
        for bid, row in zip(ids, rows, strict=True):
            got = dict(zip(_FIELDS, (text(v) for v in row), strict=True))
            if got["state"] is None or (state and got["state"] != state):
                continue
            out.append(summary(bid, got))
            if len(out) >= limit:
                return out
    return out


def summary(batch_id: str, b: dict[str, str | None]) -> dict[str, Any]:
    """One line of the list: state, trigger, times, and counts once finished."""
    item: dict[str, Any] = {
        "batch_id": batch_id,
        "state": b["state"],
        "trigger": json.loads(b["trigger"] or "{}"),
        "counts": json.loads(b["counts"]) if b["counts"] else None,
        "started_at": iso(float(b["started_at"])) if b["started_at"] else None,
        "finished_at": iso(float(b["finished_at"])) if b["finished_at"] else None,
        "status_url": f"/batches/{batch_id}",
    }
    for key in ("error", "note"):
        if b[key]:
            item[key] = b[key]
    return item


def render(items: list[dict[str, Any]]) -> str:
    """The list as text, one batch a line."""
    if not items:
        return "no batches"
    lines = []
    for it in items:
        c = it["counts"] or {}
        counts = (
            f"{c.get('hit', 0)} hit, {c.get('miss', 0)} miss, {c.get('failed', 0)} failed"
            if it["counts"] is not None
            else "running"
        )
        source = it["trigger"].get("source", "?")
        lines.append(
            f"{it['batch_id']}  {it['state']:<9}  {it['started_at'] or '?':<29}  "
            f"{source:<18}  {counts}"
        )
    return "\n".join(lines)
