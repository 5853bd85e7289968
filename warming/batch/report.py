"""The SPEC's batch report: built from the records when it is read, and shown to people."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any, TypedDict

from warming.batch.plan import Plan
from warming.batch.records import Verdict
from warming.batch.store import BatchStore


class Counts(TypedDict, total=False):
    total: int
    hit: int
    miss: int
    failed: int
    dropped: int
    pending: int


class Report(TypedDict, total=False):
    """SPEC "The batch report", plus `pending`, `deadline`, `pops`, `variants`, `purge`."""

    batch_id: str
    state: str
    trigger: dict[str, Any]
    counts: Counts
    results: list[dict[str, Any]]
    dropped: list[dict[str, str]]
    started_at: str | None
    finished_at: str | None
    deadline: str | None
    pops: list[str]
    variants: list[str]
    purge: bool
    freshness: str
    carried_by: dict[str, str]
    error: str
    note: str
    warnings: list[dict[str, Any]]
    # PoPs found by DNS: the address each had in this batch and how it was found.
    addresses: dict[str, dict[str, Any]]
    # Hits per PoP by the location the answers named (an anycast CDN's colo, ...).
    served_by: dict[str, dict[str, int]]


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


# What each result shows: the SPEC's fields first, then what a person debugging wants.
_PUBLIC = ("url", "pop", "variant", "outcome", "status", "cache", "attempts", "error")
_EXTRA = ("age", "size", "etag", "ttfb_ms", "elapsed_ms", "rewarmed", "via", "served_by",
          "warm", "warm_reason")  # fmt: skip


def public(rec: Verdict) -> dict[str, Any]:
    """One pair's entry in the report's `results`."""
    raw: dict[str, Any] = dict(rec)
    out = {k: raw.get(k) for k in _PUBLIC}
    for k in _EXTRA:
        if k in raw:
            out[k] = raw[k]
    return out


def build(store: BatchStore, batch_id: str) -> Report | None:
    """The report of a batch, or None for an unknown (or expired) batch."""
    b = store.fields(batch_id)
    if not b:
        return None
    plan = Plan.from_json(b["plan"])
    results = store.results(batch_id)
    ordered = [public(results[p.key]) for p in plan.all_pairs() if p.key in results]
    counts = Counter(r["outcome"] for r in ordered)
    dropped = json.loads(b.get("dropped") or "[]")
    report: Report = {
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
    if plan.addresses:
        report["addresses"] = plan.addresses
    seen = seen_at(ordered)
    if seen:
        report["served_by"] = seen
    if b.get("carried_by"):
        # Coalesced: these URLs of the request were purged and warmed by other batches.
        report["carried_by"] = json.loads(b["carried_by"])
    if b.get("error"):
        report["error"] = b["error"]
    if b.get("note"):
        report["note"] = b["note"]
    if plan.refresh_s:
        count, sample = store.short_lived(batch_id)
        if count:
            report["warnings"] = [refresh_warning(plan.refresh_s, count, sample)]
    return report


def seen_at(results: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Verified hits per PoP, by the location that answered (where answers name one)."""
    out: dict[str, Counter[str]] = {}
    for r in results:
        if r.get("served_by") and r["outcome"] == "hit":
            out.setdefault(r["pop"], Counter())[r["served_by"]] += 1
    return {pop: dict(c.most_common()) for pop, c in out.items()}


def refresh_warning(
    refresh_s: float, count: int, sample: list[tuple[str, float]]
) -> dict[str, Any]:
    """The report's warning about objects that expire before the next scheduled warm."""
    shortest = min(w for _, w in sample)
    named = ", ".join(f"{u} ({w:,.0f} s)" for u, w in sample[:5])
    more = f" and {count - 5} more" if count > 5 else ""
    return {
        "kind": "refresh",
        "count": count,
        "refresh_s": refresh_s,
        "shortest_window_s": shortest,
        "urls": [u for u, _ in sample],
        "message": (
            f"{count} URL(s) stop being servable (max-age + stale-while-revalidate) before "
            f"the next warm in {refresh_s:,.0f} s: {named}{more}. Between runs the edges "
            f"would serve them expired or fetch them cold; they need max-age + "
            f"stale-while-revalidate >= {refresh_s:,.0f} s, or a shorter interval."
        ),
    }


def exit_code(report: Report) -> int:
    """0 when every (URL, PoP) verified HIT, 1 otherwise (an empty batch included)."""
    c = report["counts"]
    ok = report["state"] == "done" and c["total"] > 0 and c["hit"] == c["total"]
    return 0 if ok else 1


def render(report: Report) -> str:
    """A human-readable report: summary, every pair that is not a HIT, what was dropped."""
    c = report["counts"]
    lines = [
        f"batch {report['batch_id']}: {report['state']}",
        f"  {c['hit']} hit, {c['miss']} miss, {c['failed']} failed of {c['total']} "
        f"(URL, PoP) pairs; {c['dropped']} URL(s) dropped"
        + (f"; {c['pending']} pending" if c.get("pending") else ""),
    ]
    for key in ("error", "note"):
        if report.get(key):
            lines.append(f"  {key}: {report[key]}")
    for name, a in report.get("addresses", {}).items():
        where = a.get("url") or f"no address ({a.get('error')})"
        lines.append(f"  PoP {name}: {where}  [{a.get('how', '')}]")
    for name, seen in report.get("served_by", {}).items():
        where = ", ".join(f"{k} {v}" for k, v in seen.items())
        lines.append(f"  PoP {name} hits served by: {where}")
    bad = [r for r in report["results"] if r["outcome"] != "hit"]
    for r in bad[:50]:
        lines.append(
            f"  {r['outcome'].upper():6} {r['pop']:<10} {r['url']}  {r.get('error') or ''}"
        )
    if len(bad) > 50:
        lines.append(f"  ... and {len(bad) - 50} more (use --json for all)")
    for d in report["dropped"][:20]:
        lines.append(f"  DROPPED {d['url']}  {d['reason']}")
    if len(report["dropped"]) > 20:
        lines.append(f"  ... and {len(report['dropped']) - 20} more dropped")
    return "\n".join(lines)


def dump(report: Report) -> str:
    return json.dumps(report, indent=2)
