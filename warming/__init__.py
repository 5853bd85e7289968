"""warming: purge, warm and prove CDN edge caches after a CMS publishes a change.

`celery -A warming worker` and `celery -A warming flower` find the Celery app here.
"""

from importlib import metadata

from warming.broker.app import app

try:
    __version__ = metadata.version("warming")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "app"]
