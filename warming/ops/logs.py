"""The operator's log lines: one per finished batch, per failed pair, per shim request.

Each line is a plain message for `log.format = "text"` and carries its facts as
`extra` fields, which `JsonFormatter` writes out as keys (`batch_id`, `url`, `pop`, ...)
for `log.format = "json"`. Nothing here is given a secret: a request line has the
path without its query, never a header.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from warming.opssettings import LogSettings

# The facts a line may carry, written as JSON keys in this order.
FIELDS = (
    "batch_id",
    "state",
    "url",
    "pop",
    "variant",
    "outcome",
    "reason",
    "counts",
    "duration_s",
    "trigger",
    "method",
    "path",
    "status",
    "adapter",
    "latency_ms",
)

batches = logging.getLogger("warming.batches")
pairs = logging.getLogger("warming.pairs")
requests = logging.getLogger("warming.shim.requests")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the line's facts."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(
    settings: LogSettings, root: logging.Logger | None = None, default: str | None = None
) -> None:
    """Give warming's loggers `log.level` (else `default`, else the process's own level),
    and JSON lines to every root handler if asked.

    Celery and uvicorn install their own handlers first; this only changes formatters.
    """
    level = settings.level or default
    if level:
        logging.getLogger("warming").setLevel(level)
    root = root or logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    if settings.format == "json":
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())


def batch_ended(report: Mapping[str, Any]) -> None:
    """The line of a finished batch: state, counts, duration and trigger."""
    c = report.get("counts") or {}
    trigger = report.get("trigger") or {}
    duration = _duration(report)
    level = logging.INFO if report.get("state") == "done" and not _bad(c) else logging.WARNING
    batches.log(
        level,
        "batch %s %s: %s hit, %s miss, %s failed of %s, %s dropped in %s s (trigger %s)%s",
        report.get("batch_id"),
        report.get("state"),
        c.get("hit", 0),
        c.get("miss", 0),
        c.get("failed", 0),
        c.get("total", 0),
        c.get("dropped", 0),
        "?" if duration is None else f"{duration:.1f}",
        trigger.get("source", "?"),
        f"; {report['error']}" if report.get("error") else "",
        extra={
            "batch_id": report.get("batch_id"),
            "state": report.get("state"),
            "counts": dict(c),
            "duration_s": duration,
            "trigger": trigger.get("source"),
        },
    )


def pair_failed(batch_id: str, result: Mapping[str, Any]) -> None:
    """The line of one pair that did not verify as a HIT, with its reason."""
    pairs.warning(
        "pair %s: %s at %s (%s) in batch %s: %s",
        result.get("outcome"),
        result.get("url"),
        result.get("pop"),
        result.get("variant") or "default",
        batch_id,
        result.get("error") or "no reason recorded",
        extra={
            "batch_id": batch_id,
            "url": result.get("url"),
            "pop": result.get("pop"),
            "variant": result.get("variant"),
            "outcome": result.get("outcome"),
            "reason": result.get("error"),
        },
    )


def request(
    method: str,
    path: str,
    status: int,
    latency_ms: float,
    adapter: str | None = None,
    batch_id: str | None = None,
    quiet: bool = False,
) -> None:
    """The line of one shim request (`quiet`: at DEBUG). `path` comes without its query."""
    requests.log(
        logging.DEBUG if quiet else logging.INFO,
        "%s %s %s %.1f ms%s%s",
        method,
        path,
        status,
        latency_ms,
        f" adapter={adapter}" if adapter else "",
        f" batch={batch_id}" if batch_id else "",
        extra={
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": round(latency_ms, 2),
            "adapter": adapter,
            "batch_id": batch_id,
        },
    )


def _bad(counts: Mapping[str, Any]) -> bool:
    return bool(counts.get("miss") or counts.get("failed"))


def _duration(report: Mapping[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(report["started_at"])
        end = datetime.fromisoformat(report["finished_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return round((end - start).total_seconds(), 3)
