"""The SPEC's batch report: built from the records when it is read, and shown to people."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO, TypedDict

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
    # Outcomes per PoP, over every pair; and with a summary, how many rows it left out.
    by_pop: dict[str, dict[str, int]]
    results_omitted: int


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


# The rows a summary keeps of the pairs that are not a HIT (logs, notices, Flower's
# result, the text report): their counts still cover every pair, and the JSON report
# (`json_chunks`) streams every row however many there are.
KEEP_NOT_HIT = 1000


class _Scan:
    """Counts over every result, and the rows kept: all, or the first `keep` not a HIT."""

    def __init__(self, keep: int | None) -> None:
        self.keep = keep
        self.counts: Counter[str] = Counter()
        self.by_pop: dict[str, Counter[str]] = {}
        self.seen: dict[str, Counter[str]] = {}
        self.rows: list[dict[str, Any]] = []
        self.n = 0

    def add(self, row: dict[str, Any]) -> None:
        self.n += 1
        outcome = str(row["outcome"])
        self.counts[outcome] += 1
        self.by_pop.setdefault(str(row["pop"]), Counter())[outcome] += 1
        if row.get("served_by") and outcome == "hit":
            self.seen.setdefault(str(row["pop"]), Counter())[str(row["served_by"])] += 1
        if self.keep is None or (outcome != "hit" and len(self.rows) < self.keep):
            self.rows.append(row)


def build(store: BatchStore, batch_id: str, keep: int | None = None) -> Report | None:
    """The report of a batch, or None for an unknown (or expired) batch.

    `keep` None: every result. `keep` N: only the first N results that are not a HIT
    (`results_omitted` says how many others there are); counts cover every pair
    either way, and the verdicts are read a slice at a time, so a summary of a
    million pairs stays small.
    """
    b = store.fields(batch_id)
    if not b:
        return None
    plan = Plan.from_json(b["plan"])
    scan = _Scan(keep)
    for _, v in store.iter_results(batch_id):
        scan.add(public(v))
    counts = scan.counts
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
            "pending": plan.total - scan.n,
        },
        "results": scan.rows,
        "dropped": dropped,
        "started_at": iso(float(b["started_at"])) if b.get("started_at") else None,
        "finished_at": iso(float(b["finished_at"])) if b.get("finished_at") else None,
        "deadline": iso(plan.deadline),
        "pops": [p.name for p in plan.pops],
        "variants": [v.name for v in plan.variants],
        "purge": plan.purge,
        "by_pop": {
            p.name: {k: scan.by_pop.get(p.name, Counter())[k] for k in ("hit", "miss", "failed")}
            for p in plan.pops
        },
    }
    if keep is not None:
        report["results_omitted"] = scan.n - len(scan.rows)
    if plan.addresses:
        report["addresses"] = plan.addresses
    if scan.seen:
        report["served_by"] = {pop: dict(c.most_common()) for pop, c in scan.seen.items()}
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


_ROWS = "\u0000results\u0000"  # stands for the rows in the head's text


def json_chunks(store: BatchStore, batch_id: str) -> Iterator[str] | None:
    """The whole report as JSON text, in pieces, every result streamed (None: unknown).

    The same document as `dump(build(...))`, one result per line: the head (counts, state,
    dropped URLs) from a first pass over the verdicts, then the rows from a second. Of a
    running batch, the rows may be a moment newer than the counts.
    """
    head = build(store, batch_id, keep=0)
    if head is None:
        return None
    del head["results_omitted"]

    def pieces() -> Iterator[str]:
        text = json.dumps({**head, "results": _ROWS}, indent=2)
        before, after = text.split(json.dumps(_ROWS), 1)
        yield before + "["
        sep = "\n    "
        buf: list[str] = []
        for _, v in store.iter_results(batch_id):
            buf.append(sep + json.dumps(public(v)))
            sep = ",\n    "
            if len(buf) >= 500:
                yield "".join(buf)
                buf = []
        yield "".join(buf) + ("\n  ]" if sep != "\n    " else "]") + after

    return pieces()


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
    not_hit = max(len(bad), c.get("miss", 0) + c.get("failed", 0))
    if not_hit > 50:
        lines.append(f"  ... and {not_hit - 50} more (use --json for all)")
    for d in report["dropped"][:20]:
        lines.append(f"  DROPPED {d['url']}  {d['reason']}")
    if len(report["dropped"]) > 20:
        lines.append(f"  ... and {len(report['dropped']) - 20} more dropped")
    return "\n".join(lines)


def write_json(store: BatchStore, batch_id: str, out: TextIO) -> bool:
    """Write the whole report as JSON to `out`, streamed; False for an unknown batch."""
    pieces = json_chunks(store, batch_id)
    if pieces is None:
        return False
    for piece in pieces:
        out.write(piece)
    out.write("\n")
    out.flush()
    return True


def dump(report: Report) -> str:
    return json.dumps(report, indent=2)
