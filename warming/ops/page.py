"""The report as an HTML page for people: counts, purge, a URL x PoP matrix, the dropped.

Server-rendered from the report (no script): each cell is coloured by outcome, and a
cell that is not a hit is a `<details>` whose reason opens with one click. A batch
still running reloads itself every PAGE_REFRESH_S. Every value from the report is
escaped: URLs and reasons come from CMS payloads and PoP answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import cache
from html import escape
from importlib import resources
from string import Template
from typing import Any

from warming import defaults

_FINAL = ("done", "failed")
_ORDER = {"failed": 0, "miss": 1, "pending": 2, "hit": 3}


@cache
def _template(name: str) -> Template:
    return Template(resources.files("warming.ops").joinpath(name).read_text("utf-8"))


def render(report: Mapping[str, Any], max_rows: int = defaults.PAGE_MAX_ROWS) -> str:
    """The report page of one batch."""
    state = str(report.get("state", "queued"))
    running = state not in _FINAL
    pops: list[str] = list(report.get("pops") or [])
    rows, more = _matrix(report.get("results") or [], pops, max_rows)
    dropped = report.get("dropped") or []
    return _template("page.html").substitute(
        refresh=(
            f'<meta http-equiv="refresh" content="{defaults.PAGE_REFRESH_S}">' if running else ""
        ),
        title=escape(f"batch {report.get('batch_id')}: {state}"),
        batch_id=escape(str(report.get("batch_id"))),
        state=escape(state),
        state_class=_state_class(state, running, report.get("counts") or {}),
        meta=_meta(report, running),
        problems=_problems(report),
        counts=_counts(report.get("counts") or {}),
        purge=_purge(report),
        pop_headers="".join(f"<th>{escape(p)}</th>" for p in pops),
        rows=rows,
        more=more,
        n_dropped=len(dropped),
        dropped=_dropped(dropped),
    )


def _state_class(state: str, running: bool, c: Mapping[str, Any]) -> str:
    if running:
        return "state-running"
    if state == "done" and (c.get("miss") or c.get("failed") or not c.get("total")):
        return "state-partial"  # finished, but not every pair is a fresh HIT
    return f"state-{escape(state)}"


def _meta(report: Mapping[str, Any], running: bool) -> str:
    trigger = report.get("trigger") or {}
    parts = [f"trigger <b>{escape(str(trigger.get('source', '?')))}</b>"]
    for key, label in (("started_at", "started"), ("finished_at", "finished")):
        if report.get(key):
            parts.append(f"{label} {escape(str(report[key]))}")
    if running and report.get("deadline"):
        parts.append(f"deadline {escape(str(report['deadline']))}")
    if running:
        parts.append(f"this page reloads every {defaults.PAGE_REFRESH_S} s while the batch runs")
    return " &middot; ".join(parts)


def _problems(report: Mapping[str, Any]) -> str:
    out = []
    if report.get("error"):
        out.append(f'<div class="problem" id="error">{escape(str(report["error"]))}</div>')
    if report.get("note"):
        out.append(f'<div class="note" id="note">{escape(str(report["note"]))}</div>')
    for url, by in (report.get("carried_by") or {}).items():
        out.append(f'<div class="note">{escape(url)} was warmed by batch {escape(by)}</div>')
    return "\n".join(out)


def _counts(c: Mapping[str, Any]) -> str:
    keys = ["total", "hit", "miss", "failed", "dropped"] + (["pending"] if c.get("pending") else [])
    return "".join(
        f'<div class="count {k}" id="count-{k}"><b>{int(c.get(k) or 0):,}</b>{k}</div>'
        for k in keys
    )


def _purge(report: Mapping[str, Any]) -> str:
    if report.get("purge", True):
        return "Purged before warming: every PoP's copy was removed first, then warmed."
    return "Not purged (<code>--no-purge</code>): warmed over what the PoPs held."


def _matrix(results: list[Mapping[str, Any]], pops: list[str], max_rows: int) -> tuple[str, str]:
    """The table's rows (URLs with a non-hit first) and a line for the rows left out."""
    cells: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for r in results:
        cells[(str(r.get("url")), str(r.get("variant") or "default"))][str(r.get("pop"))] = r
    for by_pop in cells.values():
        for p in by_pop:
            if p not in pops:
                pops.append(p)

    def worst(key: tuple[str, str]) -> int:
        outcomes = [cells[key].get(p, {}).get("outcome", "pending") for p in pops]
        return min(_ORDER.get(str(o), 2) for o in outcomes)

    keys = sorted(cells, key=worst)  # stable: the plan's order within each group
    rows = []
    for url, variant in keys[:max_rows]:
        tds = "".join(_cell(url, p, cells[(url, variant)].get(p)) for p in pops)
        rows.append(
            f'<tr><td class="url mono">{escape(url)}</td><td>{escape(variant)}</td>{tds}</tr>'
        )
    more = ""
    if len(keys) > max_rows:
        more = (
            f'<div class="more">and {len(keys) - max_rows:,} more URLs (the rows with a '
            "non-hit come first; the JSON report has them all)</div>"
        )
    return "\n".join(rows), more


