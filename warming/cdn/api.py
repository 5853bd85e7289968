"""One HTTPS call to a vendor's purge API, its failures sorted into retry or give up.

429 and 5xx are retryable, honouring the vendor's wait (Retry-After, or a reset time
the vendor names); any other non-2xx is final. Requests carry credentials in headers,
so nothing here logs a request, and errors quote only the vendor's answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests
from requests.auth import AuthBase

from warming import defaults
from warming.errors import PurgeError, RetryLater
from warming.pop.retry import parse_retry_after

# The part of an error body quoted in a batch's error: enough for the vendor's message.
_QUOTE = 300


class ApiClient:
    """Keep-alive HTTP to one provider's API."""

    def __init__(self, provider: str, timeout_s: float, auth: AuthBase | None = None) -> None:
        self.provider = provider
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.auth = auth
        self._session.headers["User-Agent"] = defaults.USER_AGENT

    def call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        wait_if_unsaid: float | None = None,
        reset_header: str | None = None,
    ) -> requests.Response:
        """Send; return a 2xx answer, else raise RetryLater or PurgeError.

        `wait_if_unsaid` is the wait after a 429 that names none; `reset_header` names a
        header holding the epoch second at which the vendor's rate window reopens.
        """
        try:
            resp = self._session.request(
                method,
                url,
                headers=dict(headers or {}),
                params=params,
                json=json_body,
                timeout=(self.timeout_s, self.timeout_s),
                allow_redirects=False,
            )
        except requests.RequestException as e:
            raise RetryLater(f"{what}: {type(e).__name__} reaching {self.provider}") from None
        s = resp.status_code
        if 200 <= s < 300:
            return resp
        if s == 429 or s >= 500:
            delay = parse_retry_after(resp.headers.get("Retry-After"))
            if delay is None and reset_header and resp.headers.get(reset_header, "").isdigit():
                delay = max(0.0, float(resp.headers[reset_header]) - time.time())
            if delay is None and s == 429:
                delay = wait_if_unsaid
            raise RetryLater(f"{what}: {self.provider} answered {s}", delay=delay, status=s)
        raise PurgeError(
            f"{what}: {self.provider} answered {s}: {quote(resp)}",
            provider=self.provider,
            target=url.split("?", 1)[0],
            status=s,
        )


def quote(resp: requests.Response) -> str:
    """The start of an answer's body, on one line."""
    return " ".join(resp.text[:_QUOTE].split()) or "(empty body)"
