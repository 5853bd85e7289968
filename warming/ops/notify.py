"""Telling people a batch ended: a Slack summary, a signed callback, and when to send.

Two channels, each an outbound HTTP POST built from the report:

- `slack`: a Slack incoming webhook (the URL is the credential), a readable summary
  in Block Kit with the pairs that are not HITs (api.slack.com/messaging/webhooks);
- `callback`: a JSON event signed per Standard Webhooks (`webhook-id`,
  `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
  "{id}.{timestamp}.{body}">`, key the base64 after `whsec_`), so the receiver
  verifies it as our own shim verifies webhooks. The id is the same on every retry of
  one notice, so a receiver drops a duplicate; the timestamp is each attempt's.

Sending is `deliver()`; retries with backoff are the notify task's (warming.stages.notify).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from warming.errors import ConfigError, NotifyError

CHANNELS = ("slack", "callback")
# Pairs listed in a notice: enough to act on, small enough for Slack's 50-block limit.
LISTED = 10
CALLBACK_LISTED = 100


def events(report: Mapping[str, Any]) -> set[str]:
    """What a finished batch is, in `notify.on`'s words."""
    c = report.get("counts") or {}
    out = {"done"}
    if report.get("state") == "failed" or c.get("failed"):
        out.add("failed")
    if c.get("miss"):
        out.add("miss")
    return out


def wanted(on: Sequence[str], report: Mapping[str, Any]) -> bool:
    return bool(events(report) & set(on))


def _not_hit(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in report.get("results") or [] if r.get("outcome") != "hit"]


def _n_not_hit(report: Mapping[str, Any]) -> int:
    """Pairs not a HIT: from the counts (a summary lists only the first of them)."""
    c = report.get("counts") or {}
    return max(len(_not_hit(report)), int(c.get("miss", 0)) + int(c.get("failed", 0)))


def _headline(report: Mapping[str, Any]) -> str:
    c = report.get("counts") or {}
    source = (report.get("trigger") or {}).get("source", "?")
    return (
        f"batch {report.get('batch_id')} {report.get('state')}: {c.get('hit', 0)} hit, "
        f"{c.get('miss', 0)} miss, {c.get('failed', 0)} failed of {c.get('total', 0)}, "
        f"{c.get('dropped', 0)} dropped (trigger {source})"
    )


def slack_message(report: Mapping[str, Any], report_url: str | None = None) -> dict[str, Any]:
    """The incoming-webhook body: `text` for notifications, blocks for the channel."""
    c = report.get("counts") or {}
    ok = report.get("state") == "done" and c.get("hit") == c.get("total")
    icon = ":white_check_mark:" if ok else ":warning:"
    lines = [f"{icon} *{_escape(_headline(report))}*"]
    if report.get("error"):
        lines.append(f"error: {_escape(str(report['error']))}")
    if report.get("note"):
        lines.append(_escape(str(report["note"])))
    bad = _not_hit(report)
    listed = [
        f"• `{r.get('outcome')}` {_escape(str(r.get('url')))} at *{_escape(str(r.get('pop')))}*"
        f": {_escape(str(r.get('error') or 'no reason recorded'))}"
        for r in bad[:LISTED]
    ]
    if _n_not_hit(report) > LISTED:
        listed.append(f"… and {_n_not_hit(report) - LISTED} more")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    ]
    if listed:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(listed)}})
    if report_url:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{report_url}|report>"}]}
        )
    return {"text": _headline(report), "blocks": blocks}


def _escape(text: str) -> str:
    # Slack's three control characters in mrkdwn (api.slack.com "Formatting text").
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def callback_event(report: Mapping[str, Any], report_url: str | None = None) -> dict[str, Any]:
    """The callback's JSON: Standard Webhooks' `type`, `timestamp`, `data` envelope."""
    bad = _not_hit(report)
    data = {
        k: report.get(k)
        for k in ("batch_id", "state", "trigger", "counts", "started_at", "finished_at")
    }
    for k in ("error", "note"):
        if report.get(k):
            data[k] = report[k]
    data["not_hit"] = [
        {k: r.get(k) for k in ("url", "pop", "variant", "outcome", "error")}
        for r in bad[:CALLBACK_LISTED]
    ]
    data["not_hit_total"] = _n_not_hit(report)
    data["status_url"] = report_url or f"/batches/{report.get('batch_id')}"
    return {"type": "batch.finished", "timestamp": report.get("finished_at"), "data": data}


def signed_headers(
    secret: str, msg_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers of `body`, for `notify.callback_secret`."""
    text = secret.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise ConfigError("notify.callback_secret", "not whsec_ followed by base64") from None
    ts = str(int(now if now is not None else time.time()))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode("ascii"),
    }


def deliver(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST the notice; its status, or NotifyError (retryable) for no answer or not 2xx."""
    hdrs = {"content-type": "application/json", "user-agent": "warming-notify", **headers}
    try:
        resp = requests.post(url, data=body, headers=hdrs, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as e:
        # The URL is not shown: a Slack webhook's URL is its secret.
        raise NotifyError(f"no answer: {type(e).__name__}") from None
    resp.close()
    if not 200 <= resp.status_code < 300:
        raise NotifyError(f"answered {resp.status_code}", status=resp.status_code)
    return resp.status_code


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
