"""`warming schedules`: each `[[schedules]]` entry with its last and next run."""

from __future__ import annotations

import json
from typing import Any


def render(rows: list[dict[str, Any]], as_json: bool) -> str:
    if as_json:
        return json.dumps(rows, indent=2)
    if not rows:
        return "no [[schedules]] in the configuration"
    lines = []
    for row in rows:
        last = row["last_run_at"] or "never"
        if row["last_batch_id"]:
            last += f" (batch {row['last_batch_id']})"
        elif row["last_note"]:
            last += f" (no batch: {row['last_note']})"
        lines += [
            f"{row['name']}: {row['when']}, {row['what']}, priority {row['priority']}",
            f"  last run: {last}",
            f"  next run: {row['next_run_at'] or 'one interval after celery beat starts'}",
        ]
    return "\n".join(lines)
