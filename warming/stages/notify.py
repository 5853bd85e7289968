"""Deliver one notice of a finished batch (the `notify` task), retried with backoff.

Queued by `ended()` once per channel whose `notify.on` rule matches; it runs in a task
of its own, so a slow or dead receiver never holds up a batch. A receiver that does
not answer, answers 5xx, 429 or 408 is asked again after 2, 4, 8, 16 s (capped under
the visibility timeout) up to `notify.max_attempts`; any other answer is final.
"""

from __future__ import annotations

import logging

from warming import defaults
from warming.batch.report import KEEP_NOT_HIT, build
from warming.errors import NotifyError
from warming.ops import notify as notices
from warming.runtime import Runtime
from warming.stages.outcome import Done, Failed, Outcome, RetryIn
from warming.stages.timing import cap

log = logging.getLogger(__name__)

# Answers worth asking again: the receiver is overloaded or was restarting.
_RETRYABLE = frozenset({408, 429})


def channels(rt: Runtime) -> list[str]:
    """The configured channels: `slack` with `slack_url`, `callback` with `callback_url`."""
    n = rt.settings.notify
    return [c for c, url in (("slack", n.slack_url), ("callback", n.callback_url)) if url]


def message_id(batch_id: str) -> str:
    """The callback's `webhook-id`: one per batch, the same on every retry."""
    return f"msg_{batch_id}"


def notify(rt: Runtime, batch_id: str, channel: str, attempt: int = 0) -> Outcome:
    """Send the notice of `batch_id` on `channel` once."""
    n = rt.settings.notify
    report = build(rt.store, batch_id, keep=KEEP_NOT_HIT)
    if report is None:
        return Done("expired")
    link = f"{n.report_url.rstrip('/')}/batches/{batch_id}" if n.report_url else None
    headers: dict[str, str] = {}
    if channel == "slack" and n.slack_url is not None:
        url = n.slack_url.get_secret_value()
        body = notices.encode(notices.slack_message(report, link))
    elif channel == "callback" and n.callback_url:
        url = n.callback_url
        body = notices.encode(notices.callback_event(report, link))
        if n.callback_secret is not None:
            secret = n.callback_secret.get_secret_value()
            headers = notices.signed_headers(secret, message_id(batch_id), body)
    else:
        return Done("not configured")
    try:
        notices.deliver(url, body, headers, n.timeout_s)
    except NotifyError as e:
        final = e.status is not None and e.status < 500 and e.status not in _RETRYABLE
        if final or attempt + 1 >= n.max_attempts:
            log.error(
                "notify %s of batch %s: gave up after %d attempt(s): %s",
                channel, batch_id, attempt + 1, e,
            )  # fmt: skip
            return Failed(str(e))
        delay = cap(defaults.NOTIFY_BACKOFF_S * 2**attempt)
        log.warning("notify %s of batch %s: %s; again in %.0f s", channel, batch_id, e, delay)
        return RetryIn(delay, {"attempt": attempt + 1}, "notify")
    log.info("notify %s of batch %s: delivered", channel, batch_id)
    return Done("sent")
