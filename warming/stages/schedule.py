"""One run of a `[[schedules]]` entry: its batch, built the one way (`publish`), and its record.

Celery beat (RedBeat, one beat at a time by its lock) sends `warming.run_schedule`; a
second message for the same run (a second beat without the lock, a redelivery) finds
the run claimed and makes no batch.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery.schedules import crontab
from redbeat.decoder import RedBeatJSONDecoder

from warming import defaults
from warming import keys as K
from warming.batch.publish import WarmRequest, publish
from warming.errors import NothingChanged, WarmingError
from warming.rediskit import text_map
from warming.runtime import Runtime
from warming.settings import ScheduleSettings
from warming.sources.filter import Dropped
from warming.sources.lists import from_file, from_sitemap
from warming.sources.traffic import rank

log = logging.getLogger(__name__)


def run(rt: Runtime, name: str) -> str:
    """Build and publish schedule `name`'s batch; its id, or a word saying why there is none."""
    s = rt.settings.schedule(name)
    if s is None:
        # A beat with an older config than this worker: nothing to run.
        log.warning("schedule %s: not in this worker's [[schedules]]; skipped", name)
        return "unknown"
    r = rt.redis
    started = datetime.now(UTC)
    claim_s = int(s.every_s / 2) if s.every_s else defaults.SCHEDULE_CLAIM_CRON_S
    if not r.set(K.SCHEDULE_CLAIM.format(name=name), started.isoformat(), nx=True, ex=claim_s):
        log.info("schedule %s: this run is already taken; skipped", name)
        return "duplicate"
    last = text_map(r.hgetall(K.SCHEDULE.format(name=name)))
    since = None
    if s.changed_only and s.sitemap and last.get("since_at"):
        since = datetime.fromisoformat(last["since_at"])
    record: dict[str, str] = {"last_run_at": started.isoformat(), "batch_id": "", "note": ""}
    try:
        plan = publish(rt, request(rt, s, since))
        record["batch_id"] = plan.batch_id
        record["since_at"] = started.isoformat()
        log.info("schedule %s: batch %s", name, plan.batch_id)
    except NothingChanged as e:
        record["note"] = str(e)
        record["since_at"] = started.isoformat()
        log.info("schedule %s: %s", name, e)
    except WarmingError as e:
        # since_at stays: the next run looks back to the last sitemap actually read.
        record["note"] = str(e)
        log.warning("schedule %s: no batch: %s", name, e)
    r.hset(K.SCHEDULE.format(name=name), mapping={k: v for k, v in record.items()})
    return record["batch_id"] or "no batch"


def request(rt: Runtime, s: ScheduleSettings, since: datetime | None) -> WarmRequest:
    """What one run of `s` warms; sitemaps are read through a PoP, files on this worker."""
    urls = list(s.urls)
    dropped: list[Dropped] = []
    if s.file:
        urls += from_file(s.file)
    if s.analytics:
        ranked = rank(s.analytics, rt.url_filter)
        urls += ranked.urls[: s.top] if s.top else ranked.urls
        dropped += ranked.dropped
    if s.sitemap:
        pop = rt.discoverer.reader(rt.settings.pops)
        sitemap = from_sitemap(rt.client, pop, s.sitemap, rt.url_filter, since)
        urls += sitemap.urls
        dropped += sitemap.dropped
    return WarmRequest(
        urls=[u for u in urls if "://" in u],
        paths=[u for u in urls if "://" not in u],
        tags=s.tags,
        purge=s.purge,
        trigger={"source": "schedule", "schedule": s.name},
        priority=s.priority,
        dropped=dropped,
        exclude=s.exclude,
        limit=s.limit,
        refresh_s=s.interval_s(),
    )


def status(rt: Runtime, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each schedule with its last run (RedBeat's and ours) and its next run."""
    now = now or datetime.now(UTC)
    r = rt.redis
    out = []
    for s in rt.settings.schedules:
        last = text_map(r.hgetall(K.SCHEDULE.format(name=s.name)))
        nxt = _next(s, now, _beat_last_run(r, s.name) or last.get("last_run_at"))
        out.append(
            {
                "name": s.name,
                "when": s.when,
                "what": _what(s),
                "priority": s.priority,
                "last_run_at": last.get("last_run_at") or None,
                "last_batch_id": last.get("batch_id") or None,
                "last_note": last.get("note") or None,
                "next_run_at": nxt.isoformat() if nxt else None,
            }
        )
    return out


def _beat_last_run(r: redis.Redis, name: str) -> str | None:
    """When beat last sent the schedule (RedBeat's entry; it stores when it first saw one)."""
    meta = r.hget(K.REDBEAT_PREFIX + name, "meta")
    if not meta:
        return None
    when = json.loads(meta, cls=RedBeatJSONDecoder).get("last_run_at")
    return when.isoformat() if isinstance(when, datetime) else None


def _next(s: ScheduleSettings, now: datetime, last_run_at: str | None) -> datetime | None:
    """The next run: one interval after the last, or the cron line's next minute.

    RedBeat's due-time scores are not used: for both kinds they come out early by the
    time since the last run (due_at adds remaining_estimate, itself counted from now).
    """
    if s.every_s is not None:
        if not last_run_at:
            return None  # one interval after beat first stores it
        return datetime.fromisoformat(last_run_at) + timedelta(seconds=s.every_s)
    minute, hour, day, month, weekday = (s.cron or "").split()
    cron = crontab(minute, hour, day_of_month=day, month_of_year=month, day_of_week=weekday)
    delta: timedelta = cron.remaining_estimate(now)
    # Counted from Celery's own clock reading, a moment after `now`: cron lines fire on
    # whole minutes, so the nearest one is the answer.
    return datetime.fromtimestamp(round((now + delta).timestamp() / 60) * 60, UTC)


def _what(s: ScheduleSettings) -> str:
    parts = [f"sitemap {s.sitemap}"] if s.sitemap else []
    parts += [f"file {s.file}"] if s.file else []
    parts += [f"tags {', '.join(s.tags)}"] if s.tags else []
    parts += [f"{len(s.urls)} URLs"] if s.urls else []
    parts += [f"top {s.top or 'all'} of {s.analytics}"] if s.analytics else []
    return "; ".join(parts)
