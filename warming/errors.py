"""One error tree for everything warming raises on purpose.

WarmingError
├── ConfigError          invalid settings; carries the key
├── RejectedURL          a URL the filter refuses; carries url and reason
├── PurgeError           a CDN purge that failed; carries provider, target, status
├── FetchError           a request to a PoP that failed; carries url, pop, status
│   └── RetryLater       retryable (429/503/5xx/connection); carries delay
├── BrokerUnavailable    Redis/broker cannot be reached
├── NothingChanged       a sitemap read with a changed-since date: no page is newer
├── NotifyError          a notification not delivered (retried); carries the status
├── NotAllHit            a finished batch with pairs that are not HITs (Flower's FAILURE)
└── WebhookError         a webhook refused; carries the HTTP status to answer
"""

from __future__ import annotations


class WarmingError(Exception):
    """Base of every error warming raises on purpose."""


class ConfigError(WarmingError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class RejectedURL(WarmingError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class PurgeError(WarmingError):
    def __init__(
        self, message: str, *, provider: str, target: str = "", status: int | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.target = target
        self.status = status


class FetchError(WarmingError):
    def __init__(
        self, message: str, *, url: str = "", pop: str = "", status: int | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.pop = pop
        self.status = status


class RetryLater(FetchError):
    """A retryable failure; `delay` is what the server asked for (None: use backoff)."""

    def __init__(
        self,
        message: str,
        *,
        delay: float | None = None,
        url: str = "",
        pop: str = "",
        status: int | None = None,
    ) -> None:
        super().__init__(message, url=url, pop=pop, status=status)
        self.delay = delay


class BrokerUnavailable(WarmingError):
    pass


class NotifyError(WarmingError):
    """A notification the receiver did not take (no answer, or not 2xx); it is retried."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NothingChanged(WarmingError):
    """A sitemap whose pages all have a lastmod older than the changed-since date."""


class NotAllHit(WarmingError):
    """A finished batch with pairs that are not fresh HITs; its message names them."""

    # batch_id has a default: Celery rebuilds an exception from its args alone (else it
    # reports the nearest base that it can rebuild, and `throws=` no longer matches).
    def __init__(self, message: str, batch_id: str = "") -> None:
        super().__init__(message)
        self.batch_id = batch_id


class WebhookError(WarmingError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
