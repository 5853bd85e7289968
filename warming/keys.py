"""Every Redis key warming writes, in one place so operators can find them.

Each name is a template filled with `.format()`; each says what it holds and why it
exists. Queue names live with the task table (`warming.broker.tasknames`).
"""

from __future__ import annotations

# Every key starts with this, so `redis-cli --scan --pattern 'warming:*'` shows all of ours
# and a shared Redis can be cleaned up without touching Celery's own keys.
PREFIX = "warming:"

# Hash: the batch's state, plan, timestamps and live counters (one HGETALL per report).
BATCH = PREFIX + "batch:{id}"
# Hash: what each (URL, PoP, variant) prefetch saw (status, cache, digest, ...); kept
# out of chord results so the chord join stays tiny however big the batch.
WARM = PREFIX + "batch:{id}:warm"
# Hash: a prefetch chunk's verdicts, one compact field per chunk ("phase:slice:lo"): one
# Redis entry per 25 pairs instead of one per pair (warming.batch.results).
CHUNKS = PREFIX + "batch:{id}:chunks"
# Hash: verdicts reached outside a chunk (re-checks, shields proven by edges, the
# watchdog), one compact field per pair; they override the chunk's.
RESULTS = PREFIX + "batch:{id}:results"
# Hash: URL -> what the origin serves now (ETag, Last-Modified, digest), fetched once per
# URL, not per PoP: the freshness proof every PoP's answer is compared with.
ORIGIN = PREFIX + "batch:{id}:origin"
# Sorted set: URLs whose max-age + stale-while-revalidate (the score, s) end before the
# batch's URLs are warmed again (a schedule's interval): the report's warning.
SHORT_LIVED = PREFIX + "batch:{id}:shortlived"
# Hash (push mode): URL -> why it is warmed by GET instead of the push API (a quota used
# up, a call refused); URLs not in it were pushed. Each prefetch chunk reads its URLs'
# fields, so a batch of 100k URLs is never decoded whole (warming.stages.push).
PUSH_FALLBACK = PREFIX + "batch:{id}:pushfallback"
# Set: "phase:slice" ids that have been verified; the last one starts the next phase.
SLICES_DONE = PREFIX + "batch:{id}:slices:{phase}"
# Set: slices of a phase whose chord has been published. Slice n, once verified, launches
# slice n + slices_in_flight, so at most that many slices' messages sit in the broker.
LAUNCHED = PREFIX + "batch:{id}:launched:{phase}"
# String (SET NX): guards so that a batch finishes, and a stall is re-driven, exactly once
# even when tasks are redelivered after a crash. (A phase has none: starting one is
# repeated on purpose after a crash, and publishes only the slices not yet out.)
GUARD = PREFIX + "batch:{id}:guard:{what}"
# Sorted set: unfinished batches scored by deadline; the watchdog reads it.
ACTIVE = PREFIX + "active"
# Sorted set of recent batch ids by start time: `warming batches` lists it. Trimmed to
# RECENT_KEEP entries whenever a batch is recorded, so it never grows without bound.
RECENT = PREFIX + "recent"

# GCRA state of a named cluster-wide rate limit (one string per limit).
# String "<this>:<day>": URLs pushed through one push account on one UTC day (days since
# the epoch, appended by push_quota.lua from Redis's clock, so no worker's clock counts):
# `warm.daily_quota`, counted by every worker at once. It expires two days later.
PUSH_QUOTA = PREFIX + "pushquota:{account}"
LIMIT = PREFIX + "limit:{name}"
# Hash: the URLs last seen carrying a surrogate key (fields; values empty). A hash, not a
# set: Redis 7.0 keeps a small hash compact (listpack) and a small set of strings not,
# and most keys tag a page or two.
TAG = PREFIX + "tagurls:{key}"
# String: the surrogate keys a URL carried when last fetched, space-separated, to drop it
# from keys it lost (a string: a small set costs Redis 7.0 about twice the memory).
URL_TAGS = PREFIX + "urlkeys:{url}"
# String: "{adapter}:{delivery id}" (or "{adapter}:body:{sha256}" for senders with no id)
# -> the first batch's id, so a redelivery or a replay answers 200 and enqueues nothing.
# TTL: WEBHOOK_ID_TTL_S for an id, webhook.tolerance_s for a body digest.
WEBHOOK_ID = PREFIX + "webhook:{id}"
# Coalescing state of the webhook shim; COALESCE_* below are the suffixes its scripts use.
COALESCE = PREFIX + "coalesce:{key}"
COALESCE_PREFIX = COALESCE.format(key="")
# String with a TTL: the batch that leads a URL for one coalescing window.
COALESCE_URL = COALESCE_PREFIX + "url:{url}"
# String: the trailing batch opened behind a leader.
COALESCE_TRAIL = COALESCE_PREFIX + "trail:{leader}"
# String: a trailing batch's leader (for its report's `trailing_for`).
COALESCE_LEADER = COALESCE_PREFIX + "leader:{id}"
# String with a TTL: while it exists, a trailing batch is not yet due.
COALESCE_DUE = COALESCE_PREFIX + "due:{id}"
# Set: the URLs waiting in a trailing batch.
COALESCE_URLS = COALESCE_PREFIX + "urls:{id}"
# String: a trailing batch that was published and takes no more URLs.
COALESCE_FLUSHED = COALESCE_PREFIX + "flushed:{id}"

# kombu's Redis transport: hash of every message a worker holds (running, reserved or
# waiting for its ETA). The watchdog looks here before it calls a message lost.
KOMBU_UNACKED = "unacked"

# How many batch ids `warming:recent` keeps (about 1 MB of Redis).
RECENT_KEEP = 10_000

# Hash: a schedule's last run (when, the batch it made, or why it made none); read by
# `warming schedules` and, for changed_only, by the next run.
SCHEDULE = PREFIX + "schedule:{name}"
# String (SET NX EX): claims one run of a schedule, so a second message for it (a second
# beat, a redelivery) makes no second batch.
SCHEDULE_CLAIM = PREFIX + "schedule:{name}:claim"
# RedBeat's keys (entries, the due-time sorted set "<prefix>:schedule", the beat lock
# "<prefix>:lock"): under ours, so a shared Redis shows them with the rest.
REDBEAT_PREFIX = PREFIX + "redbeat:"