def _cell(url: str, pop: str, r: Mapping[str, Any] | None) -> str:
    outcome = str(r.get("outcome")) if r else "pending"
    cls = escape(outcome if outcome in _ORDER else "pending")
    attrs = f'class="cell {cls}" data-url="{escape(url)}" data-pop="{escape(pop)}"'
    if r is None or outcome == "hit":
        return f"<td {attrs}>{cls.upper()}</td>"
    facts = [
        f"{k} {escape(str(r[k]))}"
        for k in ("status", "cache", "attempts", "age")
        if r.get(k) not in (None, "")
    ]
    reason = escape(str(r.get("error") or "no reason recorded"))
    return (
        f"<td {attrs}><details><summary>{cls.upper()}</summary>"
        f'<div class="reason">{reason}<br><span class="mono">{", ".join(facts)}</span></div>'
        "</details></td>"
    )


def _dropped(dropped: list[Mapping[str, Any]]) -> str:
    if not dropped:
        return "<p>none</p>"
    rows = "".join(
        f'<tr><td class="url mono">{escape(str(d.get("url")))}</td>'
        f"<td>{escape(str(d.get('reason')))}</td></tr>"
        for d in dropped
    )
    return f'<table id="dropped"><thead><tr><th>URL</th><th>reason</th></tr></thead>{rows}</table>'


def render_list(items: Sequence[Mapping[str, Any]]) -> str:
    """The recent batches as a page, each linking to its report."""
    rows = []
    for it in items:
        c = it.get("counts")
        counts = (
            f"{c.get('hit', 0)} hit, {c.get('miss', 0)} miss, {c.get('failed', 0)} failed"
            if c is not None
            else "running"
        )
        bid = escape(str(it["batch_id"]))
        rows.append(
            f'<tr><td class="mono"><a href="/batches/{bid}">{bid}</a></td>'
            f"<td>{escape(str(it['state']))}</td><td>{escape(str(it.get('started_at')))}</td>"
            f"<td>{escape(str((it.get('trigger') or {}).get('source', '?')))}</td>"
            f"<td>{escape(counts)}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="5">no batches</td></tr>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>batches</title>'
        "<style>body{font:14px system-ui,sans-serif;margin:24px}td,th{border:1px solid #d0d7de;"
        "padding:4px 8px}table{border-collapse:collapse}.mono{font-family:monospace}</style>"
        "</head><body><h1>Recent batches</h1><table><thead><tr><th>batch</th><th>state</th>"
        f"<th>started</th><th>trigger</th><th>counts</th></tr></thead><tbody>{body}</tbody>"
        "</table></body></html>"
    )
