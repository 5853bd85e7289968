"""warming: purge, warm and prove CDN edge caches after a CMS publishes a change.

`celery -A warming worker` and `celery -A warming flower` find the Celery app here.
"""

from warming.broker.app import app

__all__ = ["app"]
__version__ = "0.1.0"
