"""The batch report: exit status and the human-readable rendering."""

from __future__ import annotations

from typing import Any

import pytest

from warming.batch.report import exit_code, render

pytestmark = pytest.mark.timeout(30)

SITE = "https://www.example.com"


def report(
    state: str = "done",
    results: list[dict[str, Any]] | None = None,
    dropped: list[dict[str, str]] | None = None,
    total: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    results = results or []
    dropped = dropped or []
    count = {o: sum(r["outcome"] == o for r in results) for o in ("hit", "miss", "failed")}
    return {
        "batch_id": "b-42",
        "state": state,
        "trigger": {"source": "cli"},
        "counts": {
            "total": len(results) if total is None else total,
            **count,
            "dropped": len(dropped),
        },
        "results": results,
        "dropped": dropped,
        "started_at": "2024-01-01T00:00:00.000+00:00",
        "finished_at": "2024-01-01T00:00:05.000+00:00",
        **extra,
    }


def result(
    outcome: str, path: str = "/a", pop: str = "fra", error: str | None = None
) -> dict[str, Any]:
    return {
        "url": SITE + path,
        "pop": pop,
        "outcome": outcome,
        "status": 200 if outcome != "failed" else None,
        "cache": "HIT" if outcome == "hit" else "MISS",
        "attempts": 1,
        "error": error,
    }


# -- exit_code -------------------------------------------------------------------


def test_all_hit_and_done_is_zero() -> None:
    assert exit_code(report(results=[result("hit"), result("hit", pop="ams")])) == 0


@pytest.mark.parametrize(
    "rep",
    [
        report(results=[]),  # an empty batch proves nothing
        report(results=[result("hit"), result("miss", error="cache MISS")]),
        report(results=[result("hit"), result("failed", error="never prefetched")]),
        report("failed", results=[result("hit")]),
        report("verifying", results=[result("hit")]),
        report(results=[result("hit")], total=2),  # one pair has no verdict yet
    ],
    ids=["empty", "miss", "failed", "state-failed", "still-running", "pending"],
)
def test_anything_else_is_one(rep: dict[str, Any]) -> None:
    assert exit_code(rep) == 1


def test_dropped_urls_alone_do_not_fail_the_batch() -> None:
    rep = report(results=[result("hit")], dropped=[{"url": SITE + "/preview/x", "reason": "x"}])
    assert exit_code(rep) == 0


# -- render ----------------------------------------------------------------------


def test_render_summary_and_every_non_hit_with_its_reason() -> None:
    rep = report(
        results=[
            result("hit", "/ok"),
            result("miss", "/m", "ams", error="cache MISS (x-cache: MISS) after a re-warm"),
            result("failed", "/f", "fra", error="never prefetched: deadline passed"),
        ],
        dropped=[{"url": SITE + "/preview/x", "reason": "denied path /preview"}],
    )
    text = render(rep)
    lines = text.splitlines()
    assert lines[0] == "batch b-42: done"
    assert "1 hit, 1 miss, 1 failed of 3 (URL, PoP) pairs; 1 URL(s) dropped" in lines[1]
    assert not any("/ok" in line for line in lines), "hits are not listed"
    miss = next(line for line in lines if f"{SITE}/m" in line)
    assert "MISS" in miss and "ams" in miss and "after a re-warm" in miss
    failed = next(line for line in lines if f"{SITE}/f" in line)
    assert "FAILED" in failed and "never prefetched: deadline passed" in failed
    dropped = next(line for line in lines if "/preview/x" in line)
    assert "DROPPED" in dropped and "denied path /preview" in dropped


def test_render_shows_error_note_and_pending() -> None:
    rep = report("failed", results=[], total=4, error="purge failed: 403", note="deadline passed")
    rep["counts"]["pending"] = 4
    text = render(rep)
    assert "batch b-42: failed" in text
    assert "4 pending" in text
    assert "error: purge failed: 403" in text
    assert "note: deadline passed" in text


def test_render_truncates_long_lists() -> None:
    bad = [result("miss", f"/m{i}", error=f"reason-{i}") for i in range(75)]
    dropped = [{"url": f"{SITE}/draft/{i}", "reason": "denied"} for i in range(33)]
    text = render(report(results=[result("hit"), *bad], dropped=dropped))
    lines = text.splitlines()
    listed = [line for line in lines if line.lstrip().startswith("MISS")]
    assert len(listed) == 50
    assert "reason-49" in text and "reason-50" not in text
    assert "... and 25 more (use --json for all)" in text
    assert sum("DROPPED" in line for line in lines) == 20
    assert f"{SITE}/draft/19 " in text and f"{SITE}/draft/20 " not in text
    assert "... and 13 more dropped" in text


def test_render_of_an_all_hit_batch_is_just_the_summary() -> None:
    text = render(report(results=[result("hit"), result("hit", pop="ams")]))
    assert text.splitlines()[1].strip().startswith("2 hit, 0 miss, 0 failed of 2")
    assert len(text.splitlines()) == 2
