"""Following a batch on a terminal: the progress bar while it runs, then its report."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from warming.batch.report import KEEP_NOT_HIT, Report, build
from warming.batch.store import FINAL, BatchStore
from warming.stages.watchdog import reap_overdue

# How often `--wait` also runs the watchdog itself (embedded mode has no other).
_REAP_EVERY_S = 5.0


def wait(store: BatchStore, batch_id: str, out: TextIO = sys.stderr, poll_s: float = 0.2) -> Report:
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
    # A summary: counts over every pair, the rows that are not a HIT (`--json` streams all).
    report = build(store, batch_id, keep=KEEP_NOT_HIT)
    if report is None:
        raise KeyError(batch_id)
    return report


def _bar(state: str, warmed: int, verified: int, total: int, width: int = 30) -> str:
    frac = (warmed + verified) / (2 * total) if total else 1.0
    fill = int(frac * width)
    bar = "#" * fill + "." * (width - fill)
    return f"{state:<9} [{bar}] warmed {warmed}/{total} verified {verified}/{total}"
