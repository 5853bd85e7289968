"""Redis key names and queue names, in one place so operators can find them."""

from __future__ import annotations

# Every key starts with this, so `redis-cli --scan --pattern 'warming:*'` shows all of ours
# and a shared Redis can be cleaned up without touching Celery's own keys.
PREFIX = "warming:"

# Hash: the batch's state, plan, timestamps and live counters (one HGETALL per report).
BATCH = PREFIX + "batch:{id}"
# Hash: what each (URL, PoP, variant) prefetch saw (status, cache, digest, ...); kept
# out of chord results so the chord join stays tiny however big the batch.
WARM = PREFIX + "batch:{id}:warm"
# Hash: each pair's final verdict (hit, miss, failed) after verification.
RESULTS = PREFIX + "batch:{id}:results"
# Set: "phase:slice" ids that have been verified; the last one starts the next phase.
SLICES_DONE = PREFIX + "batch:{id}:slices:{phase}"
# Set: slices of a phase whose chord has been published. Slice n, once verified, launches
# slice n + slices_in_flight, so at most that many slices' messages sit in the broker.
LAUNCHED = PREFIX + "batch:{id}:launched:{phase}"
# String (SET NX): guards so that a phase starts, and a batch finishes, exactly once
# even when tasks are redelivered after a crash.
GUARD = PREFIX + "batch:{id}:guard:{what}"
# Sorted set: unfinished batches scored by deadline; the watchdog reads it.
ACTIVE = PREFIX + "active"
# Sorted set of recent batch ids by start time, for listing.
RECENT = PREFIX + "recent"

# GCRA state of a named cluster-wide rate limit (one string per limit).
LIMIT = PREFIX + "limit:{name}"
# Set: the URLs last seen carrying a surrogate key.
TAG = PREFIX + "tag:{key}"
# String: webhook-id -> batch id, for idempotent redelivery.
WEBHOOK_ID = PREFIX + "webhook:{id}"
# Coalescing state of the webhook shim.
COALESCE = PREFIX + "coalesce:{key}"

# One queue per task kind: Redis priorities are approximate, separate queues are the
# reliable way to keep purges and verifications from waiting behind 100k prefetches.
Q_PURGE = "warming.purge"
Q_PREFETCH = "warming.prefetch"
Q_PREFETCH_BULK = "warming.prefetch.bulk"
Q_VERIFY = "warming.verify"
Q_CONTROL = "warming.control"
QUEUES = (Q_PURGE, Q_VERIFY, Q_CONTROL, Q_PREFETCH, Q_PREFETCH_BULK)
# kombu's Redis transport: hash of every message a worker holds (running, reserved or
# waiting for its ETA). The watchdog looks here before it calls a message lost.
KOMBU_UNACKED = "unacked"
# Set: the surrogate keys a URL carried when last fetched, to drop it from keys it lost.
URL_TAGS = PREFIX + "urltags:{url}"
