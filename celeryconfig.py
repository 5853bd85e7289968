"""Per-deployment Celery overrides.

Set `CELERY_CONFIG_MODULE=celeryconfig` (with this directory on the Python path)
for workers and Flower to load this module instead of the package defaults. Keep
the star import: it carries every setting warming depends on (acks_late, the
visibility timeout, queues, rate limits). Change only what your deployment needs.
"""

from warming.broker.config import *  # noqa: F403

# Example: more verbose task events for a debugging session.
# worker_send_task_events = True
