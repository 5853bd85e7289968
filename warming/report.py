"""Showing a batch: the progress bar while it runs, the report when it ends."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from warming.store import FINAL, BatchStore
from warming.watchdog import reap_overdue

# How often `--wait` also runs the watchdog itself (embedded mode has no other).
_REAP_EVERY_S = 5.0


def exit_code(report: dict[str, Any]) -> int:
    """0 when every (URL, PoP) verified HIT, 1 otherwise (an empty batch included)."""
    c = report["counts"]
    ok = report["state"] == "done" and c["total"] > 0 and c["hit"] == c["total"]
    return 0 if ok else 1


def wait(
    store: BatchStore, batch_id: str, out: TextIO = sys.stderr, poll_s: float = 0.2
) -> dict[str, Any]:
    """Block until the batch ends, drawing progress on `out`; return its report."""
    total = store.plan(batch_id).total
    tty = out.isatty()
    last_reap = last_line = time.monotonic()
    while True:
        state = store.state(batch_id) or "failed"
        if state in FINAL:
            break
        now = time.monotonic()
        if now - last_reap > _REAP_EVERY_S:
            reap_overdue(store)
            last_reap = now
        prog = store.progress(batch_id)
        line = _bar(state, prog["warmed"], prog["verified"], total)
        if tty:
            out.write("\r" + line)
            out.flush()
        elif now - last_line > 5.0:
            out.write(line + "\n")
            last_line = now
        time.sleep(poll_s)
    if tty:
        out.write("\r" + " " * 78 + "\r")
    report = store.report(batch_id)
    if report is None:
        raise KeyError(batch_id)
    return report


def _bar(state: str, warmed: int, verified: int, total: int, width: int = 30) -> str:
    frac = (warmed + verified) / (2 * total) if total else 1.0
    fill = int(frac * width)
    bar = "#" * fill + "." * (width - fill)
    return f"{state:<9} [{bar}] warmed {warmed}/{total} verified {verified}/{total}"


def render(report: dict[str, Any]) -> str:
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


def dump(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)
